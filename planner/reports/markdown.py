"""The plan as Markdown, for a pull request or a wiki page. Pure."""

from __future__ import annotations

from planner.clouds import cloud_label
from planner.reports.document import Report
from planner.reports.presentation import (
    CLOUD_HEADER,
    SCENARIO_HEADER,
    SERVICE_HEADER,
    broken_lines,
    cloud_rows,
    cloud_summary,
    group_lines,
    money,
    note_lines,
    percent,
    plan_title,
    pool_table,
    scenario_rows,
    service_rows,
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out.extend("| " + " | ".join(_cell(c) for c in r) + " |" for r in rows)
    return out


def _section(title: str, items: list[str], *, before: bool = False) -> list[str]:
    """A titled bullet list (nothing when ``items`` is empty); ``before``: a blank line
    first, else after."""
    if not items:
        return []
    body = [f"## {title}", "", *(f"- {_cell(i)}" for i in items)]
    return ["", *body] if before else [*body, ""]


def render_markdown(report: Report) -> str:
    """The report as a Markdown document."""
    main = report["scenario"]
    lines = [
        "# GPU capacity plan",
        "",
        f"Cloud **{cloud_label(report['cloud'])}**, scenario **{main}**: "
        f"{money(report['cost_per_hour'], '/h')} "
        f"(first-fit decreasing {money(report['ffd']['cost_per_hour'], '/h')}, "
        f"lower bound {money(report['lower_bound_cost_per_hour'], '/h')}, gap {percent(report['gap'])}).",
        "",
        f"Inputs: {report['inputs']['inference_services']} InferenceServices and "
        f"{report['inputs']['llm_inference_services']} LLMInferenceServices "
        f"({report['inputs']['gpu_components']} GPU components) from {report['inputs']['source']}.",
        "",
        f"## Cost per cloud ({main})",
        "",
        cloud_summary(report),
        "",
        *_table(CLOUD_HEADER, cloud_rows(report)),
        "",
        f"## {plan_title(report, 'Cost per scenario', scenario=False)}",
        "",
        *_table(SCENARIO_HEADER, scenario_rows(report)),
        "",
        f"## {plan_title(report, 'Node pools')}",
        "",
        *_table(*pool_table(report["pools"])),
        "",
        f"## {plan_title(report, 'First-fit decreasing baseline')}",
        "",
        *_table(*pool_table(report["ffd"]["pools"])),
        "",
        "## Decision frame per service",
        "",
        *_table(SERVICE_HEADER, service_rows(report["services"])),
        "",
        *_section(plan_title(report, "Multi-node groups"), group_lines(report)),
        "## Recommended actions",
        "",
    ]
    for s in report["services"]:
        lines.append(f"- **{s['name']}**: {_cell(s['action'])}")
        if s["annotations"]:
            ann = ", ".join(f"`{k}: {v}`" for k, v in s["annotations"].items())
            lines.append(f"  - annotations: {ann}")
    if report["unplaceable"]:
        lines += ["", "## Cannot be placed", ""]
        for u in report["unplaceable"]:
            lines.append(
                f"- **{u['inference_service']}** {u['component']} ({u['scenario']}, {u['pods']} pods): "
                f"{_cell(u['reason'])}"
            )
    lines += _section("Could not be read", broken_lines(report), before=True)
    lines += _section("Notes", note_lines(report), before=True)
    lines += ["", "## Prices", ""]
    lines += _table(
        ["pool", "cloud", "instance", "$/h", "source", "as of"],
        [
            [
                p["name"],
                cloud_label(p["cloud"]),
                p["instance_type"],
                f"{p['price_per_hour']:.3f}",
                p["price_source"],
                p["price_as_of"],
            ]
            for p in report["catalog"]["pools"]
        ],
    )
    return "\n".join(lines) + "\n"
