"""Classes of interchangeable nodes, so a vramfit decision looks at one node of each class.

The decision depends on a node only through its report content, its reservations and whether
it caches the pod's model, and ties go to the name that sorts first. Nodes with equal report
content (GPU memory, holders, health, node type), no reservation, and the same cache answer for
the model are interchangeable, so only the first of each such class by name is handed to
``decide_fleet``. On a fleet of a thousand nodes that mostly sit idle this is what keeps a
simulated day under a minute. Kept apart from ``vramfit_policy`` because it is bookkeeping for
speed, not part of what the extender decides; ``check=True`` there proves it changes nothing.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import numpy.typing as npt

from placement.model import GpuState, NodeState
from simulator.cluster import Node


def _signature(gpus: tuple[GpuState, ...]) -> tuple[Hashable, ...]:
    """Everything of a node's GPUs the decision reads, without identities (UUIDs, pod UIDs)."""
    return tuple(
        (
            g.free_bytes,
            g.used_bytes,
            g.healthy,
            g.unhealthy_reason,
            g.mig_enabled,
            g.holder_pod_uid is not None,
            len(g.pod_memory),
        )
        for g in gpus
    )


def node_key(node: Node, state: NodeState) -> Hashable:
    """What two nodes must share to be interchangeable (besides reservations and cache)."""
    return (node.type, _signature(state.gpus), state.agent_error)


class NodeClasses:
    """Each node's class, as a small integer per node; classes are counted and dropped unused."""

    def __init__(self, nodes: int) -> None:
        self.key_of = np.zeros(nodes, dtype=np.int64)
        self._key_ids: dict[Hashable, int] = {}
        self._key_refs: dict[int, int] = {}
        self._id_keys: dict[int, Hashable] = {}
        self._next_key = 0

    def _intern(self, key: Hashable) -> int:
        kid = self._key_ids.get(key)
        if kid is None:
            kid = self._next_key
            self._next_key += 1
            self._key_ids[key] = kid
            self._id_keys[kid] = key
            self._key_refs[kid] = 0
        self._key_refs[kid] += 1
        return kid

    def place(self, i: int, key: Hashable) -> None:
        """Node ``i`` starts in the class of ``key``."""
        self.key_of[i] = self._intern(key)

    def rekey(self, i: int, key: Hashable) -> None:
        """Node ``i`` moves to the class of ``key`` (nothing happens if it is there already)."""
        old = int(self.key_of[i])
        if self._id_keys[old] == key:
            return
        self.key_of[i] = self._intern(key)
        self._key_refs[old] -= 1
        if not self._key_refs[old]:
            del self._key_ids[self._id_keys.pop(old)]
            del self._key_refs[old]

    def representatives(
        self,
        feasible: npt.NDArray[np.bool_],
        claimed: npt.NDArray[np.bool_],
        cached: npt.NDArray[np.bool_] | None,
    ) -> list[int]:
        """The nodes a decision must look at, by index: every feasible node with a reservation
        (``claimed``), and the first feasible node by name of each class among the rest, apart
        for nodes that cache the pod's model and those that do not (``cached``, ``None``: the
        pod names no model)."""
        plain = feasible & ~claimed
        chosen: list[npt.NDArray[np.intp]] = [np.flatnonzero(feasible & claimed)]
        groups = [plain] if cached is None else [plain & ~cached, plain & cached]
        for group in groups:
            idx = np.flatnonzero(group)
            if len(idx):
                _, first = np.unique(self.key_of[idx], return_index=True)
                chosen.append(idx[first])
        return sorted(int(i) for part in chosen for i in part)
