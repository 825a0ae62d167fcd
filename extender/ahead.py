"""Nominate ahead: decide a new GPU pod as soon as the pod watch shows it, and nominate it.

With ``percentageOfNodesToScore: 100`` kube-scheduler's cycle for a GPU pod runs its own filter
plugins over every node and then sends every node name to the extender; at thousands of nodes
that serial cycle, not the extender's decision, bounds how many pods a second are scheduled.
kube-scheduler tries a pod's ``status.nominatedNodeName`` first, alone (its filter plugins and
the extender's filter on that one node), and goes over every node only when that node does not
pass. So a thread here takes each GPU pod kube-scheduler has not tried yet, decides it exactly
as the filter would (the same function over every node in the view), holds the chosen GPUs as a
nomination's room (``extender.nominations``: every other decision counts them) and sets the
pod's nomination. When the pod's turn comes, its cycle is one node long.

Nothing is decided differently: the filter checks the nominated node again and may refuse it,
kube-scheduler's own filters still apply, and a node that fails either costs the pod the full
cycle it had before. A pod kube-scheduler has filtered already, one that is nominated or bound,
one of a multi-node group and one that claims its GPUs through DRA are left alone. The queue is
bounded (a burst beyond it takes the usual path) and each pod is tried once.

A nomination ends with the pod's first filter: placed, the filter's reservation replaces the
room; refused (kube-scheduler then goes over every node, and may preempt), the room is dropped
and the nomination withdrawn (``withdraw``), so that neither vramfit nor kube-scheduler, which
counts a nominated pod on its node for pods of no higher priority, keeps holding it there.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from extender.decisions import InvalidPodError, Mode, filter_nodes, read_demand, waits
from extender.kubeapi import KubeError
from extender.objects import PodInfo
from extender.state import ClusterState
from placement.dra import pod_claims
from placement.lifecycle import nominated_room
from placement.membership import MembershipError, membership_of
from placement.model import Demand, FitSettings

log = logging.getLogger(__name__)

MAX_QUEUED = 10_000
"""Pods waiting for a decision here; a pod offered beyond it is left to kube-scheduler."""
MAX_TRIED = 50_000
"""Pods remembered as tried (the oldest are forgotten first), so each is tried once."""


class Outcome(enum.StrEnum):
    """What became of a pod taken from the queue (the metric's label values)."""

    NOMINATED = "nominated"
    NO_FIT = "no-fit"
    SCHEDULER_FIRST = "scheduler-first"
    CONFLICT = "conflict"
    FAILED = "failed"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A pod to nominate: its identity, the resourceVersion it was read at, and its demand."""

    uid: str
    namespace: str
    name: str
    resource_version: str
    demand: Demand

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def candidate(
    event: str, info: PodInfo, raw: Mapping[str, Any], *, scheduler_name: str, policy: str
) -> Candidate | None:
    """Pure: the pod of a watch event (``info``, as the pod watch read it from ``raw``) as one
    to nominate ahead, or ``None``.

    Only a GPU pod waiting for room (``decisions.waits``) that kube-scheduler's profile of the
    extender places, not nominated, whose demand the filter reads, that belongs to no
    multi-node group and claims nothing through DRA."""
    if event not in ("ADDED", "MODIFIED") or not waits(info) or info.nominated_node:
        return None
    spec = raw.get("spec")
    if not isinstance(spec, Mapping) or spec.get("schedulerName") != scheduler_name:
        return None
    if not info.resource_version:
        return None
    try:
        if pod_claims(raw) or membership_of(raw) is not None:
            return None
        demand = read_demand(raw, policy)
    except (InvalidPodError, MembershipError):
        return None
    if demand is None or demand.gpus == 0:
        return None
    return Candidate(info.uid, info.namespace, info.name, info.resource_version, demand)


class NominateAPI(Protocol):
    """What nominating needs from the API server."""

    def nominate_pod(self, namespace: str, name: str, node: str, resource_version: str) -> None: ...

    def withdraw_nomination(self, namespace: str, name: str, node: str) -> None: ...


class AheadNominator:
    """The queue of pods to nominate and the thread that works it (``run``)."""

    def __init__(
        self,
        state: ClusterState,
        api: NominateAPI,
        *,
        scheduler_name: str,
        policy: str,
        fit: FitSettings,
        count: Callable[[Outcome], None] = lambda _o: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state, self.api = state, api
        self.scheduler_name, self.policy, self.fit = scheduler_name, policy, fit
        self._count, self._clock = count, clock
        self._queue: dict[str, Candidate] = {}
        self._withdrawals: dict[str, tuple[str, str, str]] = {}  # uid -> namespace, name, node
        self._tried: dict[str, None] = {}
        self._cond = threading.Condition()

    def offer(self, event: str, info: PodInfo, raw: Mapping[str, Any]) -> None:
        """A pod watch event (cheap: the watch thread calls it). Never raises: an exception
        would restart the pod watch, so a pod no rule here expects is left to kube-scheduler."""
        try:
            c = candidate(event, info, raw, scheduler_name=self.scheduler_name, policy=self.policy)
        except Exception:
            log.exception("pod %s not read for nominating ahead", info.key)
            c = None
        with self._cond:
            if c is None:
                self._queue.pop(info.uid, None)
                return
            if c.uid in self._tried or (
                c.uid not in self._queue and len(self._queue) >= MAX_QUEUED
            ):
                return
            self._queue[c.uid] = c
            self._cond.notify()

    def withdraw(self, uid: str, namespace: str, name: str, node: str) -> None:
        """The filter refused a pod nominated ahead (its room is dropped already): clear the
        nomination too, so that kube-scheduler stops counting the pod on ``node``."""
        with self._cond:
            if uid in self._withdrawals or len(self._withdrawals) < MAX_QUEUED:
                self._withdrawals[uid] = (namespace, name, node)
                self._cond.notify()

    def queued(self) -> int:
        with self._cond:
            return len(self._queue)

    def _take(self, stop: threading.Event) -> Candidate | tuple[str, str, str] | None:
        """The next withdrawal, else the next pod to nominate; ``None`` once ``stop`` is set."""
        with self._cond:
            while not self._queue and not self._withdrawals and not stop.is_set():
                self._cond.wait(0.5)
            if stop.is_set():
                return None
            if self._withdrawals:
                return self._withdrawals.pop(next(iter(self._withdrawals)))
            uid = next(iter(self._queue))
            c = self._queue.pop(uid)
            self._tried[uid] = None
            while len(self._tried) > MAX_TRIED:
                del self._tried[next(iter(self._tried))]
            return c

    def run(self, stop: threading.Event) -> None:
        """Nominate queued pods until ``stop``; a failure is logged and counted, never raised."""
        while (task := self._take(stop)) is not None:
            if isinstance(task, tuple):
                self._withdraw(*task)
                continue
            try:
                outcome = self.nominate(task)
            except Exception:  # a fault of ours must not end the thread
                log.exception("nominating %s ahead failed", task.key)
                outcome = Outcome.FAILED
            self._count(outcome)

    def _withdraw(self, namespace: str, name: str, node: str) -> None:
        try:
            self.api.withdraw_nomination(namespace, name, node)
        except KubeError as exc:
            if exc.status not in (404, 409, 422):  # gone, or nominated elsewhere since
                log.info("cannot withdraw the nomination of %s/%s: %s", namespace, name, exc)
                self._count(Outcome.FAILED)
                return
        self._count(Outcome.WITHDRAWN)

    def nominate(self, c: Candidate) -> Outcome:
        """Decide ``c`` over every node in the view, hold the room and set the nomination."""
        if not self.state.ready() or self.state.filtered(c.uid, c.key):
            return Outcome.SCHEDULER_FIRST
        now = self._clock()
        with self.state.locked_view(now) as view:
            out = filter_nodes(
                c.demand,
                c.uid,
                view.fleet.every_name(),
                view,
                now=now,
                mode=Mode.DECIDE,
                policy=self.policy,
                settings=self.fit,
            )
            if out.chosen is None:
                return Outcome.NO_FIT
            room = nominated_room(
                c.demand,
                pod_uid=c.uid,
                pod_key=c.key,
                node=out.chosen.node,
                gpu_uuids=out.chosen.gpu_uuids,
                now=now,
            )
            if not self.state.hold_ahead(room):
                return Outcome.SCHEDULER_FIRST
        try:
            self.api.nominate_pod(c.namespace, c.name, room.node, c.resource_version)
        except KubeError as exc:
            self.state.drop_ahead(c.uid, room.node)
            if exc.status in (404, 409):
                return Outcome.CONFLICT  # bound, changed or gone meanwhile: its cycle decides
            log.info("cannot nominate %s to %s: %s", c.key, room.node, exc)
            return Outcome.FAILED
        log.debug("nominated %s to %s ahead of its cycle", c.key, room.node)
        return Outcome.NOMINATED
