"""The planner's units: from InferenceService components to the pods each scenario places.

Not the core's ``placement.demand`` (what one live pod asks of a node): this is what a whole
component needs in the plan. A component (predictor, transformer or explainer that asks for
GPUs, or an LLMInferenceService workload) becomes a ``ComponentDemand``: GPUs and VRAM per pod,
pods per replica (a multi-node tensor/pipeline parallel group, or a LeaderWorkerSet of a leader
and its workers), CPU and memory, the NVLink rule, the node pools it may use (see
``eligibility``) and its replicas in each scenario (see ``replicas``).

``units`` expands a component into one ``Unit`` per pod of a scenario, and ``item_types``
groups identical units into the packing problem's item types; the pods of one multi-node
replica form a group the packing keeps whole on one pool. Pure: it works on parsed values and
the catalog, and does no I/O.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from placement.demand import A_GPU_PRODUCT, A_NVLINK
from placement.fields import Problem
from placement.model import NvlinkMode
from placement.models import Headroom, ModelCatalog, Sizing
from planner.inputs.catalog import Catalog
from planner.inputs.component import Component
from planner.inputs.kserve import KSERVE_DEFAULT_DEPLOYMENT_MODE, InferenceService
from planner.inputs.model_ids import identify, size
from planner.inputs.traffic import Traffic
from planner.packing.eligibility import placement_rejection, pool_rejection
from planner.packing.problem import ItemType
from planner.packing.replicas import SCENARIOS, Scenario, replicas

__all__ = [
    "SCENARIOS",
    "ComponentDemand",
    "DemandSettings",
    "Scenario",
    "Unit",
    "component_demand",
    "item_types",
    "units",
]


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
    worker_gpus_per_pod: int | None = None
    kind: str = "InferenceService"
    model_guessed_from: str = ""

    @property
    def worker_gpus(self) -> int:
        """GPUs of each worker pod of a group (those of the head unless they differ)."""
        return self.gpus_per_pod if self.worker_gpus_per_pod is None else self.worker_gpus_per_pod

    @property
    def gpus_per_replica(self) -> int:
        """GPUs of one replica (every pod of its group)."""
        return self.gpus_per_pod + self.worker_gpus * (self.pods_per_replica - 1)

    @property
    def shape(self) -> str:
        """One replica in words: "1 pod x 4 GPUs", or "2 pods x 8 GPUs (one group)"."""
        gpus = f"{self.gpus_per_pod}"
        if self.worker_gpus != self.gpus_per_pod:
            gpus += f"+{self.worker_gpus}"
        gpus += " GPU" if gpus == "1" else " GPUs"
        if self.pods_per_replica == 1:
            return f"1 pod x {gpus}"
        return f"{self.pods_per_replica} pods x {gpus} (one group)"


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
    group_size: int = 1

    @property
    def uid(self) -> str:
        """A stable identifier of this pod in the plan."""
        return f"{self.replica_uid}/pod-{self.pod}"

    @property
    def replica_uid(self) -> str:
        """A stable identifier of this pod's replica in the plan."""
        kind = "canary" if self.canary else "replica"
        return f"{self.service}/{self.component}/{kind}-{self.replica}"

    @property
    def group(self) -> str:
        """The multi-node group this pod belongs to ("" when its replica is one pod)."""
        return self.replica_uid if self.group_size > 1 else ""

    @property
    def family(self) -> str:
        """The groups of its component: they all have the same shape ("" for no group)."""
        return f"{self.service}/{self.component}" if self.group_size > 1 else ""

    @property
    def needs_island(self) -> bool:
        """Whether its GPUs must share one NVLink island."""
        return self.nvlink is NvlinkMode.REQUIRED and self.gpus > 1


@dataclass(frozen=True, slots=True)
class _Group:
    """How one replica's GPUs are split: GPUs of the head pod and of each worker, pods, the
    parallelism, and how many ways the weights are split (``shards``)."""

    gpus_per_pod: int
    worker_gpus: int
    pods: int
    tensor_parallel: int
    pipeline_parallel: int
    shards: int


def _llm_group(comp: Component) -> _Group:
    """A LeaderWorkerSet replica (or one pod) of an LLMInferenceService workload. Every data
    parallel rank holds the whole model over ``tensor x pipeline`` GPUs; with expert
    parallelism the experts, most of an MoE model's weights, spread over ``tensor x data``."""
    tp, pp = comp.tensor_parallel, comp.pipeline_parallel
    shards = tp * comp.data_parallel if comp.expert_parallel else tp * pp
    pods = comp.pods_per_replica or 1
    worker = comp.worker_gpus_per_pod if comp.multi_node else comp.gpus_per_pod
    return _Group(comp.gpus_per_pod, worker, pods, tp, pp, max(1, shards))


def _group(comp: Component, mode: str, notes: list[str]) -> _Group:
    """The pods of one replica: one pod, or a multi-node group as KServe runs it."""
    if comp.pods_per_replica is not None:
        return _llm_group(comp)
    tp, pp = comp.tensor_parallel, comp.pipeline_parallel
    if not comp.multi_node:
        if tp == 1 and comp.gpus_per_pod > 1:
            tp = comp.gpus_per_pod  # the serving runtimes shard a model over every GPU of the pod
        return _Group(comp.gpus_per_pod, comp.gpus_per_pod, 1, tp, pp, tp * pp)
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
    pods = max(1, math.ceil(tp * pp / per_pod))
    return _Group(per_pod, per_pod, pods, tp, pp, tp * pp)


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
    asks = comp.gpus_per_pod > 0 or comp.worker_gpus_per_pod > 0
    if not asks and (not comp.multi_node or comp.pods_per_replica is not None):
        return None
    notes: list[str] = list(isvc.notes)
    mode = isvc.deployment_mode or settings.default_deployment_mode
    annotations = dict(isvc.annotations)
    group = _group(comp, mode, notes)
    ref = identify(models, annotations, comp.storage_uri, comp.model_name)
    try:
        sizing = size(annotations, ref, group.shards, settings.headroom_for(comp), models)
    except ValueError as exc:
        problems.append(Problem(f"{isvc.origin}: {isvc.kind} {isvc.key}", str(exc)))
        return None
    if ref.guessed_from:
        notes.append(f"model id guessed from {ref.guessed_from}: {ref.model_id}")
    if sizing.vram_per_gpu is None:
        notes.append(
            f"model size unknown ({comp.storage_uri or 'no storageUri'}): planned by GPU count "
            "only; set vramfit.io/model-size"
        )
    try:
        nvlink = _nvlink(annotations, group.tensor_parallel, settings.allow_pcie_tensor_parallel)
    except ValueError as exc:
        where = f"{isvc.origin}: {isvc.kind} {isvc.key}: spec.{comp.name}"
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
        gpus_per_pod=max(group.gpus_per_pod, group.worker_gpus),
        vram_per_gpu=sizing.vram_per_gpu,
        nvlink=nvlink,
        products=products,
    )
    scaled = replicas(isvc, comp, mode, traffic, notes)
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
        replicas=scaled.per_scenario,
        min_replicas=scaled.min_replicas,
        scale_to_zero=scaled.scale_to_zero,
        notes=tuple(dict.fromkeys(notes)),
        worker_gpus_per_pod=group.worker_gpus,
        kind=isvc.kind,
        model_guessed_from=ref.guessed_from,
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
                    gpus=demand.gpus_per_pod if head else demand.worker_gpus,
                    vram_per_gpu=demand.vram_per_gpu or 0,
                    cpu_milli=demand.cpu_milli if head else demand.worker_cpu_milli,
                    memory_bytes=demand.memory_bytes if head else demand.worker_memory_bytes,
                    nvlink=demand.nvlink,
                    model_id=demand.sizing.model_id,
                    model_bytes=demand.sizing.weights_bytes or 0,
                    products=demand.products,
                    allowed=demand.allowed,
                    group_size=demand.pods_per_replica,
                )
            )
    return out


def item_types(all_units: Iterable[Unit]) -> tuple[tuple[ItemType, ...], dict[str, list[Unit]]]:
    """Group identical pods into item types; returns the types and the pods of each. Pods of
    multi-node groups are item types of their own, one family per component, each type
    knowing how many of its pods one group holds. Pure."""
    shapes: dict[tuple[int, int, int, bool, tuple[str, ...], str], list[Unit]] = {}
    for u in all_units:
        shape = (u.gpus, u.cpu_milli, u.memory_bytes, u.needs_island, u.allowed, u.family)
        shapes.setdefault(shape, []).append(u)
    items: list[ItemType] = []
    members: dict[str, list[Unit]] = {}
    for n, (shape, us) in enumerate(sorted(shapes.items(), key=lambda kv: (-kv[0][0], kv[0]))):
        gpus, cpu, mem, island, allowed, family = shape
        per_group = max(Counter(u.group for u in us).values()) if family else 0
        key = f"t{n:03d}-{gpus}gpu{'-nvlink' if island else ''}{'-group' if family else ''}"
        items.append(ItemType(key, gpus, cpu, mem, island, allowed, len(us), family, per_group))
        members[key] = sorted(us, key=lambda u: u.uid)
    return tuple(items), members
