"""Scenarios: the cluster, the InferenceServices and their traffic that a simulation replays.

Frozen dataclasses, pure: what one run needs besides the policy and the seed. A scenario is
written as YAML (``scenario_reader`` reads and validates the document, ``scenario_files``
finds and loads the files, the built-ins among them); a plan's pools can replace its own.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from placement.model import NvlinkMode
from simulator.catalog import NodeType, PlanPool
from simulator.settings import Settings

PATTERNS = ("burst", "onoff", "diurnal", "constant")


@dataclass(frozen=True, slots=True)
class Traffic:
    """Requests per second offered to one service over time.

    ``burst``: ``rate`` from a start drawn uniformly in ``start`` for ``duration`` (the first
    request arrives at the start). ``onoff``: ``rate`` during on periods and nothing during off
    periods, both exponentially distributed with means ``on_mean_s`` / ``off_mean_s``.
    ``diurnal``: between ``trough`` and ``rate`` (the peak) on a cosine with period
    ``period_s`` peaking at ``peak_at_s``. ``constant``: ``rate`` throughout.
    """

    pattern: str
    rate: float
    trough: float = 0.0
    start: tuple[float, float] = (0.0, 0.0)
    duration_s: float | None = None
    on_mean_s: float = 600.0
    off_mean_s: float = 1800.0
    period_s: float = 86400.0
    peak_at_s: float = 50400.0


@dataclass(frozen=True, slots=True)
class Service:
    """One InferenceService: its model, the GPUs of a pod, its autoscaling and traffic.

    A replica is ``pods_per_replica`` pods of ``gpus`` GPUs each: more than one is a
    multi-node replica (a LeaderWorkerSet group, as KServe makes for an LLMInferenceService
    with ``worker`` pods), whose pods hold one shard of the weights each and serve only
    together. ``priority`` is its pods' PriorityClass value: a pod that finds no node may evict
    pods of lower priority (``simulator.preemption``).
    """

    name: str
    model_id: str
    model_bytes: int
    gpus: int
    vram_per_gpu: int
    traffic: Traffic
    nvlink: NvlinkMode = NvlinkMode.PREFERRED
    products: tuple[str, ...] = ()
    init_s: float = 20.0
    min_replicas: int = 0
    max_replicas: int = 4
    scale_to_zero_after_s: float = 300.0
    capacity: float = 1.0
    cpu_milli: int = 8000
    memory_bytes: int = 64 * 1024**3
    policy: str = ""
    pods_per_replica: int = 1
    priority: int = 0

    @property
    def weights_per_gpu(self) -> int:
        """Bytes of weights each GPU of a replica holds (tensor and pipeline parallel split
        them evenly over every GPU of every pod of the replica)."""
        return math.ceil(self.model_bytes / (self.gpus * self.pods_per_replica))

    @property
    def pod_model_bytes(self) -> int:
        """Bytes of weights one pod loads: its share of the replica's."""
        return self.weights_per_gpu * self.gpus if self.pods_per_replica > 1 else self.model_bytes


@dataclass(frozen=True, slots=True)
class Pool:
    """``nodes`` nodes of one type; ``cached`` model ids on how many of them (``None``: all)."""

    name: str
    node_type: NodeType
    nodes: int
    cached: tuple[tuple[str, int | None], ...] = ()

    def node_names(self) -> tuple[str, ...]:
        """The pool's node names: ``<pool>-<index>``, zero-padded so they sort by index."""
        width = len(str(max(0, self.nodes - 1)))
        return tuple(f"{self.name}-{i:0{width}d}" for i in range(self.nodes))


@dataclass(frozen=True, slots=True)
class OutOfBand:
    """GPU memory held outside Kubernetes (a process the device plugin does not know)."""

    node: str
    gpu: int
    bytes: int


@dataclass(frozen=True, slots=True)
class Scenario:
    """Everything one simulation needs besides the policy and the seed."""

    name: str
    duration_s: float
    pools: tuple[Pool, ...]
    services: tuple[Service, ...]
    description: str = ""
    seed: int = 1
    settings: Settings = field(default_factory=Settings)
    out_of_band: tuple[OutOfBand, ...] = ()
    model_sizes: tuple[tuple[str, int], ...] = ()

    def with_plan(self, pools: tuple[PlanPool, ...]) -> Scenario:
        """The same services and traffic on the pools of a plan (cache and out-of-band
        memory are per node of the scenario's own pools, so they are dropped)."""
        return dataclasses.replace(
            self,
            pools=tuple(Pool(p.name, p.node_type, p.nodes) for p in pools),
            out_of_band=(),
        )

    def with_duration(self, duration_s: float) -> Scenario:
        """The same scenario over another horizon."""
        return dataclasses.replace(self, duration_s=duration_s)
