"""The discrete-event run: autoscaler, scheduler queue and kubelet on simpy's clock.

One ``Engine`` replays one scenario under one policy. The pieces, in the order a pod meets them:

* autoscaler: replays the service's precompiled replica targets (``traffic``), creating pods on
  scale-up and deleting the least useful ones on scale-down (unscheduled first, then not Ready,
  then the newest), as a ReplicaSet does; a multi-node replica is a group of pods created and
  deleted together, as a LeaderWorkerSet does (``Group``), and the scheduler still meets its
  pods one at a time;
* scheduler: one pod at a time from the active queue; a pod that fits nowhere waits with an
  exponential back-off until a pod event the policy listens to, or ``unschedulableTimeout``;
  a placed pod is assumed at once and bound ``bindLatency`` later. A retry when nothing the
  policy reads has changed since the pod's last failure fails again without recomputing
  (``repeat_unchanged=True`` recomputes it, for tests that prove it changes nothing);
* kubelet (``kubelet``): admission, the model load, out-of-memory crashes, Ready, deletion;
* preemption (``preemption``): a pod that finds no node may evict pods of lower priority.

Deterministic for a seed: every random draw comes from a generator keyed by the seed and what
it is for, and simpy runs simultaneous events in the order they were scheduled.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Generator
from typing import Any

import simpy

from placement.model import Demand
from simulator.clock import Clock, CountingEnvironment
from simulator.cluster import Group, Node, Phase, SchedulerCache, ServiceState, SimPod
from simulator.default_policy import DefaultScheduler
from simulator.kubelet import Kubelet
from simulator.metrics import PodRecord, RunResult
from simulator.pods import service_demand
from simulator.preemption import Preemption
from simulator.scenario import Scenario
from simulator.scheduling import BOUND, Placement, Policy
from simulator.tally import Tally
from simulator.traffic import ServicePlan, compile_service
from simulator.vramfit_policy import VramfitExtender

POLICIES = ("default", "vramfit", "vramfit-binpack", "vramfit-spread")
"""Policies a run can use: kube-scheduler alone, and vramfit (pods' own profile, or forced)."""

_FORCED = {"vramfit": None, "vramfit-binpack": "binpack", "vramfit-spread": "spread"}
_FLUSH_EVERY_S = 30.0
_USEFUL = {
    Phase.PENDING: 0,
    Phase.BINDING: 0,
    Phase.BOUND: 1,
    Phase.LOADING: 1,
    Phase.INITIALIZING: 1,
    Phase.CRASHED: 1,
    Phase.READY: 2,
}
"""How useful a pod is to keep on scale-down: the least useful go first, as a ReplicaSet
deletes unscheduled pods, then pods not Ready, before Ready ones."""


def compile_traffic(scenario: Scenario, seed: int) -> tuple[ServicePlan, ...]:
    """Every service's replica targets for ``seed``; the same for every policy."""
    return tuple(
        compile_service(s, scenario.duration_s, scenario.settings, seed) for s in scenario.services
    )


class Engine:
    """One scenario, one policy, one seed (see the module docstring)."""

    def __init__(
        self,
        scenario: Scenario,
        policy: str,
        *,
        seed: int,
        plans: tuple[ServicePlan, ...] | None = None,
        check: bool = False,
        reference: bool = False,
        repeat_unchanged: bool = False,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}; known: {', '.join(POLICIES)}")
        self.scenario = scenario
        self.settings = scenario.settings
        self.seed = seed
        self.plans = plans if plans is not None else compile_traffic(scenario, seed)
        self.env = CountingEnvironment()
        self.clock = Clock(self.env)
        self.nodes = self._build_nodes()
        self.cache = SchedulerCache(self.nodes)
        self.policy: Policy
        self.vramfit: VramfitExtender | None = None
        if policy == "default":
            self.policy = DefaultScheduler(
                self.nodes,
                self.cache,
                seed=seed,
                nodes_to_score_percent=self.settings.nodes_to_score_percent,
            )
        else:
            self.vramfit = VramfitExtender(
                policy,
                self.nodes,
                self.cache,
                self.settings,
                self.env,
                seed=seed,
                profile=_FORCED[policy],
                check=check,
                reference=reference,
            )
            self.vramfit.waiting = self._waiting
            self.vramfit.requeue = self._event
            self.policy = self.vramfit
        self.policy_name = policy
        self.repeat_unchanged = repeat_unchanged
        self.services = [ServiceState(s, service_demand(s)) for s in scenario.services]
        self.pods: list[SimPod] = []
        self.groups: list[Group] = []
        self.active: deque[SimPod] = deque()
        self.unschedulable: dict[str, SimPod] = {}
        self._wake: simpy.Event | None = None
        self._flushing = False
        self.tally = Tally()
        self.kubelet = Kubelet(
            self.clock,
            self.settings,
            self.policy,
            self.cache,
            self.tally,
            requeue=self._event,
            forget_pending=self._forget_pending,
            rng=random.Random(f"{seed}/kubelet"),
        )
        self.preemption = Preemption(
            self.nodes,
            self.cache,
            live=lambda: [p for s in self.services for p in s.pods],
            delete=self.kubelet.delete,
            replace=self._reconcile,
            after=self.clock.after,
            requeue=self._event,
            vramfit=self.vramfit,
            recheck_s=self.settings.agent_interval_s,
            enabled=len({s.priority for s in scenario.services}) > 1,
        )

    def _build_nodes(self) -> list[Node]:
        entries = []
        for pool in self.scenario.pools:
            for name in pool.node_names():
                entries.append((name, pool))
        entries.sort(key=lambda e: e[0])
        nodes = [
            Node(self.env, i, name, pool.name, pool.node_type)
            for i, (name, pool) in enumerate(entries)
        ]
        by_name = {n.name: n for n in nodes}
        sizes = dict(self.scenario.model_sizes)
        for pool in self.scenario.pools:
            members = [by_name[n] for n in pool.node_names()]
            for model, count in pool.cached:
                rng = random.Random(f"{self.seed}/cache/{pool.name}/{model}")
                chosen = members if count is None else rng.sample(members, count)
                for node in chosen:
                    node.cached[model] = sizes[model]
        for oob in self.scenario.out_of_band:
            by_name[oob.node].gpus[oob.gpu].reserved += oob.bytes
        return nodes

    @property
    def now(self) -> float:
        return self.clock.now

    # -- autoscaler ----------------------------------------------------------------------------

    def _autoscaler(
        self, svc: ServiceState, plan: ServicePlan
    ) -> Generator[simpy.Event, Any, None]:
        cold = set(plan.cold_starts)
        for t, target in plan.targets:
            if t > self.now:
                yield self.env.timeout(t - self.now)
            if t in cold:
                self.tally.close_cold_start(svc, self.now, completed=False)
                svc.episode_start = self.now
            svc.target = target
            if target == 0:
                self.tally.close_cold_start(svc, self.now, completed=False)
            self._reconcile(svc)

    def _reconcile(self, svc: ServiceState) -> None:
        if svc.spec.pods_per_replica > 1:
            self._reconcile_groups(svc)
            return
        live = [p for p in svc.pods if not p.deleted]
        if len(live) < svc.target:
            for _ in range(svc.target - len(live)):
                self._create(svc)
        elif len(live) > svc.target:
            victims = sorted(live, key=lambda p: (_USEFUL[p.phase], -p.created_at, p.uid))
            for pod in victims[: len(live) - svc.target]:
                self.kubelet.delete(pod)

    def _reconcile_groups(self, svc: ServiceState) -> None:
        """The replicas of a multi-node service: whole groups made and deleted."""
        live: dict[str, Group] = {}
        for p in svc.pods:
            if not p.deleted and p.group is not None:
                live.setdefault(p.group.name, p.group)
        if len(live) < svc.target:
            for _ in range(svc.target - len(live)):
                self._create_group(svc)
        elif len(live) > svc.target:
            victims = sorted(
                live.values(),
                key=lambda g: (min(_USEFUL[m.phase] for m in g.members), -g.created_at, g.name),
            )
            for group in victims[: len(live) - svc.target]:
                made = group.members if group.workers_created else group.members[:1]
                for pod in made:
                    if not pod.deleted:
                        self.kubelet.delete(pod)

    def _create(self, svc: ServiceState) -> None:
        svc.created += 1
        self._add_pod(SimPod(f"{svc.spec.name}-{svc.created:05d}", svc, self.now))

    def _create_group(self, svc: ServiceState) -> None:
        """One multi-node replica: its leader ``<name>-<n>`` now and its workers
        ``<name>-<n>-<i>`` ``workerStart`` later (LeaderWorkerSet names them so, and makes
        the workers once the leader exists)."""
        svc.created += 1
        name = f"{svc.spec.name}-{svc.created:05d}"
        group = Group(name, created_at=self.now)
        self.groups.append(group)
        for i in range(svc.spec.pods_per_replica):
            group.members.append(
                SimPod(name if i == 0 else f"{name}-{i}", svc, self.now, group=group)
            )
        self._add_pod(group.members[0])
        self.clock.after(self.settings.worker_start_s, lambda: self._add_workers(group))

    def _add_workers(self, group: Group) -> None:
        """The workers of ``group``, unless the group was deleted first."""
        if group.members[0].deleted:
            return
        group.workers_created = True
        for pod in group.members[1:]:
            pod.created_at = self.now
            self._add_pod(pod)

    def _add_pod(self, pod: SimPod) -> None:
        pod.service.pods.append(pod)
        self.pods.append(pod)
        self._enqueue(pod)

    def _waiting(self) -> list[tuple[Demand, int]]:
        """The demand vramfit keeps room for (``Settings.room_for``, ``placement.room``), per
        shape: the first replica of each service scaling from zero (``cold-starts``: no pod of
        it placed yet; its pods, or those not bound if more), the pods refused and not bound
        yet (``pending``), or all pods not bound yet and those their services may still add
        (``likely``)."""
        mode = self.settings.room_for
        if mode == "none":
            return []
        counts: dict[Demand, int] = {}
        for svc in self.services:
            live = [p for p in svc.pods if not p.deleted]
            if mode == "pending":
                n = sum(1 for p in live if p.phase is Phase.PENDING and p.waited)
            elif mode == "cold-starts":
                if any(p.phase is not Phase.PENDING for p in live):
                    continue
                n = max(svc.spec.pods_per_replica, len(live))
            else:
                room = svc.spec.max_replicas * svc.spec.pods_per_replica - len(live)
                n = sum(1 for p in live if p.phase is Phase.PENDING) + max(0, room)
            if n:
                counts[svc.demand] = counts.get(svc.demand, 0) + n
        return list(counts.items())

    # -- scheduler -----------------------------------------------------------------------------

    def _enqueue(self, pod: SimPod) -> None:
        if pod.deleted or pod.queued or pod.phase is not Phase.PENDING:
            return
        pod.queued = True
        self.active.append(pod)
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def _scheduler(self) -> Generator[simpy.Event, Any, None]:
        cycle = self.settings.scheduling_cycle_s
        while True:
            while not self.active:
                self._wake = self.env.event()
                yield self._wake
            pod = self.active.popleft()
            pod.queued = False
            if pod.deleted or pod.phase is not Phase.PENDING:
                continue
            if cycle > 0:
                yield self.env.timeout(cycle)
                if pod.deleted:
                    continue
            self._attempt(pod)

    def _attempt(self, pod: SimPod) -> None:
        self.preemption.before(pod)
        version = self.policy.state_version()
        if version == pod.failed_at_version and not self.repeat_unchanged:
            # Nothing the policy reads has changed since this pod last found no node: the
            # answer would be the same, so do not compute it again.
            self._unschedulable(pod, pod.last_reason)
            self.preemption.failed(pod, self.now)
            return
        result = self.policy.place(pod, self.now)
        if isinstance(result, Placement):
            self.preemption.placed(pod)
            pod.phase = Phase.BINDING
            pod.node = self.nodes[result.node]
            self.cache.assume(result.node, pod)
            self.tally.group_changed(pod, self.now)
            self.clock.after_pod(pod, self.settings.bind_latency_s, lambda p: self._bind(p, result))
        else:
            pod.failed_at_version = version
            self._unschedulable(pod, result.reason)
            self.preemption.failed(pod, self.now)

    def _unschedulable(self, pod: SimPod, reason: str) -> None:
        s = self.settings
        pod.attempts += 1
        pod.waited = True
        pod.last_reason = reason
        pod.unschedulable_since = self.now
        pod.backoff_until = self.now + min(
            s.pod_backoff_max_s, s.pod_backoff_s * 2 ** min(pod.attempts - 1, 40)
        )
        self.unschedulable[pod.uid] = pod
        self.tally.member_failed(pod, self.now)
        if not self._flushing:
            self._flushing = True
            self.clock.after(_FLUSH_EVERY_S, self._flush)

    def _flush(self) -> None:
        """Move pods unschedulable for longer than ``unschedulableTimeout`` back to the queue."""
        limit = self.settings.unschedulable_timeout_s
        for pod in list(self.unschedulable.values()):
            if pod.unschedulable_since is not None and self.now - pod.unschedulable_since >= limit:
                self._requeue(pod)
        if self.unschedulable:
            self.clock.after(_FLUSH_EVERY_S, self._flush)
        else:
            self._flushing = False

    def _requeue(self, pod: SimPod) -> None:
        if self.unschedulable.pop(pod.uid, None) is None:
            return
        if self.now >= pod.backoff_until:
            self._enqueue(pod)
        else:
            self.clock.after_pod(pod, pod.backoff_until - self.now, self._enqueue)

    def _forget_pending(self, pod: SimPod) -> None:
        """A pod deleted before it was bound no longer waits."""
        self.unschedulable.pop(pod.uid, None)

    def _event(self, kind: str) -> None:
        """A pod event: requeue waiting pods if the policy's queueing hint says so."""
        if self.unschedulable and self.policy.requeues_on(kind):
            for pod in list(self.unschedulable.values()):
                self._requeue(pod)

    def _bind(self, pod: SimPod, placement: Placement) -> None:
        node = pod.node
        assert node is not None
        result = self.policy.bind(pod, placement, self.now)
        if result is None:
            self.cache.forget(node.idx, pod, terminated=False)
            pod.node = None
            pod.phase = Phase.PENDING
            self._unschedulable(pod, f"bind failed: node {node.name} can no longer take the pod")
            return
        pod.phase = Phase.BOUND
        pod.bound_at = self.now
        pod.chosen_gpus = result.gpu_uuids
        self.policy.pod_event(pod, BOUND, self.now)
        self._event(BOUND)
        self.clock.after_pod(pod, self.settings.admission_delay_s, self.kubelet.admit)

    # -- run -----------------------------------------------------------------------------------

    def run(self) -> RunResult:
        """Run the scenario to its end and return what was measured."""
        started = time.perf_counter()
        for svc, plan in zip(self.services, self.plans, strict=True):
            self.env.process(self._autoscaler(svc, plan))
        self.env.process(self._scheduler())
        end = self.scenario.duration_s
        self.env.run(until=end)
        wall = time.perf_counter() - started
        for svc in self.services:
            self.tally.close_cold_start(svc, self.now, completed=False)
        self.tally.close_groups(self.groups, self.now)
        records = tuple(
            PodRecord(
                uid=p.uid,
                service=p.service.spec.name,
                node=p.node.name if p.node is not None and p.bound_at is not None else None,
                gpus=p.service.spec.gpus,
                price_per_gpu_hour=p.node.type.price_per_gpu_hour if p.node is not None else 0.0,
                created_at=p.created_at,
                bound_at=p.bound_at,
                ready_at=p.ready_at,
                end_at=p.gone_at if p.gone_at is not None else end,
                waited=p.waited,
                restarts=p.restarts,
                last_reason=p.last_reason,
                group=p.group.name if p.group is not None else "",
            )
            for p in self.pods
        )
        fleet_gpus = sum(n.type.shape.gpus for n in self.nodes)
        fleet_cost = sum(n.type.price_per_hour for n in self.nodes) * end / 3600.0
        t = self.tally
        evictions, wasted = self.preemption.summary()
        priorities = {s.priority for s in self.scenario.services}
        top = max(priorities) if len(priorities) > 1 else None
        return RunResult(
            policy=self.policy_name,
            scenario=self.scenario.name,
            seed=self.seed,
            duration_s=end,
            pods=records,
            cold_starts=tuple(t.cold_starts),
            loads_started=t.loads_started,
            out_of_memory=t.out_of_memory,
            overcommitted_loads=t.overcommitted,
            overcommitted_pods=t.overcommitted_pods,
            predictions_missed=t.predictions_missed,
            node_peaks=tuple((n.name, n.peak_loads) for n in self.nodes if n.peak_loads),
            loads_series=tuple(t.series),
            fleet_gpus=fleet_gpus,
            fleet_cost=fleet_cost,
            events=self.env.processed,
            wall_s=wall,
            decisions=self.vramfit.decisions if self.vramfit else 0,
            candidates_evaluated=self.vramfit.candidates_evaluated if self.vramfit else 0,
            groups=len(self.groups),
            groups_half_placed=t.groups_half_placed,
            half_placed_gpu_s=t.half_placed_gpu_s,
            evictions=evictions,
            wasted_evictions=wasted,
            budget_overruns=t.budget_overruns,
            top_priority_services=tuple(
                s.name for s in self.scenario.services if top is not None and s.priority == top
            ),
        )


def simulate(
    scenario: Scenario,
    policies: tuple[str, ...] = POLICIES,
    *,
    seed: int | None = None,
    check: bool = False,
) -> tuple[RunResult, ...]:
    """Run ``scenario`` under each policy with the same traffic (``seed``, default the
    scenario's own)."""
    used = scenario.seed if seed is None else seed
    plans = compile_traffic(scenario, used)
    return tuple(Engine(scenario, p, seed=used, plans=plans, check=check).run() for p in policies)
