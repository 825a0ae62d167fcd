"""Events that say a GPU pod was admitted unchanged, written off the request path.

The review must answer in milliseconds and never wait on the API server it is serving, so an
Event is queued (bounded; a full queue drops and counts) and a background thread writes it. A
pod being created may have no name yet (``generateName``), and a ReplicaSet creates a burst of
identical pods, so the Event is about the pod's controller when it has one (the object a person
looks at) and the same (object, reason) is reported once per ``repeat_after_s``.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from admission.metrics import AdmissionMetrics

log = logging.getLogger(__name__)

COMPONENT: Final = "vramfit-admission"
REASON: Final = "VramfitNotDerived"
MAX_MESSAGE: Final = 1024
MAX_REMEMBERED: Final = 4096


@dataclass(frozen=True, slots=True)
class Involved:
    """The object an Event is about."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str = ""


def involved_object(pod: Mapping[str, Any], namespace: str) -> Involved:
    """The pod's controller when it has one, else the pod (by name or generateName). Pure."""
    meta = pod.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            return Involved(
                str(ref.get("apiVersion", "")),
                str(ref.get("kind", "")),
                namespace,
                str(ref.get("name", "")),
                str(ref.get("uid", "")),
            )
    name = meta.get("name") or meta.get("generateName") or "<unnamed>"
    return Involved("v1", "Pod", namespace, str(name), str(meta.get("uid") or ""))


def event_body(involved: Involved, reason: str, message: str, now: datetime) -> dict[str, Any]:
    """A core/v1 Event (pure apart from its random name suffix)."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    ref: dict[str, str] = {
        "apiVersion": involved.api_version,
        "kind": involved.kind,
        "namespace": involved.namespace,
        "name": involved.name,
    }
    if involved.uid:
        ref["uid"] = involved.uid
    prefix = involved.name[:200].rstrip(".-") or "pod"
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{prefix}.{secrets.token_hex(8)}", "namespace": involved.namespace},
        "involvedObject": ref,
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "type": "Warning",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


class EventSink:
    """Queues Events and writes them from one thread with ``create(namespace, body)``."""

    def __init__(
        self,
        create: Callable[[str, dict[str, Any]], object],
        metrics: AdmissionMetrics,
        *,
        max_pending: int = 256,
        repeat_after_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._create = create
        self._metrics = metrics
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=max_pending)
        self._repeat_after_s = repeat_after_s
        self._clock = clock
        self._seen: OrderedDict[tuple[str, str, str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def report(self, involved: Involved, reason: str, message: str) -> None:
        """Queue an Event unless the same object and reason were reported recently."""
        key = (involved.namespace, involved.kind, involved.name, reason)
        now = self._clock()
        with self._lock:
            last = self._seen.get(key)
            if last is not None and now - last < self._repeat_after_s:
                self._metrics.events.labels("repeated").inc()
                return
            self._seen[key] = now
            self._seen.move_to_end(key)
            while len(self._seen) > MAX_REMEMBERED:
                self._seen.popitem(last=False)
        try:
            self._queue.put_nowait(event_body(involved, REASON, message, datetime.now(UTC)))
        except queue.Full:
            self._metrics.events.labels("dropped").inc()

    def drain(self, timeout_s: float = 0.0) -> bool:
        """Write one queued Event (waiting up to ``timeout_s``); False when none was queued."""
        try:
            body = self._queue.get(timeout=timeout_s) if timeout_s else self._queue.get_nowait()
        except queue.Empty:
            return False
        try:
            self._create(body["metadata"]["namespace"], body)
            self._metrics.events.labels("sent").inc()
        except Exception as exc:  # an Event is best effort: log, count, go on
            log.warning("could not write event %s: %s", body["metadata"]["name"], exc)
            self._metrics.events.labels("failed").inc()
        return True

    def run(self, stop: threading.Event) -> None:
        """Write Events until ``stop`` is set."""
        while not stop.is_set():
            self.drain(timeout_s=0.5)
