"""The kubelet's part on a simulated node: give pods GPUs, load their weights, mark them Ready.

For every pod bound to the node (``spec.nodeName``) that asks for ``nvidia.com/gpu``, it picks
GPUs as the kubelet and the stock NVIDIA device plugin do: from the GPUs no running pod holds,
listed in a random order (Go's map order), by the plugin's preferred allocation
(``placement.deviceplugin``, through ``loads.choose_gpus``). It never reads vramfit's
``vramfit.io/reservation`` annotation, unless made with ``honour_reservations`` (the agent's
``--kubelet-honours-reservations``: a kinder world than a real cluster, kept for comparison and
never used by the end-to-end tests). It grows the GPUs' memory while the weights load (see
``loads``), reports the pod Running and then Ready through the ``pods/status`` subresource, and
frees the GPUs when the pod is deleted or finishes. Like the real kubelet it rejects a pod it
has no GPUs for (``UnexpectedAdmissionError``) and completes the deletion of pods it stopped.

With ``claims`` (the agent's ``--dra-driver``: ``nodeagent.simulated.dra``) a pod that names
ResourceClaims holds the GPUs the DRA scheduler plugin allocated to them, as the DRA driver
prepares them, and waits until its claims are allocated.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from nodeagent.kube import STRATEGIC_MERGE_PATCH, ApiError, KubeClient
from nodeagent.pods import PodInfo
from nodeagent.simulated.dra import Allocation, claim_needs
from nodeagent.simulated.loads import (
    Load,
    PodNeeds,
    Source,
    advance,
    choose_gpus,
    pod_needs,
    seconds_left,
)
from nodeagent.simulated.spec import NodeSpec
from placement.quantity import format_bytes

log = logging.getLogger(__name__)

_TERMINAL = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True, slots=True)
class GpuUse:
    """Who holds one simulated GPU and how much memory it uses."""

    pod_uid: str
    used_bytes: int


@dataclass(slots=True)
class _Tracked:
    load: Load
    running_reported: bool = False
    ready_reported: bool = False


class SimulatedKubelet:
    """Tracks GPU assignments and loads for one simulated node (thread-safe).

    ``pods`` returns the node's pods (``NodePods.snapshot``); ``client`` writes pod status and
    completes deletions, and may be ``None`` for an offline node that only tracks loads.
    ``rng`` stands for the kubelet's map order (seeded by the node's name unless given).
    """

    def __init__(
        self,
        spec: NodeSpec,
        pods: Callable[[], dict[str, PodInfo]],
        client: KubeClient | None,
        *,
        complete_deletions: bool = True,
        honour_reservations: bool = False,
        rng: random.Random | None = None,
        claims: Callable[[PodInfo], Allocation | None] | None = None,
    ) -> None:
        self._spec = spec
        self._claims = claims
        self._honour = honour_reservations
        self._rng = rng if rng is not None else random.Random(f"kubelet/{spec.name}")
        self._pods = pods
        self._client = client
        self._complete_deletions = complete_deletions
        self._tracked: dict[str, _Tracked] = {}
        self._rejected: set[str] = set()
        self._deleted: set[str] = set()
        self._warned: set[str] = set()
        self._last: float | None = None
        self._lock = threading.Lock()
        self.wake = threading.Event()
        self._uuids = [spec.gpu_uuid(i) for i in range(spec.shape.gpus)]
        self._index = {u: i for i, u in enumerate(self._uuids)}

    # -- reading --------------------------------------------------------------------------

    def gpu_use(self, now: float) -> dict[str, GpuUse]:
        """GPU UUID -> holder and memory, with loads advanced to ``now``."""
        with self._lock:
            self._advance(now)
            return {
                uuid: GpuUse(t.load.pod_uid, t.load.memory_per_gpu())
                for t in self._tracked.values()
                for uuid in t.load.gpu_uuids
            }

    def loads(self) -> tuple[Load, ...]:
        """The loads being tracked."""
        with self._lock:
            return tuple(t.load for t in self._tracked.values())

    # -- the loop -------------------------------------------------------------------------

    def _advance(self, now: float) -> None:
        if self._last is not None and now > self._last:
            advanced = advance(
                [t.load for t in self._tracked.values()],
                now - self._last,
                self._spec.local_disk_bandwidth,
                self._spec.remote_bandwidth,
            )
            for ld in advanced:
                self._tracked[ld.pod_uid].load = ld
        if self._last is None or now > self._last:
            self._last = now

    def tick(self, now: float) -> None:
        """Reconcile with the node's pods and report status changes."""
        pods = self._pods()
        with self._lock:
            self._advance(now)
            gone = [
                uid
                for uid in self._tracked
                if uid not in pods or pods[uid].deleting or pods[uid].phase in _TERMINAL
            ]
            for uid in gone:
                t = self._tracked.pop(uid)
                log.info(
                    "%s: pod %s released GPUs %s", self._spec.name, t.load.pod_key, t.load.gpu_uuids
                )
            new = [
                p
                for uid, p in sorted(pods.items(), key=lambda kv: kv[1].key)
                if uid not in self._tracked
                and uid not in self._rejected
                and not p.deleting
                and p.phase not in _TERMINAL
            ]
            rejected = self._admit(new, now)
            for seen in (self._rejected, self._deleted, self._warned):
                seen.intersection_update(pods)
        for pod, message in rejected:
            self._write_status(pod, _failed(message), "rejected")
        for pod in [p for p in pods.values() if p.deleting and p.uid not in self._deleted]:
            self._finish_deletion(pod)
        with self._lock:
            todo = [(uid, t) for uid, t in self._tracked.items() if uid in pods]
        for uid, t in todo:
            pod = pods[uid]
            if t.load.done and not t.ready_reported:
                if pod.ready or self._write_status(pod, _ready(now, True, ""), "ready"):
                    t.ready_reported = t.running_reported = True
                    log.info("%s: pod %s is Ready", self._spec.name, pod.key)
            elif not t.load.done and not t.running_reported:
                with self._lock:
                    left = seconds_left(
                        [x.load for x in self._tracked.values()],
                        uid,
                        self._spec.local_disk_bandwidth,
                        self._spec.remote_bandwidth,
                    )
                message = (
                    f"loading {format_bytes(t.load.total_bytes)} of weights from "
                    f"{'local disk' if t.load.source is Source.LOCAL else 'remote storage'} "
                    f"(about {left:.0f}s at the current share of bandwidth)"
                )
                if self._write_status(pod, _ready(now, False, message), "running"):
                    t.running_reported = True

    def _admit(self, new: list[PodInfo], now: float) -> list[tuple[PodInfo, str]]:
        held = {uuid for t in self._tracked.values() for uuid in t.load.gpu_uuids}
        rejected: list[tuple[PodInfo, str]] = []
        for pod in new:
            allocation = self._claims(pod) if self._claims is not None else None
            if allocation is not None and allocation.waiting:
                continue  # its claims are not allocated yet: look again on the next tick
            claimed = allocation.gpu_uuids if allocation is not None else ()
            needs = self._needs(pod, len(claimed))
            if needs.problem and pod.uid not in self._warned:
                self._warned.add(pod.uid)
                log.warning("%s: pod %s: %s", self._spec.name, pod.key, needs.problem)
            if needs.gpus == 0:
                continue
            free = [i for i, u in enumerate(self._uuids) if u not in held]
            reserved = [self._index[u] for u in needs.preferred_gpus if u in self._index]
            picked: tuple[int, ...] | None
            if claimed:  # the DRA plugin chose them: the driver prepares what it allocated
                picked = tuple(sorted(self._index[u] for u in claimed if u in self._index))
            else:
                picked = choose_gpus(
                    needs.gpus,
                    free,
                    self._spec.shape.nvlink,
                    self._rng,
                    reserved=reserved,
                    honour_reservation=self._honour,
                )
            if picked is None:
                self._rejected.add(pod.uid)
                rejected.append(
                    (
                        pod,
                        "Allocate failed due to requested number of devices unavailable for "
                        f"nvidia.com/gpu. Requested: {needs.gpus}, Available: {len(free)}, "
                        "which is unexpected",
                    )
                )
                continue
            chosen = tuple(self._uuids[i] for i in picked)
            cached = any(m.model_id == needs.model_id for m in self._spec.cached_models)
            load = Load(
                pod_uid=pod.uid,
                pod_key=pod.key,
                gpu_uuids=chosen,
                bytes_per_gpu=needs.bytes_per_gpu,
                model_id=needs.model_id,
                total_bytes=needs.model_bytes,
                source=Source.LOCAL if needs.model_id and cached else Source.REMOTE,
                started_at=now,
            )
            if pod.ready:  # adopted after a restart: its load finished long ago
                load = replace(load, loaded_bytes=float(load.total_bytes))
            self._tracked[pod.uid] = _Tracked(
                load, running_reported=pod.ready, ready_reported=pod.ready
            )
            held.update(chosen)
            log.info(
                "%s: pod %s got GPUs %s, loading %s from %s",
                self._spec.name,
                pod.key,
                ", ".join(chosen),
                format_bytes(load.total_bytes),
                load.source.value,
            )
        return rejected

    def _needs(self, pod: PodInfo, claimed: int) -> PodNeeds:
        """What ``pod`` loads: by its ``nvidia.com/gpu``, or by the ``claimed`` GPUs its
        ResourceClaims were allocated here."""
        memory = self._spec.shape.vram_per_gpu
        if claimed:
            return claim_needs(pod.raw, claimed, memory)
        return pod_needs(pod.raw, self._spec.name, memory, reservation=self._honour)

    # -- API writes -----------------------------------------------------------------------

    def _write_status(self, pod: PodInfo, body: dict[str, object], what: str) -> bool:
        if self._client is None:
            return True
        path = f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/status"
        try:
            self._client.request("PATCH", path, body, content_type=STRATEGIC_MERGE_PATCH)
        except ApiError as exc:
            log.warning(
                "%s: pod %s: status (%s) not written: %s", self._spec.name, pod.key, what, exc
            )
            return exc.status == 404  # the pod is gone: nothing left to report
        return True

    def _finish_deletion(self, pod: PodInfo) -> None:
        if self._client is None or not self._complete_deletions:
            return
        path = f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}"
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": pod.uid}}
        try:
            self._client.request("DELETE", path, body)
        except ApiError as exc:
            if exc.status not in (404, 409):
                log.warning("%s: pod %s: deletion not completed: %s", self._spec.name, pod.key, exc)
                return
        self._deleted.add(pod.uid)

    # -- thread ---------------------------------------------------------------------------

    def run(self, stop: threading.Event, clock: Callable[[], float], period_s: float = 0.5) -> None:
        """Tick until ``stop`` is set: on every pod change, and every ``period_s`` meanwhile."""
        while not stop.is_set():
            self.wake.wait(period_s)
            self.wake.clear()
            try:
                self.tick(clock())
            except Exception:  # keep the node alive; the next tick retries
                log.exception("%s: simulated kubelet tick failed", self._spec.name)


def _ready(now: float, ready: bool, message: str) -> dict[str, object]:
    """The status patch of a running pod, Ready or still loading."""
    t = datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    state = "True" if ready else "False"
    cond: dict[str, str] = {"status": state, "lastTransitionTime": t}
    if not ready:
        cond.update(reason="ContainersNotReady", message=message)
    status: dict[str, object] = {"phase": "Running"}
    if not ready:
        status["startTime"] = t
    return {
        "status": {
            **status,
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": t},
                {"type": "Ready", **cond},
                {"type": "ContainersReady", **cond},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
            ],
        }
    }


def _failed(message: str) -> dict[str, object]:
    return {"status": {"phase": "Failed", "reason": "UnexpectedAdmissionError", "message": message}}
