"""The plan as rich tables on a terminal: scenarios, pools, services, and what could not be placed."""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table

from planner.reports.document import Report
from planner.reports.presentation import (
    CLOUD_HEADER,
    SCENARIO_HEADER,
    SERVICE_HEADER,
    broken_lines,
    cloud_rows,
    cloud_summary,
    group_lines,
    note_lines,
    plan_title,
    pool_table,
    scenario_rows,
    service_rows,
)


def _table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    t = Table(title=title, title_justify="left", header_style="bold")
    for h in header:
        t.add_column(h, overflow="fold", no_wrap=h == "replica")
    for r in rows:
        t.add_row(*r)
    return t


def renderable(report: Report) -> Group:
    """Every table of the report, ready for ``Console.print``."""
    main = report["scenario"]
    parts: list[RenderableType] = [
        _table(f"Cost per cloud ({main}, per hour)", CLOUD_HEADER, cloud_rows(report)),
        cloud_summary(report),
        _table(
            plan_title(report, "Cost per scenario, per hour", scenario=False),
            SCENARIO_HEADER,
            scenario_rows(report),
        ),
        _table(plan_title(report, "Node pools"), *pool_table(report["pools"])),
        _table(
            plan_title(report, "First-fit decreasing, what cluster-autoscaler/Karpenter would buy"),
            *pool_table(report["ffd"]["pools"]),
        ),
        _table("Decision frame per service", SERVICE_HEADER, service_rows(report["services"])),
    ]
    if groups := group_lines(report):
        parts.append(Panel("\n".join(groups), title=plan_title(report, "Multi-node groups")))
    actions = [f"[bold]{s['name']}[/bold]: {s['action']}" for s in report["services"]]
    parts.append(Panel("\n".join(actions) or "none", title="Recommended actions"))
    annotated = [
        f"{s['name']}: " + ", ".join(f"{k}={v}" for k, v in s["annotations"].items())
        for s in report["services"]
        if s["annotations"]
    ]
    parts.append(Panel("\n".join(annotated) or "none", title="Recommended vramfit.io annotations"))
    if report["unplaceable"]:
        lines = [
            f"[red]{u['inference_service']}[/red] {u['component']} ({u['scenario']}, {u['pods']} pods): {u['reason']}"
            for u in report["unplaceable"]
        ]
        parts.append(Panel("\n".join(lines), title="Cannot be placed", border_style="red"))
    if broken := broken_lines(report):
        parts.append(Panel("\n".join(broken), title="Could not be read", border_style="red"))
    if notes := note_lines(report):
        parts.append(Panel("\n".join(notes), title="Notes", border_style="yellow"))
    return Group(*parts)


def print_report(report: Report, console: Console) -> None:
    """Print the report's tables."""
    console.print(renderable(report))
