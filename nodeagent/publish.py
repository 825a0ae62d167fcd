"""Publishing the node's state: one NodeGPUState object per node and a Lease heartbeat.

The Lease (``vramfit-agent-<node>`` in ``vramfit-system``) is renewed about every 10 s and
tells the extender the agent is alive; the NodeGPUState ``status`` is written only when
``change.write_reason`` says so. This runs in its own thread: API errors are retried with
backoff and jitter while the poll loop keeps reading GPUs, and the latest reading is written
as soon as the API server answers again. A reading older than ``stale_after_s`` is never
written (a stuck poll loop must not look current). The agent never writes the Node object and
never deletes anything.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nodeagent.change import ChangeSettings, WriteReason, write_reason
from nodeagent.kube import MERGE_PATCH, ApiError, KubeClient
from nodeagent.retry import Backoff
from placement.model import NodeState
from placement.nodegpustate import (
    GROUP,
    KIND,
    LEASE_PREFIX,
    PLURAL,
    VERSION,
    StatusJSON,
    format_time,
)

log = logging.getLogger(__name__)

NAMESPACE = "vramfit-system"
MANAGED_BY = {"app.kubernetes.io/managed-by": "vramfit-agent"}
STATUS_KEYS = tuple(StatusJSON.__annotations__)
"""Every key a status may carry: a patch sets those the new status leaves out to null."""


@dataclass(frozen=True, slots=True)
class PublishSettings:
    """Where and how often to publish."""

    namespace: str = NAMESPACE
    lease_duration_s: int = 40
    lease_renew_s: float = 10.0
    change: ChangeSettings = field(default_factory=ChangeSettings)
    stale_after_s: float = 30.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 7.0


@dataclass(slots=True)
class PublishStats:
    """Counters for metrics and readiness."""

    status_writes: dict[str, int] = field(default_factory=dict)
    lease_renewals: int = 0
    failures: int = 0
    last_status_write_at: float | None = None
    last_lease_renew_at: float | None = None
    last_error: str = ""
    api_ok: bool = False


@dataclass(frozen=True, slots=True)
class _Offer:
    state: NodeState
    status: StatusJSON


def object_path(node: str) -> str:
    """API path of the node's NodeGPUState."""
    return f"/apis/{GROUP}/{VERSION}/{PLURAL}/{node}"


def lease_path(namespace: str, node: str) -> str:
    """API path of the node's Lease."""
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{LEASE_PREFIX}{node}"


def status_patch(status: StatusJSON) -> dict[str, Any]:
    """A JSON merge patch that makes ``.status`` exactly ``status`` (pure): keys the new status
    leaves out are sent as null, so an error that cleared does not linger."""
    body: dict[str, Any] = {k: None for k in STATUS_KEYS}
    body.update(status)
    return {"status": body}


class Publisher:
    """Writes the Lease and the NodeGPUState of ``node`` (see the module docstring)."""

    def __init__(
        self,
        client: KubeClient,
        node: str,
        *,
        settings: PublishSettings | None = None,
        clock: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._node = node
        self._s = settings or PublishSettings()
        self._clock = clock
        self._backoff = Backoff(self._s.backoff_base_s, self._s.backoff_cap_s, rng)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: _Offer | None = None
        self._written: NodeState | None = None
        self._written_at = 0.0
        self._lease_exists = False
        self._object_exists = False
        self._retry_at = 0.0
        self._lease_due = 0.0
        self.stats = PublishStats()

    @property
    def lease_duration_s(self) -> float:
        """How long the Lease this publisher renews counts as alive."""
        return float(self._s.lease_duration_s)

    def offer(self, state: NodeState, status: StatusJSON) -> None:
        """Hand over the latest state (from the poll loop; never blocks on the API)."""
        with self._lock:
            self._pending = _Offer(state, status)
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        """Publish until ``stop`` is set."""
        while not stop.is_set():
            now = self._clock()
            self.step(now)
            wait = max(0.05, min(self._lease_due, self._retry_at or self._lease_due) - now)
            self._wake.wait(min(wait, 1.0))
            self._wake.clear()

    def step(self, now: float) -> None:
        """Renew the Lease if due and write the status if ``write_reason`` says so."""
        if now < self._retry_at:
            return
        try:
            if now >= self._lease_due:
                self._renew_lease(now)
                self._lease_due = now + self._s.lease_renew_s
            with self._lock:
                offer = self._pending
            if offer is not None:
                self._maybe_write(offer, now)
        except ApiError as exc:
            self.stats.api_ok = False
            self.stats.failures += 1
            self.stats.last_error = str(exc)
            delay = self._backoff.next_delay()
            self._retry_at = now + delay
            if exc.status == 404:
                self._lease_exists = self._object_exists = False
            log.warning("publishing for node %s: %s; retrying in %.1fs", self._node, exc, delay)
            return
        self._retry_at = 0.0
        self._backoff.reset()
        self.stats.api_ok = True
        self.stats.last_error = ""

    def _maybe_write(self, offer: _Offer, now: float) -> None:
        age = now - offer.state.observed_at
        if age > self._s.stale_after_s:
            log.warning("not publishing a reading %.0fs old (the poll loop is behind)", age)
            return
        reason = write_reason(self._written, self._written_at, offer.state, now, self._s.change)
        if reason is None:
            return
        self._write_status(offer.status)
        self._written = offer.state
        self._written_at = now
        self.stats.status_writes[reason.value] = self.stats.status_writes.get(reason.value, 0) + 1
        self.stats.last_status_write_at = now
        if reason is not WriteReason.MAX_AGE:
            log.debug("node %s: status written (%s)", self._node, reason.value)

    def _write_status(self, status: StatusJSON) -> None:
        path = object_path(self._node)
        if not self._object_exists:
            try:
                self._client.request("GET", path)
            except ApiError as exc:
                if exc.status != 404:
                    raise
                body = {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": KIND,
                    "metadata": {"name": self._node, "labels": MANAGED_BY},
                    "spec": {"nodeName": self._node},
                }
                try:
                    self._client.request("POST", f"/apis/{GROUP}/{VERSION}/{PLURAL}", body)
                except ApiError as exc2:
                    if exc2.status != 409:
                        raise
                log.info("created %s %s", KIND, self._node)
            self._object_exists = True
        self._client.request(
            "PATCH", f"{path}/status", status_patch(status), content_type=MERGE_PATCH
        )

    def _renew_lease(self, now: float) -> None:
        t = format_time(now)
        path = lease_path(self._s.namespace, self._node)
        spec = {
            "holderIdentity": self._node,
            "leaseDurationSeconds": self._s.lease_duration_s,
            "renewTime": t,
        }
        if self._lease_exists:
            self._client.request("PATCH", path, {"spec": spec}, content_type=MERGE_PATCH)
        else:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": f"{LEASE_PREFIX}{self._node}",
                    "namespace": self._s.namespace,
                    "labels": MANAGED_BY,
                },
                "spec": {**spec, "acquireTime": t, "leaseTransitions": 0},
            }
            try:
                self._client.request(
                    "POST",
                    f"/apis/coordination.k8s.io/v1/namespaces/{self._s.namespace}/leases",
                    body,
                )
            except ApiError as exc:
                if exc.status != 409:
                    raise
                self._client.request("PATCH", path, {"spec": spec}, content_type=MERGE_PATCH)
            self._lease_exists = True
        self.stats.lease_renewals += 1
        self.stats.last_lease_renew_at = now
