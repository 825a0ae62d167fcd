"""The pods bound to this node, kept current by a list + watch on the API server.

Two consumers: the pod-resources API names pods by namespace/name but the published state
uses pod UIDs (the join dcgm-exporter also makes), and the simulated kubelet needs to see pods
the scheduler binds to its node. Only the fields they read are kept, so a node with many pods
costs little memory.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from nodeagent.kube import ApiError, KubeClient
from nodeagent.retry import Backoff

log = logging.getLogger(__name__)

ANNOTATION_PREFIX = "vramfit.io/"


class PodMetaJSON(TypedDict, total=False):
    uid: str
    name: str
    namespace: str
    resourceVersion: str
    annotations: dict[str, str]
    deletionTimestamp: str


class PodJSON(TypedDict, total=False):
    metadata: PodMetaJSON
    spec: dict[str, Any]
    status: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What the agent keeps of one pod. ``raw`` is the pod trimmed to metadata (vramfit
    annotations only), the containers' names and resources, the phase and conditions, and the
    ResourceClaims it names (``spec.resourceClaims`` and the claim names in its status)."""

    uid: str
    namespace: str
    name: str
    phase: str
    deleting: bool
    ready: bool
    raw: PodJSON

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"


def trim_pod(obj: Mapping[str, Any]) -> PodInfo | None:
    """The parts of a raw pod the agent uses, or ``None`` for an object that is not a pod (pure)."""
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping) or not meta.get("uid"):
        return None
    spec = obj.get("spec") if isinstance(obj.get("spec"), Mapping) else {}
    status = obj.get("status") if isinstance(obj.get("status"), Mapping) else {}
    assert isinstance(spec, Mapping) and isinstance(status, Mapping)
    annotations = meta.get("annotations") or {}
    kept_ann = {
        str(k): str(v)
        for k, v in (annotations.items() if isinstance(annotations, Mapping) else ())
        if str(k).startswith(ANNOTATION_PREFIX)
    }

    def containers(key: str) -> list[dict[str, Any]]:
        items = spec.get(key) or []
        return [
            {"name": c.get("name", ""), "resources": c.get("resources") or {}}
            for c in items
            if isinstance(c, Mapping)
        ]

    conditions = [c for c in status.get("conditions") or [] if isinstance(c, Mapping)]
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    pm: PodMetaJSON = {
        "uid": str(meta["uid"]),
        "name": str(meta.get("name", "")),
        "namespace": str(meta.get("namespace", "")),
        "annotations": kept_ann,
    }
    if meta.get("deletionTimestamp"):
        pm["deletionTimestamp"] = str(meta["deletionTimestamp"])
    raw: PodJSON = {
        "metadata": pm,
        "spec": {
            "nodeName": spec.get("nodeName", ""),
            "containers": containers("containers"),
            "initContainers": containers("initContainers"),
        },
        "status": {"phase": status.get("phase", ""), "conditions": [dict(c) for c in conditions]},
    }
    # The claims a pod of DRA devices uses (the simulated DRA driver reads them).
    if isinstance(spec.get("resourceClaims"), list):
        raw["spec"]["resourceClaims"] = list(spec["resourceClaims"])
    for key in ("resourceClaimStatuses", "extendedResourceClaimStatus"):
        if status.get(key):
            raw["status"][key] = status[key]
    return PodInfo(
        uid=pm["uid"],
        namespace=pm["namespace"],
        name=pm["name"],
        phase=str(status.get("phase", "")),
        deleting=bool(meta.get("deletionTimestamp")),
        ready=ready,
        raw=raw,
    )


class _RelistError(Exception):
    """The watch cannot continue from its resource version (410 Gone): list again."""


class NodePods:
    """A list + watch of ``spec.nodeName=<node>`` pods in a daemon thread (thread-safe reads)."""

    def __init__(
        self,
        client: KubeClient,
        node: str,
        *,
        backoff: Backoff | None = None,
        watch_timeout_s: int = 60,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self._node = node
        self._backoff = backoff or Backoff(0.5, 30.0)
        self._watch_timeout = watch_timeout_s
        self._on_change = on_change
        self._pods: dict[str, PodInfo] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pods-{node}", daemon=True)

    def start(self) -> None:
        """Start listing and watching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop at the end of the current watch (the thread is a daemon)."""
        self._stop.set()

    def join(self, timeout: float) -> None:
        """Wait for the thread to end (after ``stop`` and the client's ``close``)."""
        if self._thread.is_alive():
            self._thread.join(timeout)

    def snapshot(self) -> dict[str, PodInfo]:
        """The pods by UID, as last seen."""
        with self._lock:
            return dict(self._pods)

    def uid_of(self, namespace: str, name: str) -> str | None:
        """The UID of the pod ``namespace/name`` on this node, if seen."""
        with self._lock:
            for p in self._pods.values():
                if p.namespace == namespace and p.name == name:
                    return p.uid
        return None

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def _run(self) -> None:
        selector = {"fieldSelector": f"spec.nodeName={self._node}"}
        while not self._stop.is_set():
            try:
                listing = self._client.request("GET", "/api/v1/pods", query=selector)
                pods = {}
                for item in listing.get("items") or []:
                    info = trim_pod(item) if isinstance(item, Mapping) else None
                    if info is not None:
                        pods[info.uid] = info
                with self._lock:
                    self._pods = pods
                self._changed()
                rv = str((listing.get("metadata") or {}).get("resourceVersion", ""))
                self._backoff.reset()
                while not self._stop.is_set():
                    rv = self._watch(selector, rv)
            except ApiError as exc:
                delay = self._backoff.next_delay()
                log.warning("pods on %s: %s; again in %.1fs", self._node, exc, delay)
                self._stop.wait(delay)
            except _RelistError:
                continue

    def _watch(self, selector: dict[str, str], rv: str) -> str:
        query = dict(selector)
        query.update(
            resourceVersion=rv,
            allowWatchBookmarks="true",
            timeoutSeconds=str(self._watch_timeout),
        )
        for event in self._client.watch("/api/v1/pods", query, timeout_s=self._watch_timeout + 30):
            kind, obj = event.get("type"), event.get("object")
            if not isinstance(obj, Mapping):
                continue
            if kind == "ERROR":
                log.info("pods watch on %s ended: %s", self._node, obj.get("message", obj))
                raise _RelistError
            meta = obj.get("metadata")
            if isinstance(meta, Mapping) and meta.get("resourceVersion"):
                rv = str(meta["resourceVersion"])
            if kind == "BOOKMARK":
                continue
            info = trim_pod(obj)
            if info is None:
                continue
            with self._lock:
                if kind == "DELETED":
                    self._pods.pop(info.uid, None)
                else:
                    self._pods[info.uid] = info
            self._changed()
            if self._stop.is_set():
                break
        return rv
