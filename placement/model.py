"""Frozen value types for GPUs, nodes, workload demand and reservations.

They are the vocabulary every part of vramfit shares; keeping them in one small module lets the
extender, the simulator and the planner exchange state without importing each other.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

GIB = 1024**3


class NvlinkMode(enum.StrEnum):
    """Whether a multi-GPU pod needs its GPUs on one NVLink island."""

    REQUIRED = "required"
    PREFERRED = "preferred"
    NONE = "none"


class Allocator(enum.StrEnum):
    """Who picks a pod's GPUs: the kubelet with the device plugin (``nvidia.com/gpu``), or
    kube-scheduler's DRA plugin (a ResourceClaim of a GPU device class). Each may hand out any
    GPU it may choose, by its own rule (``placement.fit``)."""

    DEVICE_PLUGIN = "device-plugin"
    DRA = "dra"


class ReservationState(enum.StrEnum):
    """Where a reservation is in its life: chosen in filter, written at bind, loading, done."""

    ASSUMED = "assumed"
    BOUND = "bound"
    LOADING = "loading"
    READY = "ready"


@dataclass(frozen=True, slots=True)
class PodMemory:
    """Bytes that one pod's processes use on one GPU."""

    pod_uid: str
    bytes: int


@dataclass(frozen=True, slots=True)
class MigDevice:
    """One MIG device (a GPU instance with its compute instance) of a GPU in MIG mode, with
    its own memory. Published for people and tools to see; vramfit places whole GPUs only, so a
    GPU in MIG mode is never a candidate whatever its devices hold."""

    uuid: str
    gpu_instance_id: int | None = None
    compute_instance_id: int | None = None
    total_bytes: int | None = None
    free_bytes: int | None = None
    used_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class GpuState:
    """One physical GPU (or MIG device) as the node agent last saw it.

    ``free_bytes``/``used_bytes`` are ``None`` when the agent could not read them (an NVML
    error): an unknown reading is never a candidate.
    """

    uuid: str
    index: int
    product: str
    total_bytes: int
    free_bytes: int | None
    used_bytes: int | None = None
    healthy: bool = True
    unhealthy_reason: str = ""
    mig_enabled: bool = False
    nvlink_peers: frozenset[str] = frozenset()
    holder_pod_uid: str | None = None
    pod_memory: tuple[PodMemory, ...] = ()
    pci_bus_id: str = ""
    numa_node: int | None = None
    mig_devices: tuple[MigDevice, ...] = ()


@dataclass(frozen=True, slots=True)
class CachedModel:
    """Model weights already on the node's local disk."""

    model_id: str
    bytes: int


@dataclass(frozen=True, slots=True)
class NodeState:
    """A GPU node as the extender sees it: the agent's last report plus its liveness.

    Times are seconds since the epoch, supplied by the caller (the core never reads a clock).
    ``lease_renewed_at`` is ``None`` when no agent Lease was seen. ``agent_error`` carries a
    whole-node fault such as "NVML unavailable". GPU UUIDs and indices are distinct within a
    node (``decode_status`` rejects a report that repeats one).
    """

    name: str
    gpus: tuple[GpuState, ...]
    observed_at: float
    lease_renewed_at: float | None
    lease_duration_s: float = 40.0
    cached_models: tuple[CachedModel, ...] = ()
    local_disk_bytes_per_s: float | None = None
    remote_bytes_per_s: float | None = None
    agent_error: str = ""
    labels: tuple[tuple[str, str], ...] = ()

    def gpu(self, uuid: str) -> GpuState | None:
        """The GPU with this UUID, if the node has it."""
        for g in self.gpus:
            if g.uuid == uuid:
                return g
        return None

    def has_cached(self, model_id: str) -> bool:
        """Whether the weights of ``model_id`` are on this node's disk."""
        return any(m.model_id == model_id for m in self.cached_models)


@dataclass(frozen=True, slots=True)
class Demand:
    """What one pod needs: GPUs, VRAM per GPU, and preferences read from its annotations.

    ``allocator`` says who will pick the GPUs: the device plugin (``nvidia.com/gpu``) or the
    DRA scheduler plugin (GPUs claimed through ResourceClaims, ``placement.dra``)."""

    gpus: int
    vram_per_gpu: int = 0
    model_id: str = ""
    model_bytes: int = 0
    nvlink: NvlinkMode = NvlinkMode.PREFERRED
    products: frozenset[str] = frozenset()
    policy: str = ""
    allocator: Allocator = Allocator.DEVICE_PLUGIN

    def __post_init__(self) -> None:
        bad = [
            f"{name} is {value}"
            for name, value in (
                ("gpus", self.gpus),
                ("vram_per_gpu", self.vram_per_gpu),
                ("model_bytes", self.model_bytes),
            )
            if value < 0
        ]
        if bad:
            raise ValueError(f"demand: {', '.join(bad)}; counts and sizes must not be negative")


@dataclass(frozen=True, slots=True)
class Reservation:
    """GPUs promised to a pod that the node may not show as used yet.

    ``expires_at`` bounds an ``assumed`` reservation that bind never confirmed; ``None`` means
    it lives until the pod is gone or its load is visible on the node.
    """

    pod_uid: str
    pod_key: str
    node: str
    gpu_uuids: tuple[str, ...]
    bytes_per_gpu: int
    state: ReservationState
    created_at: float
    model_id: str = ""
    expires_at: float | None = None
    load_bytes: int = 0
    """Bytes of weights the pod loads (``placement.loadbudget.load_bytes``); 0 when unknown,
    counted then as ``bytes_per_gpu`` on each of its GPUs."""

    def active(self, now: float) -> bool:
        """Whether the reservation still holds its GPUs at ``now``."""
        return self.expires_at is None or now < self.expires_at

    def in_flight(self) -> bool:
        """Whether the pod's load may still be running (it shares the node's bandwidth)."""
        return self.state is not ReservationState.READY


@dataclass(frozen=True, slots=True)
class FitSettings:
    """Knobs of the fit rules; validated by the shells that read them from configuration.

    ``nvlink_best_effort``: a pod that requires one NVLink island goes where the device
    plugin's predicted set lies on one, rather than only where every set it may give does.

    ``load_budget_s``: the load budget (``placement.loadbudget``): a node takes another cold
    load only while every cold load in flight there, the new one included, could finish within
    this many seconds at its remote bandwidth; ``None`` turns the budget off.
    """

    max_report_age_s: float = 120.0
    nvlink_for_multi_gpu: NvlinkMode = NvlinkMode.PREFERRED
    nvlink_best_effort: bool = False
    load_budget_s: float | None = 120.0


@dataclass(frozen=True, slots=True)
class Fit:
    """A node that can take the pod now, and the GPUs it would use."""

    node: str
    gpu_uuids: tuple[str, ...]
    same_island: bool


@dataclass(frozen=True, slots=True)
class Reject:
    """A node that cannot take the pod. ``resolvable`` is false when it never could."""

    node: str
    reason: str
    resolvable: bool


@dataclass(frozen=True, slots=True)
class Decision:
    """The result of deciding over many nodes: the chosen fit, every score, every reject."""

    chosen: Fit | None
    scores: tuple[tuple[str, float], ...] = ()
    fits: tuple[Fit, ...] = ()
    rejects: tuple[Reject, ...] = field(default_factory=tuple)
