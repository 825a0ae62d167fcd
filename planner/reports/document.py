"""The report document: every field of the plan report, typed, in the shape of its JSON.

``Report`` is the one document every renderer takes (terminal table, Markdown, HTML) and the
JSON report writes as it is. Top-level fields describe the primary scenario (``pools``,
``cost_per_hour``, ``lower_bound_cost_per_hour``, ``gap``, ``ffd``, ``placements``,
``unplaceable``); ``scenarios`` holds the same for each scenario (with the nodes each
multi-node replica spans, ``groups``), ``services`` the decision frame per InferenceService or
LLMInferenceService, and ``inputs`` what was read, with notes and the objects that could not
be. A plan is for one cloud (``cloud``): ``clouds`` compares the plan of every provider that was
planned, the report's own first, then the others cheapest first. ``build`` makes it from the
plans; the names here are the JSON keys.
"""

from __future__ import annotations

import json
from typing import TypedDict

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


class GroupJSON(TypedDict):
    """One multi-node replica: the pool it runs in and the nodes its pods span."""

    inference_service: str
    component: str
    replica: int
    canary: bool
    pool: str
    pods: int
    gpus_per_pod: list[int]
    nodes: list[str]


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
    groups: list[GroupJSON]
    unplaceable: list[UnplaceableJSON]
    fit_errors: list[str]
    stats: StatsJSON


class ServiceJSON(TypedDict):
    """Decision frame of one InferenceService or LLMInferenceService (``kind``).
    ``replica_shape`` says how one replica is split into pods, per component when several."""

    name: str
    kind: str
    components: list[str]
    replica_shape: str
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


class BrokenJSON(TypedDict):
    """An object (or a file) that could not be read or sized, and every problem with it."""

    source: str
    object: str
    problems: list[str]


class InputsJSON(TypedDict):
    """What was read, and from where; notes on reading it, and what could not be read."""

    source: str
    inference_services: int
    llm_inference_services: int
    llm_inference_service_configs: int
    gpu_components: int
    local_model_caches: int
    default_deployment_mode: str | None
    skipped_kinds: dict[str, int]
    notes: list[str]
    broken: list[BrokenJSON]


class CatalogPoolJSON(TypedDict):
    """A pool of the catalog and where its price comes from."""

    name: str
    cloud: str
    instance_type: str
    gpu_product: str
    gpus_per_node: int
    price_per_hour: float
    currency: str
    price_source: str
    price_as_of: str
    price_note: str


class CatalogJSON(TypedDict):
    """The node-pool catalog the plan chose from."""

    source: str
    pools: list[CatalogPoolJSON]


class CloudScenarioJSON(TypedDict):
    """What one provider's plan of one scenario costs, beside its baseline and bound."""

    cost_per_hour: float
    ffd_cost_per_hour: float
    lower_bound_cost_per_hour: float | None
    gap: float | None
    nodes: int
    gpus: int
    unplaced_pods: int


class CloudJSON(TypedDict):
    """One provider planned on its own pools, for the primary scenario (``pools``, costs,
    ``ffd``: its own first-fit-decreasing baseline) and per scenario. ``unplaced_pods`` counts
    every scenario's pods its pools cannot run or have no room for; ``cannot_place`` names
    their services."""

    cloud: str
    catalog_pools: int
    pools: list[PoolJSON]
    cost_per_hour: float
    lower_bound_cost_per_hour: float | None
    gap: float | None
    ffd: BaselineJSON
    savings_vs_ffd_per_hour: float
    nodes: int
    gpus: int
    unplaced_pods: int
    cannot_place: list[str]
    scenarios: dict[str, CloudScenarioJSON]


class SolverJSON(TypedDict):
    """The solver options of the run."""

    time_limit_seconds: float
    seed: int
    workers: int
    deterministic: bool


class Report(TypedDict):
    """The whole report."""

    version: int
    cloud: str
    scenario: str
    pools: list[PoolJSON]
    cost_per_hour: float
    lower_bound_cost_per_hour: float | None
    gap: float | None
    ffd: BaselineJSON
    placements: list[PlacementJSON]
    unplaceable: list[UnplaceableJSON]
    services: list[ServiceJSON]
    scenarios: dict[str, ScenarioJSON]
    clouds: list[CloudJSON]
    inputs: InputsJSON
    catalog: CatalogJSON
    solver: SolverJSON
    warnings: list[str]


def render_json(report: Report) -> str:
    """The report as indented JSON text."""
    return json.dumps(report, indent=2, sort_keys=False) + "\n"
