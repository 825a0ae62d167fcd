"""The comparison of policies as a terminal table, JSON, or a self-contained HTML page.

JSON keys are camelCase like the rest of vramfit's wire formats; the shape is ``ReportJSON``.
The HTML page carries its own CSS and two inline SVG charts (the cold-start distribution of
each policy and the loads in flight over time) and loads nothing from anywhere. Pure, except
``print_table``, which writes to the console it is given.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from typing import TypedDict

from rich import box
from rich.console import Console
from rich.table import Table

from simulator.metrics import PolicySummary
from simulator.scenario import Scenario
from simulator.svg import Line, ecdf, step_chart


class ColdStartJSON(TypedDict):
    count: int
    unfinished: int
    p50Seconds: float | None
    p95Seconds: float | None
    p99Seconds: float | None
    maxSeconds: float | None
    samplesSeconds: list[float]


class PendingJSON(TypedDict):
    podsWaited: int
    pendingAtEnd: int
    reasonsAtEnd: dict[str, int]
    maxSeconds: float
    p95Seconds: float
    podHours: float


class GroupsJSON(TypedDict):
    count: int
    halfPlaced: int
    halfPlacedGpuSeconds: float


class PreemptionJSON(TypedDict):
    evictions: int
    wasted: int
    topPriorityColdStarts: int
    topPriorityColdStartP50Seconds: float | None
    topPriorityColdStartP95Seconds: float | None


class SimulationJSON(TypedDict):
    events: int
    wallSeconds: float
    eventsPerSecond: float


class PolicyJSON(TypedDict):
    policy: str
    failedLoads: int
    overcommittedPods: int
    overcommittedLoads: int
    predictionsMissed: int
    loadsStarted: int
    podsCreated: int
    podsReady: int
    pending: PendingJSON
    coldStarts: ColdStartJSON
    peakLoadsPerNode: int
    nodesWithConcurrentLoads: int
    nodePeaks: dict[str, int]
    gpuHours: float
    gpuHoursServing: float
    cost: float
    fleetCost: float
    loadsInFlight: list[tuple[float, int]]
    groups: GroupsJSON
    preemption: PreemptionJSON
    simulation: SimulationJSON


class ScenarioJSON(TypedDict):
    name: str
    description: str
    seed: int
    durationSeconds: float
    nodes: int
    gpus: int
    services: int


class ReportJSON(TypedDict):
    scenario: ScenarioJSON
    policies: list[PolicyJSON]


def _seconds(v: float | None) -> str:
    """A duration for a table cell: ``48s``, ``12.5m``, ``1.5h``."""
    if v is None:
        return "-"
    if v < 120:
        return f"{v:.0f}s"
    if v < 7200:
        return f"{v / 60:.1f}m"
    return f"{v / 3600:.1f}h"


def report_json(scenario: Scenario, seed: int, rows: Sequence[PolicySummary]) -> ReportJSON:
    """The comparison as a JSON-ready mapping."""
    return {
        "scenario": {
            "name": scenario.name,
            "description": scenario.description,
            "seed": seed,
            "durationSeconds": scenario.duration_s,
            "nodes": sum(p.nodes for p in scenario.pools),
            "gpus": sum(p.nodes * p.node_type.shape.gpus for p in scenario.pools),
            "services": len(scenario.services),
        },
        "policies": [
            {
                "policy": s.policy,
                "failedLoads": s.failed_loads,
                "overcommittedPods": s.overcommitted_pods,
                "overcommittedLoads": s.overcommitted_loads,
                "predictionsMissed": s.predictions_missed,
                "loadsStarted": s.loads_started,
                "podsCreated": s.pods_created,
                "podsReady": s.pods_ready,
                "pending": {
                    "podsWaited": s.pods_waited,
                    "pendingAtEnd": s.pending_at_end,
                    "reasonsAtEnd": dict(s.pending_reasons),
                    "maxSeconds": s.pending_max_s,
                    "p95Seconds": s.pending_p95_s,
                    "podHours": s.pending_pod_hours,
                },
                "coldStarts": {
                    "count": s.cold_starts,
                    "unfinished": s.cold_starts_unfinished,
                    "p50Seconds": s.cold_start_p50_s,
                    "p95Seconds": s.cold_start_p95_s,
                    "p99Seconds": s.cold_start_p99_s,
                    "maxSeconds": s.cold_start_max_s,
                    "samplesSeconds": list(s.cold_start_samples),
                },
                "peakLoadsPerNode": s.peak_loads_per_node,
                "nodesWithConcurrentLoads": s.nodes_with_concurrent_loads,
                "nodePeaks": dict(s.node_peaks),
                "gpuHours": s.gpu_hours,
                "gpuHoursServing": s.gpu_hours_serving,
                "cost": s.cost,
                "fleetCost": s.fleet_cost,
                "loadsInFlight": list(s.loads_series),
                "groups": {
                    "count": s.groups,
                    "halfPlaced": s.groups_half_placed,
                    "halfPlacedGpuSeconds": s.half_placed_gpu_s,
                },
                "preemption": {
                    "evictions": s.evictions,
                    "wasted": s.wasted_evictions,
                    "topPriorityColdStarts": s.top_priority_cold_starts,
                    "topPriorityColdStartP50Seconds": s.top_priority_cold_start_p50_s,
                    "topPriorityColdStartP95Seconds": s.top_priority_cold_start_p95_s,
                },
                "simulation": {
                    "events": s.events,
                    "wallSeconds": s.wall_s,
                    "eventsPerSecond": s.events_per_s,
                },
            }
            for s in rows
        ],
    }


def to_json(scenario: Scenario, seed: int, rows: Sequence[PolicySummary]) -> str:
    """The comparison as indented JSON text."""
    return json.dumps(report_json(scenario, seed, rows), indent=2) + "\n"


_GROUPS_COLUMN = ("half-\nplaced\ngroups", "right")
"""Shown for scenarios with multi-node replicas: groups half placed, and the GPU-hours their
placed members held meanwhile (the JSON gives GPU-seconds)."""

_COLUMNS = (
    ("policy", "left"),
    ("failed\nloads\n(OOM)", "right"),
    ("over-\ncommitted\npods", "right"),
    ("pods\npending\n(longest)", "right"),
    ("cold start\np50/p95/p99", "right"),
    ("never\nReady", "right"),
    ("peak\nloads\nper node", "right"),
    ("GPU-\nhours", "right"),
    ("cost", "right"),
)


_PREEMPTION_COLUMNS = (
    ("evicted\n(wasted)", "right"),
    ("high-prio\ncold start\np50/p95", "right"),
)
"""Shown for scenarios with priorities: pods preemption evicted (those whose preemptor never
became Ready on their node), and the cold starts of the services at the top priority."""


def _preempting(rows: Sequence[PolicySummary]) -> bool:
    return any(s.evictions or s.top_priority_cold_starts for s in rows)


def _columns(rows: Sequence[PolicySummary]) -> tuple[tuple[str, str], ...]:
    """The table's columns: the groups column only when some run had multi-node replicas,
    the preemption columns only when some run had priorities."""
    groups = (_GROUPS_COLUMN,) if any(s.groups for s in rows) else ()
    return (*_COLUMNS, *groups, *(_PREEMPTION_COLUMNS if _preempting(rows) else ()))


def _cells(s: PolicySummary, groups: bool = False, preempting: bool = False) -> list[str]:
    pending = f"{s.pods_waited} ({_seconds(s.pending_max_s)})" if s.pods_waited else "0"
    extra = [f"{s.groups_half_placed} ({s.half_placed_gpu_s / 3600:,.1f}h)"] if groups else []
    if preempting:
        extra += [
            f"{s.evictions} ({s.wasted_evictions})",
            "/".join(
                _seconds(v)
                for v in (s.top_priority_cold_start_p50_s, s.top_priority_cold_start_p95_s)
            ),
        ]
    return [
        s.policy,
        str(s.failed_loads),
        str(s.overcommitted_pods),
        pending,
        "/".join(_seconds(v) for v in (s.cold_start_p50_s, s.cold_start_p95_s, s.cold_start_p99_s)),
        f"{s.cold_starts_unfinished}/{s.cold_starts}",
        str(s.peak_loads_per_node),
        f"{s.gpu_hours:,.1f}",
        f"${s.cost:,.0f}",
        *extra,
    ]


def table(scenario: Scenario, seed: int, rows: Sequence[PolicySummary]) -> Table:
    """The comparison as a rich table."""
    nodes = sum(p.nodes for p in scenario.pools)
    gpus = sum(p.nodes * p.node_type.shape.gpus for p in scenario.pools)
    columns = _columns(rows)
    t = Table(
        title=f"{scenario.name}: {len(scenario.services)} services on {nodes} nodes "
        f"({gpus} GPUs), {_seconds(scenario.duration_s)}, seed {seed}",
        caption="cold start: first request to Ready; one never Ready counts with the time it "
        "waited. cost: GPU-hours held by pods x the node's price per GPU-hour."
        + (
            " half-placed groups: multi-node replicas holding GPUs while a pod of theirs "
            "found no node (GPU-hours they held)."
            if any(s.groups for s in rows)
            else ""
        )
        + (
            " evicted: pods preemption deleted (wasted: their preemptor never became Ready on "
            "their node)."
            if _preempting(rows)
            else ""
        ),
        box=box.SIMPLE_HEAD,
    )
    for name, justify in columns:
        if justify == "left":
            t.add_column(name, justify="left", no_wrap=True)
        else:
            t.add_column(name, justify="right", no_wrap=True)
    groups = any(s.groups for s in rows)
    for s in rows:
        t.add_row(*_cells(s, groups, _preempting(rows)))
    return t


def console_for() -> Console:
    """A console for the table on stdout: the terminal's width, or 120 columns in a pipe."""
    console = Console()
    return console if console.is_terminal else Console(width=120)


def print_table(
    console: Console, scenario: Scenario, seed: int, rows: Sequence[PolicySummary]
) -> None:
    """Print the comparison table to ``console``."""
    console.print(table(scenario, seed, rows))


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right;vertical-align:bottom}
th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3;white-space:pre-line}
p.note{color:#555;font-size:.85rem;max-width:60rem}
"""


def _pending_html(rows: Sequence[PolicySummary]) -> str:
    """Why pods were still pending when the run ended, per policy (nothing if none were)."""
    items = "".join(
        f"<li><b>{escape(s.policy)}</b>: "
        + "; ".join(f"{n} x {escape(reason)}" for reason, n in s.pending_reasons)
        + "</li>"
        for s in rows
        if s.pending_reasons
    )
    return f"<h2>Pods still pending at the end</h2><ul>{items}</ul>" if items else ""


def _activity_end(rows: Sequence[PolicySummary], duration: float) -> float:
    """Where the loads chart can end: a little after the last change in any policy's series."""
    last = max((s.loads_series[-1][0] for s in rows if s.loads_series), default=duration)
    return min(duration, max(60.0, last * 1.1))


def to_html(scenario: Scenario, seed: int, rows: Sequence[PolicySummary]) -> str:
    """The comparison as one self-contained HTML page with inline SVG charts."""
    nodes = sum(p.nodes for p in scenario.pools)
    gpus = sum(p.nodes * p.node_type.shape.gpus for p in scenario.pools)
    columns = _columns(rows)
    groups, preempting = any(s.groups for s in rows), _preempting(rows)
    head = "".join(f"<th>{escape(name)}</th>" for name, _ in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in _cells(s, groups, preempting)) + "</tr>"
        for s in rows
    )
    cold_lines = []
    for s in rows:
        points = ecdf(s.cold_start_samples)
        if points:
            points = ((points[0][0], 0.0), *points)
        cold_lines.append(Line(s.policy, points))
    longest = max((max(s.cold_start_samples, default=1.0) for s in rows), default=1.0)
    shortest = min((min(s.cold_start_samples, default=longest) for s in rows), default=1.0)
    cold_chart = step_chart(
        cold_lines,
        title="Cold start, first request to Ready (share of cold starts at or below)",
        x_label="seconds (log scale)",
        y_label="share of cold starts",
        x_range=(max(1.0, shortest * 0.8), max(10.0, longest * 1.1)),
        log_x=True,
    )
    load_chart = step_chart(
        [Line(s.policy, tuple((t, float(n)) for t, n in s.loads_series)) for s in rows],
        title="Model loads in flight, whole cluster",
        x_label="seconds since start",
        y_label="loads in flight",
        x_range=(0.0, _activity_end(rows, scenario.duration_s)),
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>vramfit simulation: {escape(scenario.name)}</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>vramfit simulation: {escape(scenario.name)}</h1>"
        f"<p>{escape(scenario.description)}</p>"
        f"<p>{len(scenario.services)} services on {nodes} nodes ({gpus} GPUs), "
        f"{escape(_seconds(scenario.duration_s))} simulated, seed {seed}. Every policy sees "
        "the same traffic.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        '<p class="note">Failed loads: model servers that ran out of GPU memory (each crash '
        "counts; the kubelet restarts them on the same GPUs). Over-committed pods: pods given "
        "GPUs whose free memory could not hold them. Cold start: from the first request that "
        "found the service at zero to its first Ready replica; one that never became Ready "
        "counts with the time it waited. Cost: GPU-hours held by pods times the node's price "
        "per GPU-hour."
        + (
            " Half-placed groups: multi-node replicas some of whose pods held GPUs while "
            "another found no node, with the GPU-hours they held meanwhile."
            if groups
            else ""
        )
        + "</p>"
        f"{_pending_html(rows)}"
        f"<h2>Cold starts</h2>{cold_chart}"
        f"<h2>Loads in flight</h2>{load_chart}"
        "</body></html>\n"
    )
