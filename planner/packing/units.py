"""The planner's units: from InferenceService components to the pods each scenario places.

Not the core's ``placement.demand`` (what one live pod asks of a node): this is what a whole
component needs in the plan. A component (predictor, transformer or explainer that asks for
GPUs) becomes a ``ComponentDemand``: GPUs and VRAM per pod, pods per replica (a multi-node
tensor/pipeline parallel group), CPU and memory, the NVLink rule, the node pools it may use
(see ``eligibility``) and its replicas in each scenario:

- ``min``: the replicas that are always on (``minReplicas``, 1 when left out, as KServe writes);
- ``peak``: ``maxReplicas`` (or the traffic profile's peak when the scale metric is rps);
- ``rollout``: peak plus the canary revision's share while ``canaryTrafficPercent`` is set;
- ``cold-burst``: the always-on replicas plus one replica of every scale-to-zero component,
  all starting at once.

``units`` expands a component into one ``Unit`` per pod of a scenario, and ``item_types``
groups identical units into the packing problem's item types. Pure: it works on parsed values
and the catalog, and does no I/O.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from placement.demand import A_GPU_PRODUCT, A_NVLINK
from placement.fields import Problem
from placement.model import NvlinkMode
from placement.models import Headroom, ModelCatalog, Sizing, size_model
from planner.inputs.catalog import Catalog
from planner.inputs.component import Component
from planner.inputs.kserve import KSERVE_DEFAULT_DEPLOYMENT_MODE, InferenceService
from planner.inputs.traffic import Traffic
from planner.packing.eligibility import placement_rejection, pool_rejection
from planner.packing.problem import ItemType


class Scenario(enum.StrEnum):
    """The demand situations the planner prices."""

    MIN = "min"
    PEAK = "peak"
    ROLLOUT = "rollout"
    COLD_BURST = "cold-burst"


SCENARIOS = tuple(Scenario)


@dataclass(frozen=True, slots=True)
class DemandSettings:
    """Sizing rules that are not in the manifests."""

    headroom: Headroom = field(default_factory=Headroom)
    default_deployment_mode: str = KSERVE_DEFAULT_DEPLOYMENT_MODE
    allow_pcie_tensor_parallel: bool = False

    def headroom_for(self, comp: Component) -> Headroom:
        """The component's own ``--gpu-memory-utilization`` (vLLM args) wins over the default."""
        if comp.gpu_memory_utilization is not None:
            return replace(self.headroom, gpu_memory_utilization=comp.gpu_memory_utilization)
        return self.headroom


@dataclass(frozen=True, slots=True)
class ComponentDemand:
    """What one GPU component needs, whatever the scenario."""

    service: str
    component: str
    deployment_mode: str
    gpus_per_pod: int
    pods_per_replica: int
    tensor_parallel: int
    pipeline_parallel: int
    vram_per_gpu: int | None
    sizing: Sizing
    cpu_milli: int
    memory_bytes: int
    worker_cpu_milli: int
    worker_memory_bytes: int
    nvlink: NvlinkMode
    products: frozenset[str]
    storage_uri: str
    allowed: tuple[str, ...]
    rejected: tuple[tuple[str, str], ...]
    pinned_out: tuple[str, ...]
    replicas: Mapping[Scenario, int]
    min_replicas: int
    scale_to_zero: bool
    notes: tuple[str, ...] = ()

    @property
    def gpus_per_replica(self) -> int:
        """GPUs of one replica (every pod of its group)."""
        return self.gpus_per_pod * self.pods_per_replica


@dataclass(frozen=True, slots=True)
class Unit:
    """One pod to place: ``pod`` 0 is the head of a multi-node group, the rest its workers."""

    service: str
    component: str
    replica: int
    pod: int
    canary: bool
    gpus: int
    vram_per_gpu: int
    cpu_milli: int
    memory_bytes: int
    nvlink: NvlinkMode
    model_id: str
    model_bytes: int
    products: frozenset[str]
    allowed: tuple[str, ...]

    @property
    def uid(self) -> str:
        """A stable identifier of this pod in the plan."""
        kind = "canary" if self.canary else "replica"
        return f"{self.service}/{self.component}/{kind}-{self.replica}/pod-{self.pod}"

    @property
    def needs_island(self) -> bool:
        """Whether its GPUs must share one NVLink island."""
        return self.nvlink is NvlinkMode.REQUIRED and self.gpus > 1


def _peak_from_traffic(comp: Component, traffic: Traffic, key: str) -> int | None:
    profile = traffic.profile(key)
    if not profile.hourly_requests or comp.scale_metric != "rps" or not comp.scale_target:
        return None
    peak_rps = max(profile.hourly_requests) / 3600.0
    return max(1, math.ceil(peak_rps / comp.scale_target))


@dataclass(frozen=True, slots=True)
class _Group:
    """How one replica's GPUs are split: GPUs per pod, pods, and the parallelism."""

    gpus_per_pod: int
    pods: int
    tensor_parallel: int
    pipeline_parallel: int


def _group(comp: Component, mode: str, notes: list[str]) -> _Group:
    """The pods of one replica: one pod, or a multi-node group as KServe runs it."""
    tp, pp = comp.tensor_parallel, comp.pipeline_parallel
    if not comp.multi_node:
        if tp == 1 and comp.gpus_per_pod > 1:
            tp = comp.gpus_per_pod  # the serving runtimes shard a model over every GPU of the pod
        return _Group(comp.gpus_per_pod, 1, tp, pp)
    per_pod = comp.worker_gpus_per_pod or comp.gpus_per_pod
    if per_pod <= 0:
        # kserve-huggingfaceserver-multinode asks for one GPU per pod by default.
        per_pod = 1
        notes.append("multi-node pods ask for no GPU: planned with the runtime default of 1")
    if tp > per_pod and tp % per_pod == 0:
        notes.append(
            f"tensorParallelSize {tp} exceeds {per_pod} GPUs per pod: KServe runs "
            f"TP={per_pod} x PP={pp * tp // per_pod}"
        )
        pp, tp = pp * (tp // per_pod), per_pod
    if mode != "Standard":
        notes.append("multi-node groups run only in Standard deployment mode")
    return _Group(per_pod, max(1, math.ceil(tp * pp / per_pod)), tp, pp)


def _nvlink(annotations: Mapping[str, str], tp: int, allow_pcie: bool) -> NvlinkMode:
    """The NVLink rule: the annotation, else required for tensor parallelism (preferred when
    PCIe is allowed). Raises ``ValueError`` for an annotation value it does not know."""
    raw = annotations.get(A_NVLINK, "").strip().lower()
    if raw in ("required", "true"):
        return NvlinkMode.REQUIRED
    if raw in ("none", "false"):
        return NvlinkMode.NONE
    if raw == "preferred" or allow_pcie:
        return NvlinkMode.PREFERRED
    if raw:
        raise ValueError(f"annotation {A_NVLINK}: {raw!r} is not required, preferred or none")
    return NvlinkMode.REQUIRED if tp > 1 else NvlinkMode.PREFERRED


@dataclass(frozen=True, slots=True)
class _Pools:
    """The pools a component may use, those ruled out with why, and those its node
    constraints exclude."""

    allowed: tuple[str, ...]
    rejected: tuple[tuple[str, str], ...]
    pinned_out: tuple[str, ...]


def _pools(
    catalog: Catalog,
    comp: Component,
    *,
    gpus_per_pod: int,
    vram_per_gpu: int | None,
    nvlink: NvlinkMode,
    products: frozenset[str],
) -> _Pools:
    cpu = max(comp.cpu_milli, comp.worker_cpu_milli if comp.multi_node else 0)
    mem = max(comp.memory_bytes, comp.worker_memory_bytes if comp.multi_node else 0)
    allowed: list[str] = []
    rejected: list[tuple[str, str]] = []
    pinned_out: list[str] = []
    for pool in catalog.pools:
        if (products and pool.gpu_product not in products) or placement_rejection(
            comp.placement, pool
        ):
            pinned_out.append(pool.name)
            continue
        why = pool_rejection(
            pool,
            gpus=gpus_per_pod,
            vram_per_gpu=vram_per_gpu,
            nvlink=nvlink,
            products=products,
            cpu_milli=cpu,
            memory_bytes=mem,
            placement=comp.placement,
        )
        if why is None:
            allowed.append(pool.name)
        else:
            rejected.append((pool.name, why))
    return _Pools(tuple(allowed), tuple(rejected), tuple(pinned_out))


@dataclass(frozen=True, slots=True)
class _Replicas:
    """Replicas per scenario, the always-on ones, and whether it scales to zero."""

    per_scenario: Mapping[Scenario, int]
    min_replicas: int
    scale_to_zero: bool


def _replicas(
    isvc: InferenceService, comp: Component, mode: str, traffic: Traffic, notes: list[str]
) -> _Replicas:
    min_r = 1 if comp.min_replicas is None else comp.min_replicas
    scale_to_zero = min_r == 0
    if scale_to_zero and mode == "Standard" and isvc.autoscaler_class not in ("keda", "external"):
        notes.append("minReplicas 0 in Standard mode with HPA cannot scale to zero: planned as 1")
        min_r, scale_to_zero = 1, False
    if comp.multi_node and min_r == 0:
        notes.append("multi-node groups do not autoscale: planned as 1 replica")
        min_r, scale_to_zero = 1, False
    peak = comp.max_replicas
    from_traffic = _peak_from_traffic(comp, traffic, isvc.key)
    if from_traffic is not None:
        peak = min(from_traffic, comp.max_replicas) if comp.max_replicas else from_traffic
    if not peak:
        peak = max(min_r, 1)
        notes.append(f"maxReplicas unset (unlimited): peak assumes {peak}; set maxReplicas")
    if comp.multi_node:
        peak = max(min_r, 1)
    peak = max(peak, min_r)
    canary = 0
    if comp.canary_traffic_percent is not None and 0 < comp.canary_traffic_percent < 100:
        canary = max(1, math.ceil(peak * comp.canary_traffic_percent / 100))
    per_scenario = {
        Scenario.MIN: min_r,
        Scenario.PEAK: peak,
        Scenario.ROLLOUT: peak + canary,
        Scenario.COLD_BURST: max(min_r, 1),
    }
    return _Replicas(per_scenario, min_r, scale_to_zero)


def component_demand(
    isvc: InferenceService,
    comp: Component,
    *,
    catalog: Catalog,
    models: ModelCatalog,
    traffic: Traffic,
    settings: DemandSettings,
    problems: list[Problem],
) -> ComponentDemand | None:
    """The demand of one component, or ``None`` when it asks for no NVIDIA GPU. Pure."""
    if comp.gpus_per_pod <= 0 and comp.worker_gpus_per_pod <= 0 and not comp.multi_node:
        return None
    notes: list[str] = list(isvc.notes)
    mode = isvc.deployment_mode or settings.default_deployment_mode
    annotations = dict(isvc.annotations)
    group = _group(comp, mode, notes)
    shards = group.tensor_parallel * group.pipeline_parallel
    try:
        sizing = size_model(
            annotations, comp.storage_uri, shards, settings.headroom_for(comp), models
        )
    except ValueError as exc:
        problems.append(Problem(f"{isvc.origin}: InferenceService {isvc.key}", str(exc)))
        return None
    if sizing.vram_per_gpu is None:
        notes.append(
            f"model size unknown ({comp.storage_uri or 'no storageUri'}): planned by GPU count "
            "only; set vramfit.io/model-size"
        )
    try:
        nvlink = _nvlink(annotations, group.tensor_parallel, settings.allow_pcie_tensor_parallel)
    except ValueError as exc:
        where = f"{isvc.origin}: InferenceService {isvc.key}: spec.{comp.name}"
        problems.append(Problem(where, str(exc)))
        return None
    products = frozenset(
        p.strip() for p in annotations.get(A_GPU_PRODUCT, "").split(",") if p.strip()
    )
    if comp.placement.node_name:
        notes.append(f"pinned to node {comp.placement.node_name}: planned as if unpinned")
    pools = _pools(
        catalog,
        comp,
        gpus_per_pod=group.gpus_per_pod,
        vram_per_gpu=sizing.vram_per_gpu,
        nvlink=nvlink,
        products=products,
    )
    replicas = _replicas(isvc, comp, mode, traffic, notes)
    if comp.other_accelerators:
        notes.append(f"also asks for {', '.join(comp.other_accelerators)}: not planned")
    return ComponentDemand(
        service=isvc.key,
        component=comp.name,
        deployment_mode=mode,
        gpus_per_pod=group.gpus_per_pod,
        pods_per_replica=group.pods,
        tensor_parallel=group.tensor_parallel,
        pipeline_parallel=group.pipeline_parallel,
        vram_per_gpu=sizing.vram_per_gpu,
        sizing=sizing,
        cpu_milli=comp.cpu_milli,
        memory_bytes=comp.memory_bytes,
        worker_cpu_milli=comp.worker_cpu_milli if comp.multi_node else comp.cpu_milli,
        worker_memory_bytes=comp.worker_memory_bytes if comp.multi_node else comp.memory_bytes,
        nvlink=nvlink,
        products=products,
        storage_uri=comp.storage_uri,
        allowed=pools.allowed,
        rejected=pools.rejected,
        pinned_out=pools.pinned_out,
        replicas=replicas.per_scenario,
        min_replicas=replicas.min_replicas,
        scale_to_zero=replicas.scale_to_zero,
        notes=tuple(dict.fromkeys(notes)),
    )


def units(demand: ComponentDemand, scenario: Scenario) -> list[Unit]:
    """The pods ``demand`` places in ``scenario``. Pure."""
    out: list[Unit] = []
    total = demand.replicas[scenario]
    regular = min(total, demand.replicas[Scenario.PEAK])
    for r in range(total):
        for pod in range(demand.pods_per_replica):
            head = pod == 0
            out.append(
                Unit(
                    service=demand.service,
                    component=demand.component,
                    replica=r if r < regular else r - regular,
                    pod=pod,
                    canary=r >= regular,
                    gpus=demand.gpus_per_pod,
                    vram_per_gpu=demand.vram_per_gpu or 0,
                    cpu_milli=demand.cpu_milli if head else demand.worker_cpu_milli,
                    memory_bytes=demand.memory_bytes if head else demand.worker_memory_bytes,
                    nvlink=demand.nvlink,
                    model_id=demand.sizing.model_id,
                    model_bytes=demand.sizing.weights_bytes or 0,
                    products=demand.products,
                    allowed=demand.allowed,
                )
            )
    return out


def item_types(all_units: Iterable[Unit]) -> tuple[tuple[ItemType, ...], dict[str, list[Unit]]]:
    """Group identical pods into item types; returns the types and the pods of each. Pure."""
    groups: dict[tuple[int, int, int, bool, tuple[str, ...]], list[Unit]] = {}
    for u in all_units:
        groups.setdefault(
            (u.gpus, u.cpu_milli, u.memory_bytes, u.needs_island, u.allowed), []
        ).append(u)
    items: list[ItemType] = []
    members: dict[str, list[Unit]] = {}
    for n, (shape, us) in enumerate(sorted(groups.items(), key=lambda kv: (-kv[0][0], kv[0]))):
        gpus, cpu, mem, island, allowed = shape
        key = f"t{n:03d}-{gpus}gpu{'-nvlink' if island else ''}"
        items.append(ItemType(key, gpus, cpu, mem, island, allowed, len(us)))
        members[key] = sorted(us, key=lambda u: u.uid)
    return tuple(items), members
