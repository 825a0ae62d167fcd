"""Wake pods the extender refused once capacity may have come back.

kube-scheduler parks a pod that no node passed in its unschedulable queue and retries it only on
a cluster event it watches (a Node or Pod change) or after five minutes. The things that free GPUs
for vramfit (a NodeGPUState report, an agent Lease coming back, a reservation ending) are not such
events, so a refused pod could wait minutes beside a free node. The ``Requeuer`` remembers
refused pods and, after such a change, touches each with the annotation ``vramfit.io/requeued-at``:
an update of an unscheduled pod is an event, and a pod rejected by an extender (no plugin
recorded) is requeued on any event. Writes are rate-limited per pod and happen in a background
thread, never in a scheduling request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from extender.objects import AgentLease, NodeReport, PodInfo
from placement.nodegpustate import format_time

log = logging.getLogger(__name__)

A_REQUEUED_AT = "vramfit.io/requeued-at"
MAX_REFUSED = 10_000
"""Refused pods remembered at once (the oldest refusal goes first): callers of filter choose
the UIDs, so the table is bounded whatever they send."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A pod the extender refused, and when it last touched it."""

    uid: str
    namespace: str
    name: str
    refused_at: float
    nudged_at: float | None = None
    wake_pending: bool = True


@dataclass(frozen=True, slots=True)
class RequeueSettings:
    """How eagerly refused pods are woken."""

    settle_s: float = 0.5
    min_interval_s: float = 5.0
    max_age_s: float = 900.0
    max_per_round: int = 200


def due(
    refusals: Mapping[str, Refusal], now: float, settings: RequeueSettings
) -> tuple[list[Refusal], list[str], float | None]:
    """Pure: which refused pods to touch now, which to forget, and when to look again.

    A pod is touched when a capacity change happened since its last touch (``wake_pending``)
    and its last touch is at least ``min_interval_s`` old; oldest refusals first, at most
    ``max_per_round``. Pods refused longer than ``max_age_s`` ago are forgotten. The third value
    is the earliest time a pod held back by the rate limit (or the per-round cap) becomes due.
    """
    expired = [uid for uid, r in refusals.items() if now - r.refused_at > settings.max_age_s]
    gone = set(expired)
    ready: list[Refusal] = []
    later: list[float] = []
    for uid, r in refusals.items():
        if uid in gone or not r.wake_pending:
            continue
        at = r.nudged_at + settings.min_interval_s if r.nudged_at is not None else now
        if at <= now:
            ready.append(r)
        else:
            later.append(at)
    ready.sort(key=lambda r: (r.refused_at, r.uid))
    if len(ready) > settings.max_per_round:
        later.append(now)
    return ready[: settings.max_per_round], expired, min(later, default=None)


def requeue_patch(now: float, uid: str) -> dict[str, Any]:
    """Pure: the merge patch that wakes a pod (an annotation with the time).

    ``metadata.uid`` is immutable, so the API server refuses the patch (422) when the pod of
    that name is no longer the one refused: a pod created again under the name, or one that a
    caller of filter named with a UID of its own, is never touched.
    """
    return {"metadata": {"uid": uid, "annotations": {A_REQUEUED_AT: format_time(now)}}}


class Requeuer:
    """Remembers refused pods and wakes them after a change that may have freed capacity."""

    def __init__(
        self,
        patch_pod: Callable[[str, str, Mapping[str, Any]], object],
        *,
        settings: RequeueSettings = RequeueSettings(),
        clock: Callable[[], float] = time.time,
        on_nudge: Callable[[str], None] | None = None,
    ) -> None:
        self._patch = patch_pod
        self._s = settings
        self._clock = clock
        self._on_nudge = on_nudge
        self._lock = threading.Lock()
        self._refused: dict[str, Refusal] = {}
        self._changed = threading.Event()

    def refused(self, uid: str, namespace: str, name: str) -> None:
        """Filter found no node for this pod."""
        if not uid:
            return
        with self._lock:
            old = self._refused.pop(uid, None)
            while len(self._refused) >= MAX_REFUSED:  # the oldest refusal goes first
                del self._refused[next(iter(self._refused))]
            # A new refusal is no news of capacity: keep the pod's pending wake-up as it was.
            self._refused[uid] = Refusal(
                uid,
                namespace,
                name,
                self._clock(),
                old.nudged_at if old else None,
                old.wake_pending if old else False,
            )

    def forget(self, uid: str) -> None:
        """The pod was placed, bound or deleted: it needs no waking."""
        with self._lock:
            self._refused.pop(uid, None)

    def waiting(self) -> int:
        """How many refused pods are remembered."""
        with self._lock:
            return len(self._refused)

    def capacity_changed(self) -> None:
        """Something that may free GPUs happened; wake every refused pod soon (each at most once
        per ``min_interval_s``; a pod touched just before is woken when its interval is over)."""
        with self._lock:
            for uid, r in self._refused.items():
                if not r.wake_pending:
                    self._refused[uid] = replace(r, wake_pending=True)
        self._changed.set()

    def run_once(self) -> int:
        """Touch every pod that is due; returns how many were touched."""
        return self._round()[0]

    def _round(self) -> tuple[int, float | None]:
        now = self._clock()
        with self._lock:
            todo, expired, next_at = due(self._refused, now, self._s)
            for uid in expired:
                del self._refused[uid]
        touched = 0
        for r in todo:
            try:
                self._patch(r.namespace, r.name, requeue_patch(now, r.uid))
            except Exception as exc:
                status = getattr(exc, "status", None)
                if status in (404, 422):  # gone, or another pod of that name now
                    self.forget(r.uid)
                else:
                    log.warning("could not requeue pod %s/%s: %s", r.namespace, r.name, exc)
                continue
            touched += 1
            if self._on_nudge is not None:
                self._on_nudge(r.uid)
            with self._lock:
                if r.uid in self._refused:
                    cur = self._refused[r.uid]
                    self._refused[r.uid] = replace(cur, nudged_at=now, wake_pending=False)
        return touched, next_at

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop``: wait for a change (or for held-back pods to come due), let
        related changes settle, wake pods."""
        next_at: float | None = None
        while not stop.is_set():
            timeout = 1.0 if next_at is None else max(0.0, min(1.0, next_at - self._clock()))
            changed = self._changed.wait(timeout=timeout)
            due_now = next_at is not None and self._clock() >= next_at
            if not changed and not due_now:
                continue
            if changed and stop.wait(self._s.settle_s):
                return
            self._changed.clear()
            _, next_at = self._round()


class CapacitySignals:
    """Tells, from watch events, whether capacity may have grown: a report with more free GPUs
    than the last one or with a holder gone (its GPUs may have gone to a pod whose reservation
    the report now ends), an agent Lease renewed after it had lapsed, a pod deleted. Everything
    else (memory moving during a load, routine renewals, our own annotations) is not a reason
    to wake refused pods."""

    def __init__(
        self,
        *,
        max_report_age_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._max_age = max_report_age_s
        self._clock = clock
        self._free: dict[str, int] = {}
        self._holders: dict[str, frozenset[str]] = {}
        self._observed: dict[str, float] = {}
        self._renewed: dict[str, float] = {}

    def report(self, event: str, report: NodeReport) -> bool:
        """A NodeGPUState event; true when the node now has more free GPUs than before, or a pod
        that held GPUs there no longer does, or its previous report had gone stale (the
        extender refused the node until this one)."""
        name = report.name
        if event == "DELETED":
            self._free.pop(name, None)
            self._holders.pop(name, None)
            self._observed.pop(name, None)
            return False
        now_free = report.free_gpus
        before = self._free.get(name)
        self._free[name] = now_free
        holders = frozenset(
            g.holder_pod_uid for g in (report.node.gpus if report.node else ()) if g.holder_pod_uid
        )
        left = self._holders.get(name, frozenset()) - holders
        self._holders[name] = holders
        was_observed = self._observed.get(name)
        observed = report.observed_at
        if observed is not None:
            self._observed[name] = observed
        was_stale = was_observed is not None and self._clock() - was_observed > self._max_age
        return before is None or now_free > before or bool(left) or was_stale

    def lease(self, event: str, lease: AgentLease) -> bool:
        """An agent Lease event; true when it was renewed after having expired (or is new)."""
        if event == "DELETED":
            self._renewed.pop(lease.node, None)
            return False
        if lease.renewed_at is None:
            return False
        before = self._renewed.get(lease.node)
        self._renewed[lease.node] = lease.renewed_at
        return before is None or lease.renewed_at - before > lease.duration_s

    @staticmethod
    def pod(event: str, _pod: PodInfo) -> bool:
        """A pod event; true when a pod is gone (its GPUs come free)."""
        return event == "DELETED"
