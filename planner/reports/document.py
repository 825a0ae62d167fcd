"""The plan as JSON: the one document every other report renders from.

Top-level fields describe the primary scenario (``pools``, ``cost_per_hour``,
``lower_bound_cost_per_hour``, ``gap``, ``ffd``, ``placements``, ``unplaceable``); ``scenarios``
holds the same for each scenario, and ``services`` the decision frame per InferenceService.
Pure: ``build_report`` only reshapes values.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypedDict

from planner.frame import ServiceFrame
from planner.inputs.sources import Inputs
from planner.packing.units import Scenario
from planner.plan import MICRO, Plan, PoolUse, ScenarioPlan

REPORT_VERSION = 1


class PoolJSON(TypedDict):
    """Nodes of one pool type in a plan."""

    name: str
    gpu_product: str
    gpus_per_node: int
    vram_per_gpu_bytes: int
    nodes: int
    existing_nodes: int
    change_nodes: int
    cost_per_hour: float


class BaselineJSON(TypedDict):
    """The first-fit-decreasing plan."""

    pools: list[PoolJSON]
    cost_per_hour: float


class PlacementJSON(TypedDict):
    """One pod on one node."""

    inference_service: str
    component: str
    replica: int
    canary: bool
    pod: int
    pool: str
    node: str
    gpus: list[int]
    vram_per_gpu_bytes: int


class UnplaceableJSON(TypedDict):
    """Pods that could not be placed and why."""

    inference_service: str
    component: str
    scenario: str
    pods: int
    reason: str


class NodeJSON(TypedDict):
    """One planned node and how full it is."""

    name: str
    pool: str
    gpus: int
    gpus_used: int
    vram_per_gpu_bytes: int
    vram_used_bytes: int
    pods: list[str]


class StatsJSON(TypedDict):
    """How the solver got there."""

    status: str
    bound_source: str
    lp_bound_cost_per_hour: float | None
    simple_bound_cost_per_hour: float
    lp_converged: bool
    columns: int
    iterations: int
    cp_sat_status: str
    wall_seconds: float


class ScenarioJSON(TypedDict):
    """Plan of one scenario."""

    pools: list[PoolJSON]
    cost_per_hour: float
    lower_bound_cost_per_hour: float | None
    gap: float | None
    ffd: BaselineJSON
    savings_vs_ffd_per_hour: float
    gpus: int
    placements: list[PlacementJSON]
    nodes: list[NodeJSON]
    unplaceable: list[UnplaceableJSON]
    fit_errors: list[str]
    stats: StatsJSON


class ServiceJSON(TypedDict):
    """Decision frame of one InferenceService."""

    name: str
    components: list[str]
    model_id: str
    sizing_source: str
    weights_bytes: int | None
    gpus_per_replica: int
    vram_per_gpu_bytes: int | None
    min_replicas: int
    peak_replicas: int
    storage_tier: str
    load_bytes_per_second: float
    cold_start_seconds: float | None
    cached_cold_start_seconds: float | None
    cold_start_budget_seconds: float
    pool: str
    price_per_gpu_hour: float | None
    warm_gpu_hours_per_day: float
    warm_cost_per_day: float | None
    idle_fraction: float | None
    scale_to_zero_savings_per_day: float | None
    recommendation: str
    action: str
    annotations: dict[str, str]
    notes: list[str]


def _r(x: float) -> float:
    return round(x, 4)


def _pools(uses: Sequence[PoolUse]) -> list[PoolJSON]:
    return [
        PoolJSON(
            name=u.pool.name,
            gpu_product=u.pool.gpu_product,
            gpus_per_node=u.pool.gpus,
            vram_per_gpu_bytes=u.pool.vram_per_gpu,
            nodes=u.nodes,
            existing_nodes=u.pool.existing_nodes,
            change_nodes=u.change,
            cost_per_hour=_r(u.cost_per_hour),
        )
        for u in uses
    ]


def scenario_json(sp: ScenarioPlan) -> ScenarioJSON:
    """One scenario as JSON. Pure."""
    s = sp.stats
    lb = sp.lower_bound_cost_per_hour
    return ScenarioJSON(
        pools=_pools(sp.pools),
        cost_per_hour=_r(sp.cost_per_hour),
        lower_bound_cost_per_hour=None if lb is None else _r(lb),
        gap=None if sp.gap is None else round(sp.gap, 6),
        ffd=BaselineJSON(pools=_pools(sp.ffd_pools), cost_per_hour=_r(sp.ffd_cost_per_hour)),
        savings_vs_ffd_per_hour=_r(sp.ffd_cost_per_hour - sp.cost_per_hour),
        gpus=sum(u.nodes * u.pool.gpus for u in sp.pools),
        placements=[
            PlacementJSON(
                inference_service=p.unit.service,
                component=p.unit.component,
                replica=p.unit.replica,
                canary=p.unit.canary,
                pod=p.unit.pod,
                pool=p.pool,
                node=p.node,
                gpus=list(p.gpu_indices),
                vram_per_gpu_bytes=p.unit.vram_per_gpu,
            )
            for p in sorted(sp.placements, key=lambda p: p.unit.uid)
        ],
        nodes=[
            NodeJSON(
                name=n.name,
                pool=n.pool,
                gpus=n.gpus,
                gpus_used=n.gpus_used,
                vram_per_gpu_bytes=n.vram_per_gpu,
                vram_used_bytes=n.vram_used,
                pods=[p.unit.uid for p in n.pods],
            )
            for n in sp.nodes
        ],
        unplaceable=[
            UnplaceableJSON(
                inference_service=u.service,
                component=u.component,
                scenario=u.scenario,
                pods=u.pods,
                reason=u.reason,
            )
            for u in sp.unplaced
        ],
        fit_errors=list(sp.fit_errors),
        stats=StatsJSON(
            status=s.status,
            bound_source=s.bound_source,
            lp_bound_cost_per_hour=None if s.lp_bound is None else _r(s.lp_bound / MICRO),
            simple_bound_cost_per_hour=_r(s.simple_bound / MICRO),
            lp_converged=s.lp_converged,
            columns=s.columns,
            iterations=s.iterations,
            cp_sat_status=s.cp_sat_status,
            wall_seconds=round(s.wall_s, 3),
        ),
    )


def service_json(f: ServiceFrame) -> ServiceJSON:
    """One decision frame as JSON. Pure."""

    def opt(x: float | None) -> float | None:
        return None if x is None else _r(x)

    return ServiceJSON(
        name=f.name,
        components=list(f.components),
        model_id=f.model_id,
        sizing_source=f.sizing_source,
        weights_bytes=f.weights_bytes,
        gpus_per_replica=f.gpus_per_replica,
        vram_per_gpu_bytes=f.vram_per_gpu_bytes,
        min_replicas=f.min_replicas,
        peak_replicas=f.peak_replicas,
        storage_tier=f.tier,
        load_bytes_per_second=f.load_bytes_per_s,
        cold_start_seconds=opt(f.cold_start_seconds),
        cached_cold_start_seconds=opt(f.cached_cold_start_seconds),
        cold_start_budget_seconds=f.cold_start_budget_seconds,
        pool=f.pool,
        price_per_gpu_hour=opt(f.price_per_gpu_hour),
        warm_gpu_hours_per_day=f.warm_gpu_hours_per_day,
        warm_cost_per_day=opt(f.warm_cost_per_day),
        idle_fraction=f.idle_fraction,
        scale_to_zero_savings_per_day=opt(f.scale_to_zero_savings_per_day),
        recommendation=f.recommendation.value,
        action=f.action,
        annotations=dict(f.annotations),
        notes=list(f.notes),
    )


def build_report(
    plan: Plan,
    frames: Sequence[ServiceFrame],
    inputs: Inputs,
    primary: Scenario,
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """The whole report as a JSON-ready dict. Pure."""
    scenarios = {sc.value: scenario_json(sp) for sc, sp in plan.scenarios.items()}
    main = scenarios[primary.value]
    unplaceable = [u for s in scenarios.values() for u in s["unplaceable"]]
    return {
        "version": REPORT_VERSION,
        "scenario": primary.value,
        "pools": main["pools"],
        "cost_per_hour": main["cost_per_hour"],
        "lower_bound_cost_per_hour": main["lower_bound_cost_per_hour"],
        "gap": main["gap"],
        "ffd": main["ffd"],
        "placements": main["placements"],
        "unplaceable": unplaceable,
        "services": [service_json(f) for f in frames],
        "scenarios": scenarios,
        "inputs": {
            "source": inputs.source,
            "inference_services": len(inputs.services),
            "gpu_components": len(plan.demands),
            "local_model_caches": len(inputs.caches),
            "default_deployment_mode": (
                inputs.config.default_deployment_mode if inputs.config else None
            ),
            "skipped_kinds": dict(inputs.skipped),
        },
        "catalog": {
            "source": plan.catalog.source,
            "pools": [
                {
                    "name": p.name,
                    "cloud": p.cloud,
                    "instance_type": p.instance_type,
                    "gpu_product": p.gpu_product,
                    "gpus_per_node": p.gpus,
                    "price_per_hour": p.price.per_hour,
                    "currency": p.price.currency,
                    "price_source": p.price.source,
                    "price_as_of": p.price.as_of,
                    "price_note": p.price.note,
                }
                for p in plan.catalog.pools
            ],
        },
        "solver": {
            "time_limit_seconds": plan.options.time_limit_s,
            "seed": plan.options.seed,
            "workers": plan.options.workers,
            "deterministic": plan.options.deterministic,
        },
        "warnings": list(warnings),
    }


def render_json(report: dict[str, Any]) -> str:
    """The report as indented JSON text."""
    return json.dumps(report, indent=2, sort_keys=False) + "\n"
