"""What a run counts while it goes: cold starts, loads, out-of-memory crashes, loads in flight,
cold loads started beyond the load budget, and multi-node replicas left half placed.

The autoscaler opens and closes cold starts, the kubelet counts loads and crashes; both write
to one ``Tally``, which the engine reads into a ``RunResult`` when the run ends.

A group (the pods of one multi-node replica) is *half placed* while some of its members hold
GPUs (assumed, bound or terminating, as kube-scheduler counts them) and another member has
found no node since they took them: those GPUs serve nothing and nothing else may use them. A
member that waits while none of its group holds anything, or whose node is already chosen, is
not what makes a group half placed. ``half_placed_gpu_s`` adds up the GPUs such groups hold,
times how long.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.cluster import HOLDING, Group, Phase, ServiceState, SimPod
from simulator.metrics import ColdStart


@dataclass(eq=False)
class Tally:
    """The running counts of one run; ``series`` is loads in flight over time."""

    cold_starts: list[ColdStart] = field(default_factory=list)
    loads_started: int = 0
    out_of_memory: int = 0
    overcommitted: int = 0
    overcommitted_pods: int = 0
    predictions_missed: int = 0
    in_flight: int = 0
    series: list[tuple[float, int]] = field(default_factory=lambda: [(0.0, 0)])
    groups_half_placed: int = 0
    half_placed_gpu_s: float = 0.0
    budget_overruns: int = 0

    def loads(self, delta: int, now: float) -> None:
        """Loads in flight change by ``delta`` at ``now`` (one point per instant)."""
        self.in_flight += delta
        if self.series[-1][0] == now:
            self.series[-1] = (now, self.in_flight)
        else:
            self.series.append((now, self.in_flight))

    def close_cold_start(self, svc: ServiceState, now: float, *, completed: bool) -> None:
        """End the service's open cold start, if any, at ``now``."""
        if svc.episode_start is not None:
            self.cold_starts.append(ColdStart(svc.spec.name, svc.episode_start, now, completed))
            svc.episode_start = None

    def member_failed(self, pod: SimPod, now: float) -> None:
        """A group member found no node: it is stuck if another member holds GPUs."""
        group = pod.group
        if group is None:
            return
        if any(m.phase in HOLDING for m in group.members if m is not pod):
            pod.stuck = True
        self.group_changed(pod, now)

    def group_changed(self, pod: SimPod, now: float) -> None:
        """A member of ``pod``'s group was placed, failed, or is gone: account for the time
        the group spent half placed and see whether it still is."""
        group = pod.group
        if group is None:
            return
        self._close(group, now)
        held = [m for m in group.members if m.phase in HOLDING]
        for m in group.members:
            if m.phase is not Phase.PENDING or m.deleted or not held:
                m.stuck = False
        group.held_gpus = sum(m.service.spec.gpus for m in held)
        if held and any(m.stuck for m in group.members):
            group.half_since = now
            if not group.was_half:
                group.was_half = True
                self.groups_half_placed += 1

    def close_groups(self, groups: list[Group], now: float) -> None:
        """The run ended: count the time of the groups still half placed up to ``now``."""
        for group in groups:
            self._close(group, now)

    def _close(self, group: Group, now: float) -> None:
        if group.half_since is not None:
            self.half_placed_gpu_s += group.held_gpus * (now - group.half_since)
            group.half_since = None
