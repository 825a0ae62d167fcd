"""The ``vramfit`` policies: the extender's own decisions, fed by simulated agent reports.

A vramfit scheduler profile is kube-scheduler with the vramfit extender (decide mode,
``percentageOfNodesToScore: 100``). Per GPU pod this module does what the extender does, with
the placement core's own functions, not a copy of them:

* the pod's demand is read from its pod JSON by ``placement.demand.demand_from_pod``;
* filter: ``placement.fleet.decide_fleet`` over the nodes that passed kube-scheduler's own
  filters, against the extender's view (a ``placement.fleet.Fleet`` holding the last report of
  each node's agent and its Lease) and the reservations in flight; the chosen node gets an
  assumed reservation from ``placement.lifecycle.assume``;
* bind: ``placement.fit.fit`` re-checks the node, and the reservation becomes bound with the
  GPUs it predicts. The kubelet does not read them: it gives the pod whatever set the device
  plugin's rule draws (``simulator.kubelet``), which is why the fit holds a node to every set
  the rule may give; once the agent reports the pod holding GPUs, the reservation takes those
  (``placement.lifecycle.reconcile``);
* groups (the pods of a multi-node replica): the first member's filter decides every member
  at once with ``placement.groups.decide_group`` over the nodes that passed kube-scheduler's
  filters, and reserves them together; a later member is sent to its reserved node. A group
  that does not fit whole reserves nothing, and each member says why;
* reservation life by the extender's own rule, ``placement.lifecycle``, applied on every pod
  event and every report: a reservation's load is in flight until its pod is Ready (again
  after a crash); it ends when the pod is gone, or when the pod is Ready and the agent's report
  shows it holding as many GPUs as it reserved (setting ``reservationEnd: loaded`` also waits
  for the report to show the reserved memory in use on each);
* a refused pod is retried when a report shows capacity back (a GPU no pod holds any more, or
  more free memory: ``capacity_back``), as the extender's Requeuer touches the pods it refused
  (``extender.requeue``); kube-scheduler alone would retry them only on a pod event or after
  ``unschedulableTimeout``.

The agent polls its node every ``agentInterval`` while something there changes and publishes
when the report differs; an unchanged report is republished after ``reportMaxAge``; the Lease
is renewed every ``leaseInterval``. GPU memory in the view therefore lags a load, which is what
reservations exist to cover.

Speed: only one node of each class of interchangeable nodes is handed to ``decide_fleet``
(``node_classes``; with ``check=True`` every decision is also made over all nodes and
compared). Leases and republished reports are brought up to date for the nodes a decision
reads, when it reads them. That is exact only while agents keep their reports and Leases fresh
(``reportMaxAge`` below fit()'s report age limit, ``leaseInterval`` below ``leaseDuration``),
which scenario validation requires: a simulated agent never fails.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import simpy

from placement.fit import fit
from placement.fleet import Fleet, Query, decide_fleet
from placement.groups import GroupQuery, GroupRefusal, Member, decide_group
from placement.lifecycle import GONE, EndRule, PodFacts, assume, nominated_room, settle
from placement.model import (
    CachedModel,
    Demand,
    Fit,
    FitSettings,
    GpuState,
    NodeState,
    Reject,
    Reservation,
    ReservationState,
)
from placement.policies import DEFAULT_PROFILE, PROFILES, Profile, resolve_profile
from placement.reference import decide
from simulator import agent
from simulator.cluster import Node, Phase, SchedulerCache, SimPod, SimulationError
from simulator.node_classes import NodeClasses, node_key
from simulator.scheduling import UPDATED, BoolArray, KubeFilter, Placement, Unschedulable
from simulator.settings import Settings

_NOT_STARTED = frozenset({Phase.PENDING, Phase.BINDING, Phase.BOUND})


def pod_facts(pod: SimPod) -> PodFacts:
    """What the extender would read from this pod's API object (pure): its phase, its Ready
    condition, whether it is terminating, whether it still exists."""
    if pod.phase is Phase.GONE:
        return GONE
    return PodFacts(
        phase="Pending" if pod.phase in _NOT_STARTED else "Running",
        ready=pod.phase is Phase.READY,
        terminating=pod.phase is Phase.TERMINATING,
    )


class VramfitExtender:
    """kube-scheduler with the vramfit extender, for one profile (see the module docstring)."""

    def __init__(
        self,
        name: str,
        nodes: list[Node],
        cache: SchedulerCache,
        settings: Settings,
        env: simpy.Environment,
        *,
        seed: int,
        profile: str | None,
        check: bool = False,
        reference: bool = False,
        fit_settings: FitSettings | None = None,
    ) -> None:
        self.name = name
        self.nodes = nodes
        self.settings = settings
        self.filter = KubeFilter(nodes, cache)
        self.env = env
        self.forced: Profile | None = PROFILES[profile] if profile else None
        self.group_policy = profile or DEFAULT_PROFILE
        self.check = check
        self.reference = reference
        self.fit_settings = fit_settings or FitSettings(
            load_budget_s=settings.load_budget_s if settings.load_budget_s > 0 else None
        )
        self.index = {n.name: n.idx for n in nodes}
        n = len(nodes)
        rng = random.Random(f"{seed}/agents")
        self.poll_phase = [rng.uniform(0.0, settings.agent_interval_s) for _ in nodes]
        self.lease_phase = [rng.uniform(0.0, settings.lease_interval_s) for _ in nodes]
        self.peers = [agent.peers_of(node) for node in nodes]
        self.polling = [False] * n
        self.pods: dict[str, SimPod] = {}  # the pod of each reservation
        self.end_rule = EndRule(settings.reservation_end)
        self.claimed = np.zeros(n, dtype=np.int64)
        self.classes = NodeClasses(n)
        self.lease_seen = np.zeros(n, dtype=np.float64)
        self.fleet = Fleet(
            capacity=max(1, n), width=max((x.type.shape.gpus for x in nodes), default=1)
        )
        # The reservations, kept resolved against the fleet's rows as the extender keeps them.
        self.reservations = self.fleet.claims
        self.reports: list[NodeState] = []
        for node in nodes:
            gpus = agent.read_gpus(node, self.peers[node.idx])
            state = self._state(node, gpus, agent.cached_models(node), observed_at=0.0, now=0.0)
            self.reports.append(state)
            self.fleet.replace(state)
            self.classes.place(node.idx, node_key(node, state))
        self.decisions = 0
        self.candidates_evaluated = 0
        # The demand that waits or may come (``placement.room``); the engine sets it.
        self.waiting: Callable[[], Sequence[tuple[Demand, int]]] = tuple
        # Wakes the pods it refused (``extender.requeue``'s Requeuer): the engine sets it.
        self.requeue: Callable[[str], None] = lambda kind: None
        self.version = 0

    # -- the agent ------------------------------------------------------------------------

    def _lease_tick(self, i: int, now: float) -> float:
        """The last Lease renewal of node ``i``'s agent at ``now``."""
        period = self.settings.lease_interval_s
        phase = self.lease_phase[i]
        return phase + math.floor((now - phase) / period) * period

    def _state(
        self,
        node: Node,
        gpus: tuple[GpuState, ...],
        cached: tuple[CachedModel, ...],
        *,
        observed_at: float,
        now: float,
    ) -> NodeState:
        lease = self._lease_tick(node.idx, now)
        self.lease_seen[node.idx] = lease
        return agent.report(
            node,
            gpus,
            cached,
            observed_at=observed_at,
            lease_renewed_at=lease,
            lease_duration_s=self.settings.lease_duration_s,
        )

    def node_changed(self, node: Node, now: float) -> None:
        """Make sure the node's agent polls (again) at its next tick."""
        i = node.idx
        if self.polling[i]:
            return
        self.polling[i] = True
        period = self.settings.agent_interval_s
        phase = self.poll_phase[i]
        tick = phase + math.ceil((now - phase) / period) * period
        self._after(max(0.0, tick - now), lambda: self._poll(node))

    def _poll(self, node: Node) -> None:
        now = self._now()
        i = node.idx
        gpus = agent.read_gpus(node, self.peers[i])
        cached = agent.cached_models(node)
        old = self.reports[i]
        if gpus != old.gpus or cached != old.cached_models:
            self._publish(node, gpus, cached, now)
            if capacity_back(old.gpus, gpus):
                self.requeue(UPDATED)
        if node.loading:
            self._after(self.settings.agent_interval_s, lambda: self._poll(node))
        else:
            self.polling[i] = False

    def _publish(
        self, node: Node, gpus: tuple[GpuState, ...], cached: tuple[CachedModel, ...], now: float
    ) -> None:
        i = node.idx
        self.version += 1
        state = self._state(node, gpus, cached, observed_at=now, now=now)
        self.reports[i] = state
        self.fleet.replace(state)
        self.classes.rekey(i, node_key(node, state))
        for r in self.reservations.on_node(node.name):
            self._settle(r.pod_uid)

    def _refresh(self, i: int, now: float) -> None:
        """Bring node ``i``'s view up to ``now`` where a decision could tell the difference.

        The agent republishes an unchanged report every ``reportMaxAge`` and renews its Lease
        every ``leaseInterval``; the view takes the latest of each once the one it holds is
        older than fit() accepts (the only thing a decision reads from these times).
        """
        state = self.reports[i]
        if now - state.observed_at > self.fit_settings.max_report_age_s:
            max_age = self.settings.report_max_age_s
            observed = state.observed_at + math.floor((now - state.observed_at) / max_age) * max_age
            state = self._state(
                self.nodes[i], state.gpus, state.cached_models, observed_at=observed, now=now
            )
            self.reports[i] = state
            self.fleet.reobserve(state)
        elif now - self.lease_seen[i] > self.settings.lease_duration_s:
            lease = self._lease_tick(i, now)
            self.lease_seen[i] = lease
            self.fleet.renew(self.nodes[i].name, lease, self.settings.lease_duration_s)

    def view_of(self, node: Node, now: float) -> tuple[NodeState, list[Reservation]]:
        """The extender's view of ``node`` at ``now`` (brought up to date as a decision would
        read it) and the reservations on it: what its preempt verb reads."""
        self._refresh(node.idx, now)
        return self.fleet.node(node.name), self.reservations.on_node(node.name)

    # -- reservations ---------------------------------------------------------------------

    def _put(self, r: Reservation) -> None:
        self.version += 1
        self._unclaim(r.pod_uid)
        self.reservations.put(r)
        i = self.index[r.node]
        self.claimed[i] += 1

    def _unclaim(self, uid: str) -> None:
        r = self.reservations.pop(uid)
        if r is None:
            return
        self.version += 1
        i = self.index[r.node]
        self.claimed[i] -= 1

    def _drop(self, uid: str) -> None:
        self._unclaim(uid)
        self.pods.pop(uid, None)

    def _settle(self, uid: str) -> None:
        """Apply the reservation rule to the reservation of pod ``uid``: end it, or move it
        between bound and ready as its pod's readiness says."""
        r = self.reservations.get(uid)
        assert r is not None  # called for pods with a reservation only
        settled = settle(
            r, pod_facts(self.pods[uid]), self.reports[self.index[r.node]], self.end_rule
        )
        if settled is None:
            self._drop(uid)
        elif settled is not r:
            self._put(settled)

    # -- the scheduler's calls ----------------------------------------------------------------

    def profile_of(self, demand: Demand) -> Profile:
        """The profile a pod with ``demand`` is scored by: the policy's, or the pod's own."""
        return self.forced or resolve_profile(demand, DEFAULT_PROFILE)

    def _decide(
        self,
        names: list[str],
        demand: Demand,
        pod: SimPod,
        now: float,
        waiting: Sequence[tuple[Demand, int]] = (),
    ) -> tuple[Fit | None, dict[str, Reject]]:
        reservations = self.reservations
        profile = self.profile_of(demand)
        if self.reference:
            d = decide(
                [self.fleet.node(n) for n in names],
                demand,
                tuple(reservations),
                now=now,
                settings=self.fit_settings,
                profile=profile,
                pod_uid=pod.uid,
                waiting=waiting,
            )
            return d.chosen, {r.node: r for r in d.rejects}
        fd = decide_fleet(
            self.fleet,
            Query(
                names,
                demand,
                reservations,
                now=now,
                settings=self.fit_settings,
                pod_uid=pod.uid,
                waiting=waiting,
            ),
            profile=profile,
            reasons=False,  # the reasons are read only when no node fits
            all_fits=False,
        )
        return fd.chosen, dict(fd.rejects)

    def place(self, pod: SimPod, now: float) -> Placement | Unschedulable:
        """Filter (decide mode): one node and its GPUs, recorded as an assumed reservation."""
        demand = pod.service.demand
        feasible = self.filter.feasible(pod)
        if not feasible.any():
            return Unschedulable(self.filter.why_not(pod))
        if pod.group is not None:
            return self._place_member(pod, feasible, now)
        # The fleet's rows are the node indices: it is filled in index order, never shrinks.
        cached = self.fleet.cached(demand.model_id) if demand.model_id else None
        # Room for waiting pods counts the nodes that could take them: all, not one of each
        # class of alike nodes.
        waiting = self.waiting()
        if any(d != demand for d, _ in waiting):
            reps = [int(i) for i in np.flatnonzero(feasible)]
        else:
            reps = self.classes.representatives(feasible, self.claimed > 0, cached)
        for i in reps:
            self._refresh(i, now)
        self.decisions += 1
        self.candidates_evaluated += len(reps)
        names = [self.nodes[i].name for i in reps]
        chosen, rejects = self._decide(names, demand, pod, now, waiting)
        if self.check:
            every = [int(i) for i in np.flatnonzero(feasible)]
            for i in every:
                self._refresh(i, now)
            names = [self.nodes[i].name for i in every]
            full, _ = self._decide(names, demand, pod, now, waiting)
            if full != chosen:
                raise SimulationError(
                    f"pruned decision {chosen} differs from the full one {full} for {pod.uid}"
                )
        if chosen is None:
            reasons = Counter(r.reason for r in rejects.values())
            top = reasons.most_common(1)[0][0] if reasons else "no candidate node"
            return Unschedulable(f"vramfit: {top}")
        self.pods[pod.uid] = pod
        self._put(
            assume(
                chosen,
                demand,
                pod_uid=pod.uid,
                pod_key=pod.key,
                now=now,
                ttl_s=self.settings.reservation_ttl_s,
            )
        )
        return Placement(self.index[chosen.node], chosen.gpu_uuids)

    def _place_member(
        self, pod: SimPod, feasible: BoolArray, now: float
    ) -> Placement | Unschedulable:
        """A group member: its reserved node if its group was decided, else one decision for
        every member of the group not yet placed, reserved together or not at all."""
        group = pod.group
        assert group is not None
        mine = self.reservations.get(pod.uid)
        if (
            mine is not None
            and mine.state is ReservationState.ASSUMED
            and mine.active(now)
            and feasible[self.index[mine.node]]
        ):
            return Placement(self.index[mine.node], mine.gpu_uuids)
        fixed = {
            m.uid: m.node.name
            for m in group.members
            if m.node is not None and not m.deleted and m.phase is not Phase.PENDING
        }
        todo = [m for m in group.members if m.uid not in fixed and not m.deleted]
        names = [self.nodes[int(i)].name for i in np.flatnonzero(feasible)]
        for i in np.flatnonzero(feasible):
            self._refresh(int(i), now)
        self.decisions += 1
        self.candidates_evaluated += len(names)
        uids = {m.uid for m in todo}
        plan = decide_group(
            self.fleet,
            GroupQuery(
                names,
                [Member(m.uid, m.key, m.service.demand, rank) for rank, m in enumerate(todo)],
                [r for r in self.reservations if r.pod_uid not in uids],
                now=now,
                settings=self.fit_settings,
                policy=self.group_policy,
                fixed=fixed,
            ),
        )
        if isinstance(plan, GroupRefusal):
            return Unschedulable(plan.reason)
        members = {m.uid: m for m in todo}
        for r in plan.reservations(now=now, expires_at=now + self.settings.reservation_ttl_s):
            self.pods[r.pod_uid] = members[r.pod_uid]
            self._put(r)
        chosen = self.reservations.get(pod.uid)
        assert chosen is not None  # the plan places every member
        return Placement(self.index[chosen.node], chosen.gpu_uuids)

    def bind(self, pod: SimPod, placement: Placement, now: float) -> Placement | None:
        """Bind: re-check the node under its lock, then record the bound reservation."""
        demand = pod.service.demand
        i = placement.node
        self._refresh(i, now)
        result = fit(
            self.fleet.node(self.nodes[i].name),
            demand,
            self.reservations.on_node(self.nodes[i].name),
            now=now,
            settings=self.fit_settings,
            pod_uid=pod.uid,
        )
        if isinstance(result, Reject):
            self._drop(pod.uid)
            return None
        self._put(
            Reservation(
                pod_uid=pod.uid,
                pod_key=pod.key,
                node=result.node,
                gpu_uuids=result.gpu_uuids,
                bytes_per_gpu=demand.vram_per_gpu,
                state=ReservationState.BOUND,
                created_at=now,
                model_id=demand.model_id,
            )
        )
        return Placement(i, result.gpu_uuids)

    def nominate(self, pod: SimPod, node: Node, gpus: tuple[str, ...], now: float) -> None:
        """Kube-scheduler nominated ``pod`` to ``node`` after preempting there: its room, as the
        extender's pod watch records a nomination (``extender.nominations``), on the GPUs the
        preempt verb predicted. The pod's own filter ignores it and its placement replaces it;
        it ends with the pod."""
        self.pods[pod.uid] = pod
        self._put(
            nominated_room(
                pod.service.demand,
                pod_uid=pod.uid,
                pod_key=pod.key,
                node=node.name,
                gpu_uuids=gpus,
                now=now,
            )
        )

    def requeues_on(self, event: str) -> bool:
        """A pod rejected by an extender has no queueing hint: every pod event requeues it."""
        return True

    def state_version(self) -> tuple[int, ...]:
        """Reports, reservations and the scheduler cache: all a decision reads (report and
        Lease times aside, which stay fresh for a healthy agent)."""
        return (self.version, self.filter.cache.version)

    def pod_event(self, pod: SimPod, event: str, now: float) -> None:
        """Any change of a pod may end its reservation or change whether its load is in
        flight (``placement.lifecycle``, as the extender's pod watch applies it)."""
        if pod.uid in self.reservations:
            self.pods[pod.uid] = pod
            self._settle(pod.uid)

    def _now(self) -> float:
        return float(self.env.now)

    def _after(self, delay: float, fn: Callable[[], None]) -> None:
        event = self.env.timeout(delay)
        event.callbacks.append(lambda _e: fn())


def capacity_back(old: Sequence[GpuState], new: Sequence[GpuState]) -> bool:
    """Whether a node's new report shows capacity back (pure): a GPU some pod held is held by
    none, or a GPU has more free memory. The extender's Requeuer then wakes the pods it refused
    (kube-scheduler would retry them only on a pod event, or after five minutes)."""
    return any(
        (o.holder_pod_uid is not None and n.holder_pod_uid is None)
        or (n.free_bytes or 0) > (o.free_bytes or 0)
        for o, n in zip(old, new, strict=False)
    )
