"""The decision frame per InferenceService: cold start, the cost of staying warm, and whether
to scale to zero.

Cold start = runtime start + weights / bandwidth of the tier the weights load from (the node's
LocalModelCache when the storageUri is cached, else the storageUri's scheme). Staying warm
costs the GPUs of one replica all day at the price of the pool the plan puts it on; scaling to
zero saves that for the idle hours. The recommendation weighs the cold start against the
service's cold-start budget, and the recommended ``vramfit.io/*`` annotations tell the
extender the VRAM each GPU needs. Pure.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from placement.demand import A_MODEL, A_MODEL_SIZE, A_NVLINK, A_VRAM_PER_GPU
from placement.model import NvlinkMode
from planner.inputs.catalog import Catalog
from planner.inputs.kserve import LocalModelCache
from planner.inputs.traffic import Traffic
from planner.packing.units import ComponentDemand, Scenario
from planner.plan import Plan

HOURS_PER_DAY = 24.0
MAIN_COMPONENTS = ("predictor", "workload", "decode")
"""The component a service's frame describes: the predictor, or an LLMInferenceService's
(decode) workload."""


class Recommendation(enum.StrEnum):
    """What to do with a service's minimum replicas."""

    SCALE_TO_ZERO = "scale-to-zero"
    KEEP_WARM = "keep-warm"
    CACHE_THEN_SCALE_TO_ZERO = "cache-then-scale-to-zero"
    SIZE_UNKNOWN = "size-unknown"
    NOT_PLACEABLE = "not-placeable"


@dataclass(frozen=True, slots=True)
class ServiceFrame:
    """The facts and the recommendation for one InferenceService or LLMInferenceService."""

    name: str
    kind: str
    components: tuple[str, ...]
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
    recommendation: Recommendation
    action: str
    annotations: Mapping[str, str]
    notes: tuple[str, ...] = ()


def storage_tier(uri: str, caches: Sequence[LocalModelCache]) -> str:
    """The tier weights load from: ``cache`` when a LocalModelCache holds exactly this URI
    (KServe matches the storageUri to sourceModelUri), else the URI's scheme. Pure."""
    if uri and any(c.source_model_uri == uri for c in caches):
        return "cache"
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    return {"https": "http", "http": "http"}.get(
        scheme, scheme if scheme in ("pvc", "s3", "gs", "hf", "oci") else "oci"
    )


@dataclass(frozen=True, slots=True)
class _Knob:
    """How a kind of service is told to scale to zero (``zero``), to stop scaling to zero
    (``warm``), and what staying warm keeps (``at_least_one``)."""

    zero: str
    warm: str
    at_least_one: str


_KNOBS = {
    "InferenceService": _Knob("minReplicas: 0", "set minReplicas: 1", "minReplicas >= 1"),
    # An LLMInferenceService's scaling.minReplicas is at least 1; KEDA's idleReplicaCount is
    # what takes it to zero.
    "LLMInferenceService": _Knob(
        "scaling.keda.idleReplicaCount: 0",
        "remove idleReplicaCount: 0",
        "at least one replica",
    ),
}


def _quantity(n: int) -> str:
    mib = 1024**2
    gib = 1024**3
    return f"{n // gib}Gi" if n % gib == 0 else f"{-(-n // mib)}Mi"


def recommended_annotations(d: ComponentDemand) -> dict[str, str]:
    """The ``vramfit.io/*`` pod annotations that tell the extender this component's need."""
    out: dict[str, str] = {}
    if d.sizing.model_id:
        out[A_MODEL] = d.sizing.model_id
    if d.sizing.weights_bytes:
        out[A_MODEL_SIZE] = _quantity(d.sizing.weights_bytes)
    if d.vram_per_gpu:
        out[A_VRAM_PER_GPU] = _quantity(d.vram_per_gpu)
    if d.gpus_per_pod > 1:
        out[A_NVLINK] = "required" if d.nvlink is NvlinkMode.REQUIRED else str(d.nvlink.value)
    return out


def _pool_and_price(plan: Plan, d: ComponentDemand, catalog: Catalog) -> tuple[str, float | None]:
    for sc in (Scenario.PEAK, Scenario.COLD_BURST, Scenario.ROLLOUT, Scenario.MIN):
        sp = plan.scenarios.get(sc)
        if sp is None:
            continue
        for p in sp.placements:
            if p.unit.service == d.service and p.unit.component == d.component:
                pool = catalog.pool(p.pool)
                return pool.name, pool.cost_per_gpu_hour
    if d.allowed:
        cheapest = min((catalog.pool(n) for n in d.allowed), key=lambda p: p.cost_per_gpu_hour)
        return cheapest.name, cheapest.cost_per_gpu_hour
    return "", None


def frame_service(
    name: str,
    demands: Sequence[ComponentDemand],
    plan: Plan,
    traffic: Traffic,
    caches: Sequence[LocalModelCache],
) -> ServiceFrame:
    """The decision frame of one service from its GPU components. Pure."""
    main = next((d for d in demands if d.component in MAIN_COMPONENTS), demands[0])
    profile = traffic.profile(name)
    budget = (
        profile.cold_start_budget_s
        if profile.cold_start_budget_s is not None
        else traffic.default_budget_s
    )
    idle = profile.idle()
    if idle is None:
        idle = traffic.default_idle_fraction
    tier = storage_tier(main.storage_uri, caches)
    bandwidth = traffic.tiers[tier].bytes_per_s
    weights = main.sizing.weights_bytes
    cold = None if weights is None else traffic.runtime_start_s + weights / bandwidth
    cached = (
        None
        if weights is None
        else traffic.runtime_start_s + weights / traffic.tiers["cache"].bytes_per_s
    )
    pool, price = _pool_and_price(plan, main, plan.catalog)
    gpus = sum(d.gpus_per_replica for d in demands)
    warm_replicas = max(1, main.min_replicas)
    gpu_hours = warm_replicas * gpus * HOURS_PER_DAY
    warm_cost = None if price is None else gpu_hours * price
    savings = (
        None
        if price is None or idle is None
        else idle * HOURS_PER_DAY * gpus * price * warm_replicas
    )
    current_zero = main.scale_to_zero
    knob = _KNOBS.get(main.kind, _KNOBS["InferenceService"])
    notes = tuple(dict.fromkeys(n for d in demands for n in d.notes))
    if not main.allowed:
        rec, action = (
            Recommendation.NOT_PLACEABLE,
            "no pool of the catalog can run it (see unplaceable)",
        )
    elif cold is None or cached is None:
        rec, action = (
            Recommendation.SIZE_UNKNOWN,
            "set vramfit.io/model-size so the cold start can be estimated",
        )
    elif cold <= budget:
        if idle == 0:
            rec = Recommendation.KEEP_WARM
            action = f"busy every hour: keep {knob.at_least_one}" + (
                f" ({knob.warm})" if current_zero else ""
            )
        else:
            rec = Recommendation.SCALE_TO_ZERO
            gain = f", saves ${savings:,.0f}/day" if savings else ""
            verb = "keep" if current_zero else "set"
            action = f"{verb} {knob.zero} (cold start {cold:.0f}s within {budget:.0f}s{gain})"
    elif tier != "cache" and cached <= budget and idle != 0:
        rec = Recommendation.CACHE_THEN_SCALE_TO_ZERO
        action = (
            f"add a LocalModelCache for {main.storage_uri} (cold start {cold:.0f}s -> "
            f"{cached:.0f}s, budget {budget:.0f}s), then {knob.zero}"
        )
    else:
        rec = Recommendation.KEEP_WARM
        action = (
            f"{knob.warm} (cold start {cold:.0f}s exceeds the {budget:.0f}s budget)"
            if current_zero
            else f"keep {knob.at_least_one} (cold start {cold:.0f}s exceeds the {budget:.0f}s "
            "budget)"
        )
    annotations: dict[str, str] = {}
    for d in demands:
        annotations.update(recommended_annotations(d))
    shapes = [f"{d.component}: {d.shape}" for d in demands]
    return ServiceFrame(
        name=name,
        kind=main.kind,
        components=tuple(d.component for d in demands),
        replica_shape=main.shape if len(demands) == 1 else "; ".join(shapes),
        model_id=main.sizing.model_id,
        sizing_source=main.sizing.source,
        weights_bytes=weights,
        gpus_per_replica=gpus,
        vram_per_gpu_bytes=main.vram_per_gpu,
        min_replicas=main.min_replicas,
        peak_replicas=main.replicas[Scenario.PEAK],
        storage_tier=tier,
        load_bytes_per_second=bandwidth,
        cold_start_seconds=cold,
        cached_cold_start_seconds=cached,
        cold_start_budget_seconds=budget,
        pool=pool,
        price_per_gpu_hour=price,
        warm_gpu_hours_per_day=gpu_hours,
        warm_cost_per_day=warm_cost,
        idle_fraction=idle,
        scale_to_zero_savings_per_day=savings,
        recommendation=rec,
        action=action,
        annotations=annotations,
        notes=notes,
    )


def frame_all(
    plan: Plan, traffic: Traffic, caches: Sequence[LocalModelCache]
) -> tuple[ServiceFrame, ...]:
    """Decision frames of every InferenceService that asks for GPUs, by name. Pure."""
    by_service: dict[str, list[ComponentDemand]] = {}
    for d in plan.demands:
        by_service.setdefault(d.service, []).append(d)
    return tuple(
        frame_service(name, ds, plan, traffic, caches) for name, ds in sorted(by_service.items())
    )
