"""The bind verb: make a placement durable, then bind the pod.

Under the node's lock (held only for this request), bind re-checks that the node can still
take the pod, records the reservation, writes it to the pod's ``vramfit.io/reservation``
annotation with a JSON merge patch guarded by the pod's resourceVersion, and then POSTs the
Binding. If either call fails, the reservation is released and the error returned, so
kube-scheduler forgets the pod and tries again. The annotation is written first because it is
what a restarted extender rebuilds its reservations from.

A pod that claims its GPUs through DRA is bound after kube-scheduler's DRA plugin wrote its
claims' allocation (PreBind runs before bind): the node is re-checked on the GPUs allocated
there, and the reservation (and its annotation) names them (``extender.claims_watch``).
"""

from __future__ import annotations

import logging
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
        lock = self.state.node_lock(args.node)
        if not lock.acquire(timeout=self.settings.bind_lock_timeout_s):
            return _fail(
                "lock-timeout",
                f"another bind to node {args.node} did not finish within "
                f"{self.settings.bind_lock_timeout_s:.0f}s",
            )
        try:
            return self._bind_locked(args, pending)
        finally:
            lock.release()

    def _bind_locked(self, args: BindingArgs, pending: PendingPod) -> BindOutcome:
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
        written = self._write_annotation(args, pending.resource_version, reservation)
        if written is not None:
            self.state.release(args.pod_uid)
            return written
        outcome = self._post_binding(args, reservation)
        if outcome.error:
            self.state.release(args.pod_uid)
            self._remove_annotation(args)
            return outcome
        confirmed = self.state.confirm(args.pod_uid)
        return _ok(outcome.code, confirmed or reservation)

    def _patch(self, args: BindingArgs, rv: str, value: str) -> dict[str, Any]:
        return self.api.patch_pod(
            args.pod_namespace,
            args.pod_name,
            {
                "metadata": {
                    "uid": args.pod_uid,
                    "resourceVersion": rv,
                    "annotations": {A_RESERVATION: value},
                }
            },
        )

    def _write_annotation(
        self, args: BindingArgs, rv: str, reservation: Reservation
    ) -> BindOutcome | None:
        value = encode_reservation(reservation)
        try:
            self._patch(args, rv, value)
            return None
        except KubeError as exc:
            if exc.status != 409:
                code = "pod-gone" if exc.status == 404 else "patch-failed"
                return _fail(code, f"cannot record the reservation on pod {args.key}: {exc}")
        # The pod changed since we read it: re-read, and retry only if it is the same unbound pod.
        try:
            fresh = self._read(args)
        except KubeError as exc:
            return _fail("patch-failed", f"cannot re-read pod {args.key}: {exc}")
        if fresh is None or fresh.uid != args.pod_uid:
            return _fail("uid-mismatch", f"pod {args.key} was replaced while binding")
        if fresh.node_name:
            return _fail("already-bound", f"pod {args.key} is already bound to {fresh.node_name}")
        try:
            self._patch(args, fresh.resource_version, value)
            return None
        except KubeError as exc:
            return _fail(
                "patch-conflict", f"cannot record the reservation on pod {args.key}: {exc}"
            )

    def _post_binding(self, args: BindingArgs, reservation: Reservation | None) -> BindOutcome:
        try:
            self.api.bind_pod(args.pod_namespace, args.pod_name, args.pod_uid, args.node)
            return _ok("bound", reservation)
        except KubeError as exc:
            if exc.status == 409:
                try:
                    fresh = self._read(args)
                except KubeError:
                    fresh = None
                if fresh is not None and fresh.uid == args.pod_uid and fresh.node_name:
                    already = self._already(args, fresh.node_name)
                    if not already.error:
                        return _ok("already-bound", reservation)
                    return already
            return _fail("binding-failed", f"cannot bind pod {args.key} to {args.node}: {exc}")

    def _remove_annotation(self, args: BindingArgs) -> None:
        try:
            self.api.patch_pod(
                args.pod_namespace,
                args.pod_name,
                # The UID: never the annotation of another pod that took the name since.
                {"metadata": {"uid": args.pod_uid, "annotations": {A_RESERVATION: None}}},
            )
        except KubeError as exc:
            # It expires on its own: an unbound pod's annotation holds GPUs for the assumed TTL.
            log.info("could not remove the reservation annotation of %s: %s", args.key, exc)
