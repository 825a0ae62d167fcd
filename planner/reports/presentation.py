"""How numbers read in every human report (table, Markdown, HTML), so all three agree: the
shared tables of the report document, as rows of text. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from placement.quantity import format_bytes
from planner.clouds import ANY, cloud_label
from planner.reports.document import PoolJSON, Report, ServiceJSON


def money(x: float | None, per: str = "") -> str:
    """Dollars with cents, or a dash."""
    return "-" if x is None else f"${x:,.2f}{per}"


def size(n: int | None) -> str:
    """Bytes in binary units, or a dash."""
    return "-" if n is None else format_bytes(n)


def seconds(s: float | None) -> str:
    """A duration such as 45s, 12m 5s, 1h 3m."""
    if s is None:
        return "-"
    if s < 120:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{int(s // 60)}m {int(s % 60)}s"
    return f"{int(s // 3600)}h {int(s % 3600 // 60)}m"


def percent(x: float | None) -> str:
    """A share as a percentage, or a dash."""
    return "-" if x is None else f"{100 * x:.2f}%"


def scenario_rows(report: Report) -> list[list[str]]:
    """One row per scenario: name, nodes, GPUs, plan, FFD, saved, bound, gap, status."""
    rows = []
    for name, sc in report["scenarios"].items():
        rows.append(
            [
                name,
                str(sum(p["nodes"] for p in sc["pools"])),
                str(sc["gpus"]),
                money(sc["cost_per_hour"], "/h"),
                money(sc["ffd"]["cost_per_hour"], "/h"),
                money(sc["savings_vs_ffd_per_hour"], "/h"),
                money(sc["lower_bound_cost_per_hour"], "/h"),
                percent(sc["gap"]),
                sc["stats"]["status"],
            ]
        )
    return rows


CLOUD_HEADER = [
    "cloud",
    "pools",
    "nodes",
    "GPUs",
    "plan",
    "first-fit",
    "saved",
    "lower bound",
    "gap",
    "pods not placed",
]


def cloud_rows(report: Report) -> list[list[str]]:
    """One row per cloud planned, the report's own first, then the others cheapest first: its
    pools in the catalog, then the primary scenario's nodes, GPUs, plan, first-fit decreasing,
    saving, bound and gap, and the pods of any scenario it cannot place."""
    return [
        [
            cloud_label(c["cloud"]),
            str(c["catalog_pools"]),
            str(c["nodes"]),
            str(c["gpus"]),
            money(c["cost_per_hour"], "/h"),
            money(c["ffd"]["cost_per_hour"], "/h"),
            money(c["savings_vs_ffd_per_hour"], "/h"),
            money(c["lower_bound_cost_per_hour"], "/h"),
            percent(c["gap"]),
            str(c["unplaced_pods"]),
        ]
        for c in report["clouds"]
    ]


def cloud_summary(report: Report) -> str:
    """One sentence: which cloud the plan is for and why, or that it mixes clouds."""
    cloud = report["cloud"]
    if cloud == ANY:
        return (
            "This plan mixes the pools of every cloud in the catalog (--cloud any): no single "
            "cluster can run it."
        )
    others = report["clouds"][1:]
    if not others:
        return f"Planned on the {cloud_label(cloud)} pools of the catalog only."
    first, nxt = report["clouds"][0], others[0]
    if first["unplaced_pods"] < nxt["unplaced_pods"]:
        why = "the one that leaves the fewest pods unplaced"
    else:
        why = f"the cheapest for {report['scenario']}"
    return (
        f"Each cloud is planned on its own pools. This plan is for {cloud_label(cloud)}, {why} "
        f"({money(first['cost_per_hour'], '/h')}; next: {cloud_label(nxt['cloud'])} "
        f"{money(nxt['cost_per_hour'], '/h')})."
    )


def plan_title(report: Report, what: str, *, scenario: bool = True) -> str:
    """A section title naming the scenario and the cloud of the plan, such as "Node pools
    (peak, aws)", or only the cloud: "Cost per scenario (aws)"."""
    cloud = cloud_label(report["cloud"])
    return f"{what} ({report['scenario']}, {cloud})" if scenario else f"{what} ({cloud})"


SCENARIO_HEADER = [
    "scenario",
    "nodes",
    "GPUs",
    "plan",
    "first-fit",
    "saved",
    "lower bound",
    "gap",
    "status",
]
SERVICE_HEADER = [
    "service",
    "replica",
    "GPUs",
    "VRAM/GPU",
    "tier",
    "cold start",
    "budget",
    "warm/day",
    "zero saves/day",
    "recommendation",
]


def pool_table(pools: Sequence[PoolJSON]) -> tuple[list[str], list[list[str]]]:
    """Header and one row per pool of a plan. The existing and change columns appear only when
    some pool has existing nodes: without any, the change is just the node count."""
    existing = any(p["existing_nodes"] for p in pools)
    header = ["pool", "GPU", "GPUs/node", "VRAM/GPU", "nodes"]
    header += ["existing", "change", "cost"] if existing else ["cost"]
    rows = []
    for p in pools:
        row = [
            p["name"],
            p["gpu_product"],
            str(p["gpus_per_node"]),
            size(p["vram_per_gpu_bytes"]),
            str(p["nodes"]),
        ]
        if existing:
            row += [
                str(p["existing_nodes"]),
                f"{p['change_nodes']:+d}" if p["change_nodes"] else "0",
            ]
        rows.append([*row, money(p["cost_per_hour"], "/h")])
    return header, rows


def group_lines(report: Report) -> list[str]:
    """One line per multi-node replica of the primary scenario: its pods and GPUs, the one
    pool it runs in, and the nodes it spans."""
    out = []
    for g in report["scenarios"][report["scenario"]]["groups"]:
        kind = "canary" if g["canary"] else "replica"
        gpus = "+".join(str(n) for n in g["gpus_per_pod"])
        out.append(
            f"{g['inference_service']} {g['component']} {kind} {g['replica']}: {g['pods']} pods "
            f"({gpus} GPUs) on {len(g['nodes'])} {g['pool']} nodes: {', '.join(g['nodes'])}"
        )
    return out


def broken_lines(report: Report) -> list[str]:
    """One line per problem of every object (or file) that could not be read or sized."""
    return [p for b in report["inputs"]["broken"] for p in b["problems"]]


def note_lines(report: Report) -> list[str]:
    """The notes on what was read (unknown fields, skipped objects, replaced duplicates),
    then the plan's notes per component."""
    return list(dict.fromkeys([*report["inputs"]["notes"], *report["warnings"]]))


def service_rows(services: Sequence[ServiceJSON]) -> list[list[str]]:
    """One row per InferenceService's decision frame."""
    return [
        [
            s["name"],
            s["replica_shape"],
            str(s["gpus_per_replica"]),
            size(s["vram_per_gpu_bytes"]),
            s["storage_tier"],
            seconds(s["cold_start_seconds"]),
            seconds(s["cold_start_budget_seconds"]),
            money(s["warm_cost_per_day"]),
            money(s["scale_to_zero_savings_per_day"]),
            s["recommendation"],
        ]
        for s in services
    ]
