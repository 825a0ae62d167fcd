"""Talking to the end-to-end cluster, and bursts: a KServe predictor Deployment scaled up,
watched while it lands, and judged.

The kubelet picks a pod's GPUs itself (vramfit's reservation is its intent, not the outcome),
so what counts is what the agents report each GPU holds. A GPU is *double-booked* when its
agent reports it held by two pods, or held by a pod that needs more VRAM than the GPU has
beside memory no pod holds. A burst pod is *lost* when the burst settles without it: fewer
pods bound than the GPUs hold, a pod the kubelet refused (``Failed``: it had no free GPU for
it), or fewer live pods than replicas.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from kubernetes import client as k8s

from controlplane.pytest_plugin import wait_for
from placement.annotation import decode_reservation
from placement.quantity import parse_bytes
from tests.e2e.kserve import predictor_deployment, predictor_name, selector
from tests.e2e.world import Extender, Pool, pod_list, reports

RESERVATION = "vramfit.io/reservation"
VRAM_PER_GPU = "vramfit.io/vram-per-gpu"


def gpu_pod(
    name: str,
    *,
    gpus: int = 2,
    vram: str = "70Gi",
    scheduler: str = "vramfit",
    model: str = "",
    node: str = "",
) -> dict[str, Any]:
    """A lone GPU pod, for tests about one pod rather than a burst."""
    annotations = {"vramfit.io/vram-per-gpu": vram, "vramfit.io/model-size": "141Gi"}
    if model:
        annotations["vramfit.io/model"] = model
    limits = {"nvidia.com/gpu": str(gpus)}
    pod: dict[str, Any] = {
        "metadata": {"name": name, "annotations": annotations, "labels": {"app": "e2e"}},
        "spec": {
            "schedulerName": scheduler,
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "kserve-container",
                    "image": "kserve/huggingfaceserver:v0.15.0-gpu",
                    "resources": {"limits": limits, "requests": limits},
                }
            ],
        },
    }
    if node:
        pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}
    return pod


def is_bound(pod: dict[str, Any]) -> bool:
    return bool(pod["spec"].get("nodeName"))


def reservations(pods: list[dict[str, Any]]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """pod name -> (node, GPUs) from each bound pod's reservation annotation."""
    out = {}
    for p in pods:
        value = (p["metadata"].get("annotations") or {}).get(RESERVATION)
        assert value, f"pod {p['metadata']['name']} was bound without a reservation"
        r = decode_reservation(value, pod_uid=p["metadata"]["uid"], pod_key="")
        assert r.node == p["spec"]["nodeName"]
        out[p["metadata"]["name"]] = (r.node, r.gpu_uuids)
    return out


def holders(status_by_node: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """GPU UUID -> pods its agent reports on it."""
    found: dict[str, list[str]] = {}
    for status in status_by_node.values():
        for gpu in status.get("gpus", []):
            pods = {p["podUID"] for p in gpu.get("pods", [])}
            if gpu.get("holderPodUID"):
                pods.add(gpu["holderPodUID"])
            found[gpu["uuid"]] = sorted(pods)
    return found


def double_booked(
    pods: list[dict[str, Any]], status_by_node: dict[str, dict[str, Any]]
) -> set[str]:
    """What the GPUs really hold, by their agents' reports (the kubelet's choice, which need
    not be the reservation's): each GPU reported held by two pods, and each GPU held by one of
    ``pods`` that needs more VRAM per GPU than the GPU has beside memory no pod holds (a leaked
    or outside process), as ``"<GPU>: <why>"``."""
    needs = {
        p["metadata"]["uid"]: (p["metadata"]["name"], parse_bytes(vram, "vram-per-gpu"))
        for p in pods
        if (vram := (p["metadata"].get("annotations") or {}).get(VRAM_PER_GPU))
    }
    found = set()
    for status in status_by_node.values():
        for gpu in status.get("gpus", []):
            uuid, memory = gpu["uuid"], gpu.get("memory") or {}
            on_it = {x["podUID"]: int(x["bytes"]) for x in gpu.get("pods", [])}
            if gpu.get("holderPodUID"):
                on_it.setdefault(gpu["holderPodUID"], 0)
            if len(on_it) > 1:
                found.add(f"{uuid}: held by {len(on_it)} pods")
            outside = max(0, int(memory.get("usedBytes") or 0) - sum(on_it.values()))
            room = int(memory.get("totalBytes") or 0) - outside
            for uid in on_it:
                if uid in needs and needs[uid][1] > room:
                    found.add(f"{uuid}: {needs[uid][0]} needs more than its {room} bytes")
    return found


def refused_by_kubelet(pods: list[dict[str, Any]]) -> list[str]:
    return [
        p["metadata"]["name"]
        for p in pods
        if (p.get("status") or {}).get("reason") == "UnexpectedAdmissionError"
    ]


@dataclass
class Cluster:
    pool: Pool
    extender: Extender
    core: k8s.CoreV1Api
    custom: k8s.CustomObjectsApi

    @property
    def apps(self) -> k8s.AppsV1Api:
        return k8s.AppsV1Api(self.core.api_client)

    def create(self, namespace: str, pods: list[dict[str, Any]]) -> None:
        for pod in pods:
            self.core.create_namespaced_pod(namespace, pod)

    def pods(self, namespace: str) -> list[dict[str, Any]]:
        return pod_list(self.core, namespace)

    def bound(self, namespace: str) -> list[dict[str, Any]]:
        return [p for p in self.pods(namespace) if is_bound(p)]

    def reports(self) -> dict[str, dict[str, Any]]:
        """The pool's nodes' reports (other tests may leave reports of their own nodes)."""
        pool = set(self.pool.nodes)
        return {name: r for name, r in reports(self.custom).items() if name in pool}

    def holders(self) -> dict[str, list[str]]:
        return holders(self.reports())

    def wait_idle(self) -> None:
        """Until no agent reports a GPU held (pods of earlier tests are gone)."""
        wait_for(
            "the pool to be idle", lambda: all(not p for p in self.holders().values()), timeout=90
        )

    def filter(self, body: bytes) -> list[str] | None:
        """Ask the extender directly, as kube-scheduler does; the names that pass."""
        request = urllib.request.Request(
            f"{self.extender.url}/scheduler/filter",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            names: list[str] | None = orjson.loads(resp.read())["NodeNames"]
            return names

    def events(self, namespace: str, pod: str) -> str:
        items = self.core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={pod}"
        ).items
        return "\n".join(e.message or "" for e in items)

    def burst(
        self, namespace: str, isvc: str, replicas: int, *, expected: int, **shape: Any
    ) -> Burst:
        """A predictor Deployment at zero replicas, ready to :meth:`Burst.scale`; ``expected``
        of its ``replicas`` pods fit the pool."""
        self.apps.create_namespaced_deployment(namespace, predictor_deployment(isvc, 0, **shape))
        return Burst(self, namespace, isvc, replicas, expected)


def assert_no_double_booking(pods: list[dict[str, Any]], cluster: Cluster) -> None:
    twice = double_booked(pods, cluster.reports())
    assert not twice, f"GPUs double-booked: {sorted(twice)}"
    assert not refused_by_kubelet(pods), f"the kubelet refused {refused_by_kubelet(pods)}"


@dataclass
class Burst:
    """One predictor's burst: its pods, watched for double-booking while they land."""

    cluster: Cluster
    namespace: str
    isvc: str
    replicas: int
    expected: int
    seen: set[str] = field(default_factory=set)
    worst: set[str] = field(default_factory=set)
    sample_errors: int = 0

    def scale(self, replicas: int | None = None) -> None:
        self.cluster.apps.patch_namespaced_deployment_scale(
            predictor_name(self.isvc),
            self.namespace,
            {"spec": {"replicas": self.replicas if replicas is None else replicas}},
        )

    def pods(self) -> list[dict[str, Any]]:
        ((key, value),) = selector(self.isvc).items()
        resp = self.cluster.core.list_namespaced_pod(
            self.namespace, label_selector=f"{key}={value}", _preload_content=False
        )
        items: list[dict[str, Any]] = orjson.loads(resp.data)["items"]
        return items

    def live(self) -> list[dict[str, Any]]:
        return [p for p in self.pods() if not p["metadata"].get("deletionTimestamp")]

    def bound(self) -> list[dict[str, Any]]:
        return [p for p in self.live() if is_bound(p)]

    def sample(self) -> list[dict[str, Any]]:
        """The live pods now; remembers every pod seen and every GPU seen double-booked."""
        pods = self.live()
        self.seen.update(p["metadata"]["uid"] for p in pods)
        self.worst |= double_booked(pods, self.cluster.reports())
        return pods

    @contextlib.contextmanager
    def watching(self, interval: float = 0.5) -> Iterator[None]:
        """Sample in the background (a failed sample, while the API server is down, is
        counted and skipped)."""
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(interval):
                try:
                    self.sample()
                except Exception:  # the API server may be away: count it, sample again
                    self.sample_errors += 1

        thread = threading.Thread(target=run, name=f"burst-{self.isvc}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=10)

    def whole(self) -> bool:
        pods = self.sample()
        bound = [p for p in pods if is_bound(p)]
        return (
            len(pods) == self.replicas
            and len(bound) == self.expected
            and not refused_by_kubelet(pods)
        )

    def wait_whole(self, timeout: float) -> float:
        """Wait until the burst is whole and stays so for 3 s; returns when it first was."""
        deadline = time.monotonic() + timeout
        while True:
            wait_for(
                f"{self.expected} of {self.replicas} pods of {self.isvc} bound",
                self.whole,
                timeout=max(1.0, deadline - time.monotonic()),
                interval=0.25,
            )
            at = time.monotonic()
            time.sleep(3)
            if self.whole():
                return at

    def lost(self) -> int:
        """Pods the burst is short of: unbound though GPUs are free, refused, or missing."""
        pods = self.sample()
        bound = sum(1 for p in pods if is_bound(p))
        return (
            max(0, self.expected - bound)
            + len(refused_by_kubelet(pods))
            + max(0, self.replicas - len(pods))
        )
