"""The bind verb: make a placement durable and bind the pod, in one write.

Under the node's lock (held only while it decides), bind re-checks that the node can still
take the pod and records the reservation. Then it POSTs the Binding with the reservation as the
pod's ``vramfit.io/reservation`` annotation, guarded by the pod's UID and resourceVersion: the
API server writes the node and the annotation in one update, or neither. A restarted extender
rebuilds its reservations from that annotation, so a bound pod never lacks it. If the Binding
fails, the reservation is released and the error returned, so kube-scheduler forgets the pod
and tries again; a pod that changed since filter read it (a controller touched it) is read
again and its Binding tried once more. Binds of different pods to one node run side by side;
two binds of the same pod wait for each other.

A pod that claims its GPUs through DRA is bound after kube-scheduler's DRA plugin wrote its
claims' allocation (PreBind runs before bind): the node is re-checked on the GPUs allocated
there, and the reservation (and its annotation) names them (``extender.claims_watch``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from extender.claims_watch import DraView
from extender.config import Settings
from extender.decisions import recheck
from extender.kubeapi import KubeError, PodAPI
from extender.objects import PodInfo, read_pod
from extender.state import ClusterState, PendingPod
from extender.wire import BindingArgs
from placement.annotation import encode_reservation
from placement.demand import A_RESERVATION
from placement.lifecycle import assume
from placement.model import Allocator, Reject, Reservation

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BindOutcome:
    """``error`` is empty on success; ``code`` is the bounded reason for metrics."""

    error: str
    code: str
    reservation: Reservation | None = None


def _ok(code: str, r: Reservation | None = None) -> BindOutcome:
    return BindOutcome("", code, r)


def _fail(code: str, message: str) -> BindOutcome:
    return BindOutcome(f"vramfit: {message}", code)


class _InFlight:
    """The pods being bound now (bounded by the request threads): a second bind of the same
    pod waits for the first, so one pod's reservation is never decided twice at once."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._uids: set[str] = set()

    def enter(self, uid: str, timeout_s: float) -> bool:
        with self._changed:
            if not self._changed.wait_for(lambda: uid not in self._uids, timeout_s):
                return False
            self._uids.add(uid)
            return True

    def leave(self, uid: str) -> None:
        with self._changed:
            self._uids.discard(uid)
            self._changed.notify_all()


class Binder:
    """Binds pods for one extender process; safe to call from many request threads."""

    def __init__(
        self,
        state: ClusterState,
        api: PodAPI,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        dra: DraView | None = None,
    ) -> None:
        self.state = state
        self.api = api
        self.settings = settings
        self.clock = clock
        self.dra = dra
        self._in_flight = _InFlight()

    def _lookup(self, args: BindingArgs) -> tuple[PendingPod | None, BindOutcome | None]:
        pending = self.state.pending(args.pod_uid)
        if pending is not None and pending.key == args.key and pending.resource_version:
            return pending, None
        try:
            raw = self.api.get_pod(args.pod_namespace, args.pod_name)
        except KubeError as exc:
            code = "pod-gone" if exc.status == 404 else "api-error"
            return None, _fail(code, f"cannot read pod {args.key}: {exc}")
        info = self._pod_info(raw)
        if info is None or info.uid != args.pod_uid:
            return None, _fail(
                "uid-mismatch",
                f"pod {args.key} has UID {info.uid if info else '?'}, not {args.pod_uid}",
            )
        if info.node_name:
            return None, self._already(args, info.node_name)
        return PendingPod(
            info.uid, info.key, info.resource_version, info.demand, self.clock()
        ), None

    def _pod_info(self, raw: dict[str, Any]) -> PodInfo | None:
        claimed = self.dra.claimed_count if self.dra is not None else None
        return read_pod(
            raw, now=self.clock(), scheduler_name=self.settings.scheduler_name, claimed=claimed
        )

    def _read(self, args: BindingArgs) -> PodInfo | None:
        """The pod as the API server has it now (``KubeError`` when it cannot be read)."""
        return self._pod_info(self.api.get_pod(args.pod_namespace, args.pod_name))

    def _already(self, args: BindingArgs, node_name: str) -> BindOutcome:
        if node_name == args.node:
            return _ok("already-bound")
        return _fail("already-bound", f"pod {args.key} is already bound to {node_name}")

    def bind(self, args: BindingArgs) -> BindOutcome:
        """Bind ``args``' pod to its node; never raises for API or fit failures.

        Only a pod this process filtered (same UID and name) is bound, and a GPU pod only to a
        node in its view: kube-scheduler always filters before it binds, so anything else is
        not kube-scheduler's call.
        """
        if not self.state.filtered(args.pod_uid, args.key):
            return _fail(
                "not-filtered",
                f"vramfit did not filter pod {args.key} with UID {args.pod_uid}: not bound",
            )
        pending, failure = self._lookup(args)
        if failure is not None:
            return failure
        assert pending is not None
        if pending.demand is None:
            # No GPU demand vramfit can read: nothing to reserve, bind as the default would.
            return self._post_binding(args, None)
        if not self.state.knows_node(args.node):
            return _fail("unknown-node", f"node {args.node} is not in vramfit's view: not bound")
        if not self._in_flight.enter(args.pod_uid, self.settings.bind_lock_timeout_s):
            return _fail(
                "lock-timeout",
                f"another bind of pod {args.key} did not finish within "
                f"{self.settings.bind_lock_timeout_s:.0f}s",
            )
        try:
            return self._bind_pod(args, pending)
        finally:
            self._in_flight.leave(args.pod_uid)

    def _bind_pod(self, args: BindingArgs, pending: PendingPod) -> BindOutcome:
        lock = self.state.node_lock(args.node)
        if not lock.acquire(timeout=self.settings.bind_lock_timeout_s):
            return _fail(
                "lock-timeout",
                f"another bind to node {args.node} did not finish within "
                f"{self.settings.bind_lock_timeout_s:.0f}s",
            )
        try:
            reserved = self._reserve(args, pending)
        finally:
            lock.release()
        if isinstance(reserved, BindOutcome):
            return reserved
        outcome = self._post_binding(args, reserved, pending.resource_version)
        if outcome.error:
            self.state.release(args.pod_uid)
            return outcome
        confirmed = self.state.confirm(args.pod_uid)
        return _ok(outcome.code, confirmed or reserved)

    def _reserve(self, args: BindingArgs, pending: PendingPod) -> Reservation | BindOutcome:
        """Re-check the node and record the reservation (under the node's lock)."""
        demand = pending.demand
        assert demand is not None
        now = self.clock()
        eligible = None
        if self.dra is not None and demand.allocator is Allocator.DRA:
            eligible = self.dra.bind_eligible(args.pod_uid, args.node)
        with self.state.locked_view(now) as view:
            result = recheck(
                args.node,
                demand,
                view,
                pod_uid=args.pod_uid,
                now=now,
                settings=self.settings.fit,
                eligible=eligible,
            )
            if isinstance(result, Reject):
                self.state.release(args.pod_uid)
                return _fail(
                    "no-fit", f"node {args.node} can no longer take pod {args.key}: {result.reason}"
                )
            reservation = assume(
                result,
                demand,
                pod_uid=args.pod_uid,
                pod_key=args.key,
                now=now,
                ttl_s=self.settings.assumed_ttl_s,
            )
            self.state.assume(reservation)
        return reservation

    def _post_binding(
        self, args: BindingArgs, reservation: Reservation | None, rv: str = ""
    ) -> BindOutcome:
        """POST the Binding, with the reservation as the pod's annotation and the pod's UID
        and ``rv`` as preconditions; on a conflict, read the pod and try once more if it is
        the same pod, still unbound."""
        annotations = {A_RESERVATION: encode_reservation(reservation)} if reservation else {}
        for attempt in (1, 2):
            try:
                self.api.bind_pod(
                    args.pod_namespace,
                    args.pod_name,
                    args.pod_uid,
                    args.node,
                    annotations=annotations,
                    resource_version=rv,
                )
                return _ok("bound", reservation)
            except KubeError as exc:
                if exc.status != 409:
                    code = "pod-gone" if exc.status == 404 else "binding-failed"
                    return _fail(code, f"cannot bind pod {args.key} to {args.node}: {exc}")
                failure = _fail(
                    "binding-conflict", f"cannot bind pod {args.key} to {args.node}: {exc}"
                )
            # The pod changed since it was read, or was bound meanwhile.
            try:
                fresh = self._read(args)
            except KubeError as exc:
                return _fail("binding-failed", f"cannot re-read pod {args.key}: {exc}")
            if fresh is None or fresh.uid != args.pod_uid:
                return _fail("uid-mismatch", f"pod {args.key} was replaced while binding")
            if fresh.node_name:
                already = self._already(args, fresh.node_name)
                return already if already.error else _ok("already-bound", reservation)
            if attempt == 2 or not rv:
                return failure
            rv = fresh.resource_version
        raise AssertionError("unreachable")
