"""The ``default`` policy: kube-scheduler's default profile with the stock NVIDIA device plugin.

This is what a cluster without vramfit does with a GPU pod, emulated plugin by plugin:

Modeled
  * Filter: NodeResourcesFit on the pod's ``nvidia.com/gpu``, CPU and memory requests against
    what the scheduler has assumed or bound on each node (a terminating pod counts until it is
    gone); a node selector on ``nvidia.com/gpu.product`` when the service names products.
  * percentageOfNodesToScore: from 100 nodes up only the first ``max(100, n * p / 100)``
    feasible nodes are scored, ``p`` adaptive (``50 - n / 125``, at least 5) unless set, the
    search starting where the previous cycle stopped.
  * Score: NodeResourcesFit ``LeastAllocated`` over CPU and memory (weight 1),
    NodeResourcesBalancedAllocation over CPU and memory (weight 1), and PodTopologySpread with
    the system default constraints (``kubernetes.io/hostname``, maxSkew 3, ScheduleAnyway;
    weight 2) counting the service's own pods. Integer arithmetic as the Go code does it.
    With one feasible node there is no scoring. Ties are broken uniformly at random (the
    scheduler's reservoir sampling) from a generator seeded by the run's seed.
  * The device plugin: at admission the kubelet lists the GPUs no running pod holds in Go's
    map order (a random order) and takes the NVIDIA device plugin's preferred allocation, its
    best-effort policy (``placement.deviceplugin``: the same rule under every policy, vramfit's
    included, so the comparison is between schedulers, not kubelets).
  * Queueing: a pod that fits nowhere is retried when an assigned pod is deleted (the
    NodeResourcesFit queueing hint), after its back-off, or after ``unschedulableTimeout``.

Left out (they rate every GPU node alike here, or the scenarios have none of them)
  * TaintToleration, NodeAffinity, InterPodAffinity, ImageLocality and VolumeBinding scores;
    the zone constraint of PodTopologySpread (simulated nodes carry no zone label).
  * Pods-per-node limits; extended resources other than GPUs. (Preemption by priority is
    modeled for every policy in ``simulator.preemption``.)
  * Nothing here knows GPU memory: a 40 GB and an 80 GB GPU are both ``nvidia.com/gpu: 1``,
    and memory held outside Kubernetes is invisible. That is the point of the comparison.
"""

from __future__ import annotations

import math
import random

import numpy as np

from placement.deviceplugin import pair_scores, preferred_allocation
from simulator.cluster import Node, SchedulerCache, SimPod
from simulator.scheduling import DELETED, KubeFilter, Placement, Unschedulable

MAX_NODE_SCORE = 100
MIN_FEASIBLE_NODES = 100
MIN_FEASIBLE_PERCENT = 5
SYSTEM_DEFAULT_MAX_SKEW = 3
WEIGHT_FIT = 1
WEIGHT_BALANCED = 1
WEIGHT_SPREAD = 2


def nodes_to_find(total: int, percent: int) -> int:
    """kube-scheduler's ``numFeasibleNodesToFind`` (pure): how many feasible nodes to score."""
    if total < MIN_FEASIBLE_NODES or percent >= 100:
        return total
    if percent <= 0:
        percent = max(MIN_FEASIBLE_PERCENT, 50 - total // 125)
    return max(MIN_FEASIBLE_NODES, total * percent // 100)


def device_plugin_gpus(node: Node, count: int, rng: random.Random) -> tuple[int, ...]:
    """GPU indices (in index order) the kubelet hands a pod asking for ``count`` on ``node``:
    the GPUs no pod holds, in the map order ``rng`` draws, through the device plugin's preferred
    allocation (``placement.deviceplugin.preferred_allocation``). Reads nothing a scheduler
    chose; ``ValueError`` when too few are free."""
    free = [g.index for g in node.free_gpus()]
    if len(free) < count:
        raise ValueError(f"node {node.name} has {len(free)} free GPUs, pod asks for {count}")
    rng.shuffle(free)
    return tuple(sorted(preferred_allocation(free, count, pair_scores(node.type.shape.nvlink))))


class DefaultScheduler:
    """kube-scheduler's default profile (see the module docstring)."""

    name = "default"

    def __init__(
        self, nodes: list[Node], cache: SchedulerCache, *, seed: int, nodes_to_score_percent: int
    ) -> None:
        self.nodes = nodes
        self.cache = cache
        self.filter = KubeFilter(nodes, cache)
        self.rng = random.Random(f"{seed}/kube-scheduler")
        self.percent = nodes_to_score_percent
        self.next_start = 0

    def _sample(self, mask: np.ndarray) -> np.ndarray:
        """The feasible nodes kube-scheduler scores, searching from where it stopped last."""
        n = len(self.nodes)
        k = nodes_to_find(n, self.percent)
        order = np.roll(np.arange(n), -self.next_start)
        positions = np.flatnonzero(mask[order])
        if len(positions) > k:
            processed = int(positions[k - 1]) + 1
            positions = positions[:k]
        else:
            processed = n
        self.next_start = (self.next_start + processed) % n
        return np.asarray(order[positions])

    def place(self, pod: SimPod, now: float) -> Placement | Unschedulable:
        mask = self.filter.feasible(pod)
        if not mask.any():
            return Unschedulable(self.filter.why_not(pod))
        found = self._sample(mask)
        if len(found) == 1:
            return Placement(int(found[0]))
        total = self._scores(pod, found)
        best = np.flatnonzero(total == total.max())
        pick = best[self.rng.randrange(len(best))] if len(best) > 1 else best[0]
        return Placement(int(found[pick]))

    def _scores(self, pod: SimPod, idx: np.ndarray) -> np.ndarray:
        spec = pod.service.spec
        c = self.cache
        cpu_alloc, mem_alloc = c.cpu_alloc[idx], c.mem_alloc[idx]
        cpu_req = c.cpu_used[idx] + spec.cpu_milli
        mem_req = c.mem_used[idx] + spec.memory_bytes
        # NodeResourcesFit, LeastAllocated: (capacity - requested) * 100 / capacity per resource.
        least = (
            (cpu_alloc - cpu_req) * MAX_NODE_SCORE // cpu_alloc
            + (mem_alloc - mem_req) * MAX_NODE_SCORE // mem_alloc
        ) // 2
        # NodeResourcesBalancedAllocation: 1 - standard deviation of the requested fractions.
        f_cpu = np.minimum(1.0, cpu_req / cpu_alloc)
        f_mem = np.minimum(1.0, mem_req / mem_alloc)
        balanced = ((1.0 - np.abs(f_cpu - f_mem) / 2.0) * MAX_NODE_SCORE).astype(np.int64)
        # PodTopologySpread, system default hostname constraint, then NormalizeScore.
        weight = math.log(len(idx) + 2)
        raw = np.floor(
            c.counts(spec.name)[idx] * weight + (SYSTEM_DEFAULT_MAX_SKEW - 1) + 0.5
        ).astype(np.int64)
        top, bottom = int(raw.max()), int(raw.min())
        if top == 0:
            spread = np.full(len(idx), MAX_NODE_SCORE, dtype=np.int64)
        else:
            spread = MAX_NODE_SCORE * (top + bottom - raw) // top
        total: np.ndarray = WEIGHT_FIT * least + WEIGHT_BALANCED * balanced + WEIGHT_SPREAD * spread
        return total

    def bind(self, pod: SimPod, placement: Placement, now: float) -> Placement | None:
        """The DefaultBinder: binding a pod the scheduler assumed always succeeds here."""
        return placement

    def requeues_on(self, event: str) -> bool:
        return event == DELETED

    def state_version(self) -> tuple[int, ...]:
        """The scheduler cache is all a failed placement reads (no random draw when none fits)."""
        return (self.cache.version,)

    def node_changed(self, node: Node, now: float) -> None:
        """The default scheduler reads no node agent."""

    def pod_event(self, pod: SimPod, event: str, now: float) -> None:
        """Nothing beyond the scheduler cache, which the engine keeps."""
