"""The simulated cluster's true state: nodes, GPUs, pods and the scheduler's resource cache.

What is *true* here (which pod holds which GPU, how many bytes a loading model has put in GPU
memory) is what the policies must not read directly: the default scheduler sees only its own
resource counts, and vramfit sees only what the simulated node agent reports, late. Each policy
reads the truth through its own window, as in a real cluster.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import simpy

from placement.model import Demand, Reservation
from simulator.bandwidth import SharedLink, Transfer
from simulator.catalog import NodeType
from simulator.scenario import Service


class Phase(enum.Enum):
    """Where a pod is in its life, from creation to gone."""

    PENDING = "pending"  # not bound: in the scheduling queue, backing off, or unschedulable
    BINDING = "binding"  # assumed on a node, bind in flight
    BOUND = "bound"  # bound, the kubelet has not started its container yet
    LOADING = "loading"  # the model server is loading weights into GPU memory
    INITIALIZING = "initializing"  # weights loaded, KV cache allocated, warming up
    READY = "ready"
    CRASHED = "crashed"  # out of memory; the kubelet restarts it after a back-off
    TERMINATING = "terminating"
    GONE = "gone"


class SimulationError(RuntimeError):
    """An invariant of the simulation broke (a bug, never a property of the input)."""


class Gpu:
    """One physical GPU; ``reserved`` is memory in use with no pod (driver, out-of-band)."""

    __slots__ = ("holder", "index", "reserved", "total", "uuid")

    def __init__(self, uuid: str, index: int, total: int, reserved: int) -> None:
        self.uuid = uuid
        self.index = index
        self.total = total
        self.reserved = reserved
        self.holder: SimPod | None = None


class Node:
    """One GPU node: its GPUs, its labels, its cached weights, its two load links, its pods."""

    def __init__(
        self, env: simpy.Environment, idx: int, name: str, pool: str, node_type: NodeType
    ) -> None:
        self.idx = idx
        self.name = name
        self.pool = pool
        self.type = node_type
        self.gpus = [
            Gpu(f"GPU-{name}-{i:02d}", i, node_type.shape.vram_per_gpu, node_type.reserved_per_gpu)
            for i in range(node_type.shape.gpus)
        ]
        self.cached: dict[str, int] = {}
        disk, remote = node_type.bandwidths
        self.disk = SharedLink(env, disk)
        self.remote = SharedLink(env, remote)
        self.labels = tuple(sorted(node_type.shape.gfd_labels().items()))
        self.loads = 0
        self.peak_loads = 0
        self.loading: set[SimPod] = set()

    def free_gpus(self) -> list[Gpu]:
        """GPUs no pod holds, in index order."""
        return [g for g in self.gpus if g.holder is None]


@dataclass(eq=False)
class ServiceState:
    """A service during a run: its spec, the demand its pods carry, its pods, its target."""

    spec: Service
    demand: Demand
    pods: list[SimPod] = field(default_factory=list)
    target: int = 0
    created: int = 0
    episode_start: float | None = None


@dataclass(eq=False)
class Group:
    """The pods of one multi-node replica (a LeaderWorkerSet group): created, Ready and
    deleted together (the workers a little after the leader: ``workers_created``).
    ``half_since`` is when it last became half placed (some members
    holding GPUs while another found no node; ``None``: it is not), ``held_gpus`` the GPUs
    its members then hold, ``was_half`` whether it ever was."""

    name: str
    members: list[SimPod] = field(default_factory=list)
    created_at: float = 0.0
    half_since: float | None = None
    held_gpus: int = 0
    was_half: bool = False
    workers_created: bool = False


HOLDING = frozenset(
    {
        Phase.BINDING,
        Phase.BOUND,
        Phase.LOADING,
        Phase.INITIALIZING,
        Phase.READY,
        Phase.CRASHED,
        Phase.TERMINATING,
    }
)
"""Phases in which a pod holds its GPUs in kube-scheduler's accounting (assumed until gone)."""


@dataclass(eq=False)
class SimPod:
    """One predictor pod of a service (one member of ``group`` for a multi-node replica).

    ``stuck``: a group member that found no node while another member held GPUs; ``warm``:
    a group member whose weights are loaded and warmed up, waiting for the rest to be.
    """

    uid: str
    service: ServiceState
    created_at: float
    phase: Phase = Phase.PENDING
    node: Node | None = None
    gpus: tuple[int, ...] = ()
    generation: int = 0
    attempts: int = 0
    queued: bool = False
    backoff_until: float = 0.0
    unschedulable_since: float | None = None
    waited: bool = False
    last_reason: str = ""
    failed_at_version: tuple[int, ...] | None = None
    deleted: bool = False
    bound_at: float | None = None
    ready_at: float | None = None
    gone_at: float | None = None
    terminating_at: float | None = None
    restarts: int = 0
    overcommitted: bool = False
    transfer: Transfer | None = None
    link: SharedLink | None = None
    oom_stage: str = ""
    frozen_bytes: int = 0
    reservation: Reservation | None = None
    chosen_gpus: tuple[str, ...] = ()
    group: Group | None = None
    stuck: bool = False
    warm: bool = False

    @property
    def key(self) -> str:
        """``namespace/name`` as messages and reservations write it."""
        return f"serving/{self.uid}"

    def __hash__(self) -> int:
        return hash(self.uid)

    def gpu_bytes(self) -> int:
        """Bytes this pod's processes use on each of its GPUs now."""
        spec = self.service.spec
        if self.phase is Phase.LOADING and self.transfer is not None and self.link is not None:
            fraction = self.link.moved(self.transfer) / spec.pod_model_bytes
            return int(spec.weights_per_gpu * fraction)
        if self.phase in (Phase.INITIALIZING, Phase.READY):
            return spec.vram_per_gpu
        if self.phase is Phase.TERMINATING:
            return self.frozen_bytes
        return 0


IntArray = npt.NDArray[np.int64]


class SchedulerCache:
    """kube-scheduler's own accounting: requests of the pods it assumed or bound, per node.

    Pods count from the moment the scheduler assumes them until they are gone (a terminating
    pod still counts). ``spread`` counts each service's pods that are not terminating, for
    PodTopologySpread. ``version`` changes with every change.
    """

    def __init__(self, nodes: list[Node]) -> None:
        n = len(nodes)
        self.gpu_alloc: IntArray = np.array([x.type.shape.gpus for x in nodes], dtype=np.int64)
        self.cpu_alloc: IntArray = np.array([x.type.cpu_milli for x in nodes], dtype=np.int64)
        self.mem_alloc: IntArray = np.array([x.type.memory_bytes for x in nodes], dtype=np.int64)
        self.gpu_used: IntArray = np.zeros(n, dtype=np.int64)
        self.cpu_used: IntArray = np.zeros(n, dtype=np.int64)
        self.mem_used: IntArray = np.zeros(n, dtype=np.int64)
        self.spread: dict[str, IntArray] = {}
        self._n = n
        self.version = 0

    def counts(self, service: str) -> IntArray:
        """Pods of ``service`` per node that are not terminating."""
        c = self.spread.get(service)
        if c is None:
            c = self.spread[service] = np.zeros(self._n, dtype=np.int64)
        return c

    def assume(self, node: int, pod: SimPod) -> None:
        self.version += 1
        spec = pod.service.spec
        self.gpu_used[node] += spec.gpus
        self.cpu_used[node] += spec.cpu_milli
        self.mem_used[node] += spec.memory_bytes
        self.counts(spec.name)[node] += 1

    def terminating(self, node: int, pod: SimPod) -> None:
        self.version += 1
        self.counts(pod.service.spec.name)[node] -= 1

    def forget(self, node: int, pod: SimPod, *, terminated: bool) -> None:
        self.version += 1
        spec = pod.service.spec
        self.gpu_used[node] -= spec.gpus
        self.cpu_used[node] -= spec.cpu_milli
        self.mem_used[node] -= spec.memory_bytes
        if not terminated:
            self.counts(spec.name)[node] -= 1
