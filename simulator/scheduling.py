"""What the engine asks of a placement policy, and the kube-scheduler filters every policy shares.

Every policy runs inside the same simulated kube-scheduler: a pod must first pass the default
filters (NodeResourcesFit on ``nvidia.com/gpu``, CPU and memory requests, and a node selector on
``nvidia.com/gpu.product`` when the service names GPU products). The default profile then scores
the survivors; a vramfit profile hands them to the extender, which returns one node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from placement.fit import product_key
from simulator.cluster import Node, SchedulerCache, SimPod

BoolArray = npt.NDArray[np.bool_]

# Pod events that kube-scheduler's queue reacts to.
BOUND = "bound"  # an assigned pod was added
UPDATED = "updated"  # an assigned pod changed (Ready, restarted, terminating)
DELETED = "deleted"  # an assigned pod is gone
# What the engine tells a policy about a pod besides those.
READY = "ready"  # the pod's Ready condition turned true
GONE = "gone"  # the pod no longer exists (deleted, whether it was bound or not)


@dataclass(frozen=True, slots=True)
class Placement:
    """A node for the pod; ``gpu_uuids`` empty means the device plugin picks at admission."""

    node: int
    gpu_uuids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Unschedulable:
    """No node for the pod now, and why (as the pod's FailedScheduling event would say)."""

    reason: str


class Policy(Protocol):
    """A placement policy as the engine drives it."""

    name: str

    def place(self, pod: SimPod, now: float) -> Placement | Unschedulable:
        """One scheduling cycle for ``pod``."""
        ...

    def bind(self, pod: SimPod, placement: Placement, now: float) -> Placement | None:
        """The bind step; ``None`` when the node can no longer take the pod."""
        ...

    def requeues_on(self, event: str) -> bool:
        """Whether a pod event moves this policy's unschedulable pods back to the queue."""
        ...

    def state_version(self) -> tuple[int, ...]:
        """Changes whenever anything ``place`` reads changes (equal: the same answer)."""
        ...

    def node_changed(self, node: Node, now: float) -> None:
        """Something on ``node`` changed (what its agent would notice on its next poll)."""
        ...

    def pod_event(self, pod: SimPod, event: str, now: float) -> None:
        """A pod was bound, became Ready, started terminating, or is gone."""
        ...


class KubeFilter:
    """The default filter plugins that see GPU pods: resource counts and the node selector."""

    def __init__(self, nodes: list[Node], cache: SchedulerCache) -> None:
        self.nodes = nodes
        self.cache = cache
        self._products = [product_key(n.type.shape.product) for n in nodes]
        self._selectors: dict[tuple[str, ...], BoolArray] = {}

    def _selector(self, products: tuple[str, ...]) -> BoolArray:
        mask = self._selectors.get(products)
        if mask is None:
            wanted = {product_key(p) for p in products}
            mask = np.array([p in wanted for p in self._products], dtype=np.bool_)
            self._selectors[products] = mask
        return mask

    def feasible(self, pod: SimPod) -> BoolArray:
        """Nodes that pass NodeResourcesFit and the node selector for ``pod``."""
        spec = pod.service.spec
        c = self.cache
        mask = (
            (c.gpu_alloc - c.gpu_used >= spec.gpus)
            & (c.cpu_alloc - c.cpu_used >= spec.cpu_milli)
            & (c.mem_alloc - c.mem_used >= spec.memory_bytes)
        )
        if spec.products:
            mask &= self._selector(spec.products)
        return mask

    def why_not(self, pod: SimPod) -> str:
        """The FailedScheduling message when no node passes the filters."""
        spec = pod.service.spec
        c = self.cache
        n = len(self.nodes)
        parts = []
        selected = self._selector(spec.products) if spec.products else np.ones(n, dtype=np.bool_)
        if spec.products:
            parts.append(f"{n - int(selected.sum())} node(s) didn't match Pod's node selector")
        gpu = int(((c.gpu_alloc - c.gpu_used < spec.gpus) & selected).sum())
        cpu = int(((c.cpu_alloc - c.cpu_used < spec.cpu_milli) & selected).sum())
        mem = int(((c.mem_alloc - c.mem_used < spec.memory_bytes) & selected).sum())
        if gpu:
            parts.append(f"{gpu} Insufficient nvidia.com/gpu")
        if cpu:
            parts.append(f"{cpu} Insufficient cpu")
        if mem:
            parts.append(f"{mem} Insufficient memory")
        return f"0/{n} nodes are available: " + ", ".join(parts) + "."
