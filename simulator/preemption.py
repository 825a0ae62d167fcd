"""Preemption in the simulated kube-scheduler: services' priorities, kube-scheduler's own choice
of victims and node, and the vramfit extender's preempt verb narrowing it.

A pod that finds no node may evict pods of lower priority (``Service.priority``, a
PriorityClass value; equal priorities never preempt each other). As kube-scheduler's
DefaultPreemption does it (``pkg/scheduler/framework/plugins/defaultpreemption``):

* eligibility: not while the pod's victims on its nominated node are still terminating. Under
  vramfit also not while the extender's view still shows them (the preempt verb's "victims
  leaving" answer, ``extender.preempt``): kube-scheduler counts them gone as soon as they are;
* candidates: the nodes that match the pod's node selector and failed the filters for
  something preemption could change. With no node passing kube-scheduler's own filters, the
  extender is not asked, so under vramfit too every such node is a candidate; where some
  passed, those vramfit refused as never able to take the pod are not;
* victims per node, by counting: every pod of lower priority removed, then given back, the
  most important first (higher priority, then the earlier start), while the pod's GPU, CPU and
  memory requests still fit the scheduler's cache; a node needing none is no candidate;
* vramfit's preempt verb (``placement.preemption.choose_victims``, on the extender's view of
  the node and its reservations): keeps, narrows or drops each candidate; then, across the
  candidates it keeps, drops those where the pod's load would score worse than on one the
  scheduler ranks no lower (``placement.preemption.preferred``);
* the node: the lowest most important victim, then the lowest sum of priorities, then the
  fewest victims, then the latest start among the most important victims, then the first by
  name (pickOneNodeForPreemption, without budgets: the scenarios have none);
* the victims are deleted (they terminate as any deleted pod does) and the pod is nominated:
  while it waits, its requests count on the nominated node in the scheduler's cache, so no
  other pod takes the room (kube-scheduler counts nominated pods only against pods of lower or
  equal priority; here against every pod). Under vramfit the nomination is also a reservation
  in the extender's view, on the GPUs the verb predicted there (``extender.nominations``): other
  pods' filters count it, and it is a load in flight; the pod's own placement replaces it. Once
  the victims are gone, the pod is retried when the agent's next report should show their GPUs
  free, as the extender's requeuer nudges a refused pod when capacity comes back.

Measured: evictions; evictions *wasted* (the preemptor did not become Ready on the victim's
node: it went elsewhere, never ran, or crashed there out of memory; ``Eviction.wasted``); and,
in ``metrics``, the cold starts of the services at the top priority.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from placement.fit import fit, product_key
from placement.model import Reject
from placement.preemption import INT32_SPAN, Candidate, Chosen, Victim, choose_victims, preferred
from simulator.cluster import HOLDING, Node, Phase, SchedulerCache, ServiceState, SimPod
from simulator.scheduling import UPDATED
from simulator.vramfit_policy import VramfitExtender


@dataclass(frozen=True, slots=True)
class Eviction:
    """One victim: the pod evicted, the node it was on, and the pod it made room for."""

    victim: SimPod
    node: Node
    preemptor: SimPod

    @property
    def wasted(self) -> bool:
        """The preemptor did not become Ready on the victim's node: it went elsewhere, or was
        deleted, or crashed there, or still waits. One still loading there when the run ends,
        never crashed, is not counted."""
        p = self.preemptor
        if p.node is not self.node:
            return True
        if p.ready_at is not None:
            return False
        return p.deleted or p.restarts > 0 or p.bound_at is None


@dataclass(eq=False)
class Nomination:
    """A preemptor, its nominated node and the victims it evicted there."""

    pod: SimPod
    node: Node
    victims: list[SimPod]
    counted: bool = False  # its requests count on the node in the scheduler's cache


@dataclass(eq=False)
class Preemption:
    """Preemption for one run (see the module docstring). ``delete`` evicts a pod (the
    kubelet's deletion), ``replace`` has a victim's service make up for it (its ReplicaSet),
    ``after`` schedules a callback, ``requeue`` tells the queue about a pod event; ``vramfit``
    is the extender under a vramfit policy, ``None`` under the default."""

    nodes: list[Node]
    cache: SchedulerCache
    live: Callable[[], Sequence[SimPod]]
    delete: Callable[[SimPod], None]
    replace: Callable[[ServiceState], None]
    after: Callable[[float, Callable[[], None]], None]
    requeue: Callable[[str], None]
    vramfit: VramfitExtender | None
    recheck_s: float
    enabled: bool = True  # false when every service has the same priority: none preempts
    evictions: list[Eviction] = field(default_factory=list)
    nominated: dict[str, Nomination] = field(default_factory=dict)

    # -- the engine's hooks -------------------------------------------------------------------

    def before(self, pod: SimPod) -> None:
        """A scheduling attempt for ``pod``: its own room no longer counts; rooms of pods
        deleted meanwhile are given back."""
        if not self.nominated:
            return
        for uid, n in list(self.nominated.items()):
            if n.counted and (n.pod is pod or n.pod.deleted):
                self.cache.forget(n.node.idx, n.pod, terminated=False)
                n.counted = False
            if n.pod.deleted:
                del self.nominated[uid]

    def placed(self, pod: SimPod) -> None:
        """The pod found a node: its nomination ends."""
        self.nominated.pop(pod.uid, None)

    def failed(self, pod: SimPod, now: float) -> None:
        """The pod found no node: preempt for it if it may, and keep its room counted."""
        if not self.enabled:
            return
        n = self.nominated.get(pod.uid)
        if self._eligible(pod, n):
            found = self._choose(pod, now)
            if found is not None:
                node, victims, room = found
                for v in victims:
                    self.evictions.append(Eviction(v, node, pod))
                    self.delete(v)
                for svc in {id(v.service): v.service for v in victims}.values():
                    self.replace(svc)  # its ReplicaSet makes a new pod, which waits
                n = self.nominated[pod.uid] = Nomination(pod, node, victims)
                if self.vramfit is not None:
                    self.vramfit.nominate(pod, node, room, now)
                    self._recheck(pod, n)
        if n is not None and not n.counted and not pod.deleted:
            self.cache.assume(n.node.idx, pod)
            n.counted = True

    # -- rooms ---------------------------------------------------------------------------

    def _recheck(self, pod: SimPod, n: Nomination) -> None:
        """Under vramfit: once the victims are gone, retry the pod when the agent's report
        should show their GPUs free (the extender's requeuer does it on the report)."""

        def check() -> None:
            if pod.deleted or self.nominated.get(pod.uid) is not n:
                return
            if all(v.phase is Phase.GONE for v in n.victims) and not self._shown(n):
                self.requeue(UPDATED)
                return
            self.after(self.recheck_s, check)

        self.after(self.recheck_s, check)

    def _shown(self, n: Nomination) -> bool:
        """Whether the extender's view of the nominated node still shows a victim's GPUs."""
        assert self.vramfit is not None
        uids = {v.uid for v in n.victims}
        report = self.vramfit.reports[n.node.idx]
        return any(g.holder_pod_uid in uids for g in report.gpus)

    def _eligible(self, pod: SimPod, n: Nomination | None) -> bool:
        if n is None:
            return True
        if any(v.phase is not Phase.GONE for v in n.victims):
            return False  # its victims are still terminating
        return self.vramfit is None or not self._shown(n)

    # -- kube-scheduler's choice, and vramfit's verb --------------------------------------------

    def _choose(self, pod: SimPod, now: float) -> tuple[Node, list[SimPod], tuple[str, ...]] | None:
        """The node to preempt on, its victims, and (under vramfit) the GPUs the verb
        predicted for the pod there."""
        priority = pod.service.spec.priority
        lower = [p for p in self.live() if _running(p) and p.service.spec.priority < priority]
        if not lower:
            return None
        by_node: dict[int, list[SimPod]] = {}
        for p in lower:
            assert p.node is not None
            by_node.setdefault(p.node.idx, []).append(p)
        candidates: list[tuple[Node, list[SimPod], tuple[str, ...]]] = []
        verbs: list[tuple[Node, list[SimPod], Candidate]] = []
        for idx, pods in sorted(by_node.items()):
            node = self.nodes[idx]
            if not self._potential(pod, node, now):
                continue
            victims = self._victims(pod, node, pods)
            if not victims:
                continue
            if self.vramfit is None:
                candidates.append((node, victims, ()))
                continue
            got = self._verb(pod, node, victims, now)
            if got is not None:
                kept = {v.uid for v in got.victims}
                verbs.append((node, [p for p in victims if p.uid in kept], got))
        if verbs:
            assert self.vramfit is not None
            demand = pod.service.demand
            keep = set(
                preferred(
                    [c for _, _, c in verbs],
                    demand,
                    now=now,
                    profile=self.vramfit.profile_of(demand),
                    pod_uid=pod.uid,
                )
            )
            candidates = [(n, v, c.chosen.fit.gpu_uuids) for n, v, c in verbs if n.name in keep]
        if not candidates:
            return None
        return min(candidates, key=lambda c: _pick_key(c[1]))

    def _potential(self, pod: SimPod, node: Node, now: float) -> bool:
        """The node matches the pod's selector, and under vramfit (when the extender was
        asked) is not one it refused as never able to take the pod."""
        spec = pod.service.spec
        if spec.products and product_key(node.type.shape.product) not in {
            product_key(p) for p in spec.products
        }:
            return False
        if self.vramfit is None:
            return True
        c = self.cache
        passed_kube = (
            c.gpu_alloc[node.idx] - c.gpu_used[node.idx] >= spec.gpus
            and c.cpu_alloc[node.idx] - c.cpu_used[node.idx] >= spec.cpu_milli
            and c.mem_alloc[node.idx] - c.mem_used[node.idx] >= spec.memory_bytes
        )
        if not passed_kube:
            return True
        v = self.vramfit
        report, reservations = v.view_of(node, now)
        result = fit(
            report,
            pod.service.demand,
            reservations,
            now=now,
            settings=v.fit_settings,
            pod_uid=pod.uid,
        )
        return not (isinstance(result, Reject) and not result.resolvable)

    def _victims(self, pod: SimPod, node: Node, lower: list[SimPod]) -> list[SimPod]:
        """kube-scheduler's SelectVictimsOnNode on the scheduler's cache (by counting)."""
        spec = pod.service.spec
        c, i = self.cache, node.idx
        free = [
            int(c.gpu_alloc[i] - c.gpu_used[i]),
            int(c.cpu_alloc[i] - c.cpu_used[i]),
            int(c.mem_alloc[i] - c.mem_used[i]),
        ]
        need = (spec.gpus, spec.cpu_milli, spec.memory_bytes)

        def size(p: SimPod) -> tuple[int, int, int]:
            s = p.service.spec
            return (s.gpus, s.cpu_milli, s.memory_bytes)

        for p in lower:
            free = [f + x for f, x in zip(free, size(p), strict=True)]
        if any(f < n for f, n in zip(free, need, strict=True)):
            return []
        victims = []
        for p in sorted(lower, key=_importance):
            back = [f - x for f, x in zip(free, size(p), strict=True)]
            if all(b >= n for b, n in zip(back, need, strict=True)):
                free = back
            else:
                victims.append(p)
        return victims

    def _verb(self, pod: SimPod, node: Node, offered: list[SimPod], now: float) -> Candidate | None:
        """vramfit's preempt verb on one candidate (``extender.preempt`` over the extender's
        view): the node with the victims it keeps, ``None`` when it drops the node."""
        v = self.vramfit
        assert v is not None
        report, reservations = v.view_of(node, now)
        victims = [Victim(p.uid, p.service.spec.priority, p.bound_at) for p in offered]
        got = choose_victims(
            report,
            pod.service.demand,
            victims,
            reservations,
            now=now,
            settings=v.fit_settings,
            pod_uid=pod.uid,
        )
        if not isinstance(got, Chosen):
            return None
        kept = set(got.victims) or {x.uid for x in victims}
        return Candidate(
            report, tuple(reservations), got, tuple(x for x in victims if x.uid in kept)
        )

    def summary(self) -> tuple[int, int]:
        """(evictions, evictions wasted) so far."""
        return len(self.evictions), sum(1 for e in self.evictions if e.wasted)


def _running(p: SimPod) -> bool:
    """A pod preemption may evict: on a node, holding GPUs, not already terminating."""
    return p.node is not None and p.phase in HOLDING and p.phase is not Phase.TERMINATING


def _importance(p: SimPod) -> tuple[int, float, str]:
    """Most important first: higher priority, then the earlier start."""
    started = p.bound_at if p.bound_at is not None else math.inf
    return (-p.service.spec.priority, started, p.uid)


def _pick_key(victims: list[SimPod]) -> tuple[int, int, int, float]:
    """pickOneNodeForPreemption's order (lowest wins), budgets aside."""
    top = max(v.service.spec.priority for v in victims)
    total = sum(v.service.spec.priority + INT32_SPAN for v in victims)
    starts = [v.bound_at or 0.0 for v in victims if v.service.spec.priority == top]
    return (top, total, len(victims), -min(starts))
