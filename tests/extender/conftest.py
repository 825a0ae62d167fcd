"""Builders for the extender's tests: GPU nodes, their reports and Leases, raw pods, an app.

Everything is built from the same wire shapes the real sources produce (``encode_status`` for
reports, Lease and Pod JSON as the API server returns them), so the state is fed exactly as the
watches feed it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry

from extender.app import create_app
from extender.bind import Binder
from extender.config import Settings
from extender.decisions import Mode
from extender.kubeapi import KubeError
from extender.metrics import ExtenderMetrics
from extender.objects import (
    AgentLease,
    NodeReport,
    PodInfo,
    read_lease,
    read_leases,
    read_pod,
    read_pods,
    read_report,
    read_reports,
)
from extender.state import LEASES, PODS, REPORTS, ClusterState
from placement.model import GIB, CachedModel, GpuState, NodeState
from placement.nodegpustate import LEASE_PREFIX, encode_status, format_time

NOW = 1_800_000_000.0
H100 = "NVIDIA-H100-80GB-HBM3"
A100 = "NVIDIA-A100-SXM4-40GB"


def gpu_node(
    name: str,
    *,
    gpus: int = 8,
    product: str = H100,
    gib: int = 80,
    free_gib: float | None = None,
    nvlink: str | list[list[int]] = "all",
    unhealthy: tuple[int, ...] = (),
    mig: tuple[int, ...] = (),
    held: Mapping[int, str] | None = None,
    cached: tuple[str, ...] = (),
    observed_at: float = NOW,
) -> NodeState:
    """A GPU node as the agent reports it (lease fields are the state's business)."""
    uuids = [f"GPU-{name}-{i}" for i in range(gpus)]
    if nvlink == "all":
        groups = [list(range(gpus))]
    elif nvlink == "none":
        groups = [[i] for i in range(gpus)]
    else:
        assert isinstance(nvlink, list)
        groups = nvlink
    peers = {i: frozenset(uuids[j] for j in g if j != i) for g in groups for i in g}
    held = held or {}
    free = int((gib if free_gib is None else free_gib) * GIB)
    return NodeState(
        name=name,
        gpus=tuple(
            GpuState(
                uuid=uuids[i],
                index=i,
                product=product,
                total_bytes=gib * GIB,
                free_bytes=0 if i in held else free,
                used_bytes=gib * GIB - free if i not in held else gib * GIB,
                healthy=i not in unhealthy,
                unhealthy_reason="XID 79: GPU fell off the bus" if i in unhealthy else "",
                mig_enabled=i in mig,
                nvlink_peers=peers.get(i, frozenset()),
                holder_pod_uid=held.get(i),
            )
            for i in range(gpus)
        ),
        observed_at=observed_at,
        lease_renewed_at=None,
        cached_models=tuple(CachedModel(m, 140 * GIB) for m in cached),
    )


def report_object(node: NodeState) -> dict[str, Any]:
    """The NodeGPUState object the agent would write for ``node``."""
    return {
        "apiVersion": "vramfit.io/v1alpha1",
        "kind": "NodeGPUState",
        "metadata": {"name": node.name, "resourceVersion": "1"},
        "status": dict(encode_status(node)),
    }


def lease_object(node: str, renewed_at: float, duration: int = 40) -> dict[str, Any]:
    """The agent's Lease for ``node``, as the API server returns it."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": f"{LEASE_PREFIX}{node}", "namespace": "vramfit-system"},
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": duration,
            "renewTime": format_time(renewed_at),
        },
    }


def report_of(raw: Mapping[str, Any]) -> NodeReport:
    """The report the watch reads from a raw NodeGPUState (which must name its node)."""
    report = read_report(raw)
    assert report is not None, raw
    return report


def lease_of(raw: Mapping[str, Any]) -> AgentLease:
    """The agent Lease the watch reads from a raw Lease (which must be an agent's)."""
    lease = read_lease(raw)
    assert lease is not None, raw
    return lease


def pod_of(raw: Mapping[str, Any]) -> PodInfo:
    """The pod facts the watch reads from a raw pod (which must have a UID)."""
    info = read_pod(raw, now=NOW)
    assert info is not None, raw
    return info


_uids = itertools.count(1)


def pod_object(
    name: str,
    *,
    gpus: int = 1,
    vram: str | None = "70Gi",
    annotations: Mapping[str, str] | None = None,
    uid: str | None = None,
    namespace: str = "serving",
    node_name: str = "",
    phase: str = "Pending",
    ready: bool = False,
    rv: str = "100",
    deleting: bool = False,
) -> dict[str, Any]:
    """A pod as the API server returns it (the parts kube-scheduler and vramfit read)."""
    ann: dict[str, str] = {}
    if vram is not None and gpus:
        ann["vramfit.io/vram-per-gpu"] = vram
    ann.update(annotations or {})
    limits = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    pod: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid or f"00000000-0000-4000-8000-{next(_uids):012d}",
            "resourceVersion": rv,
            "creationTimestamp": "2027-01-15T08:00:00Z",
            "annotations": ann,
        },
        "spec": {
            "schedulerName": "vramfit",
            "containers": [
                {
                    "name": "kserve-container",
                    "image": "kserve/huggingfaceserver:v0.15.0",
                    "resources": {"limits": limits, "requests": dict(limits)},
                }
            ],
        },
        "status": {"phase": phase},
    }
    if node_name:
        pod["spec"]["nodeName"] = node_name
    if ready:
        pod["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    if deleting:
        pod["metadata"]["deletionTimestamp"] = "2027-01-15T08:05:00Z"
    return pod


def synced_state(
    nodes: list[NodeState],
    *,
    pods: list[dict[str, Any]] | None = None,
    lease_at: float = NOW,
    leases: Mapping[str, float] | None = None,
    ttl: float = 30.0,
) -> ClusterState:
    """A state fed as its watches would feed it on start: reports, Leases, then pods."""
    state = ClusterState(assumed_ttl_s=ttl)
    lease_times = {n.name: lease_at for n in nodes} | dict(leases or {})
    state.replace_leases(read_leases([lease_object(n, t) for n, t in lease_times.items()]))
    state.replace_reports(read_reports([report_object(n) for n in nodes]))
    state.replace_pods(read_pods(pods or [], now=NOW), listed_at=NOW - 60)
    for resource in (REPORTS, LEASES, PODS):
        state.mark_synced(resource)
    return state


@dataclass
class FakePodAPI:
    """The API server's pod endpoints, in memory: the port bind talks to.

    Real API-server behaviour is tested end to end; this fake exists to make the failure
    paths (conflicts, refused bindings) happen on demand. ``fail`` maps an operation name to
    the HTTP status it answers next.
    """

    pods: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail: dict[str, list[int]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    on_patch: Callable[[dict[str, Any]], None] | None = None

    def add(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        self.pods[f"{meta['namespace']}/{meta['name']}"] = pod

    def _fail(self, op: str, what: str) -> None:
        queue = self.fail.get(op)
        if queue:
            status = queue.pop(0)
            raise KubeError(what, status, f"injected {status}")

    def _pod(self, namespace: str, name: str) -> dict[str, Any]:
        pod = self.pods.get(f"{namespace}/{name}")
        if pod is None:
            raise KubeError(f"pod {namespace}/{name}", 404, "not found")
        return pod

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        self.calls.append(f"get {name}")
        self._fail("get", f"get pod {name}")
        return self._pod(namespace, name)

    def patch_pod(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append(f"patch {name}")
        self._fail("patch", f"patch pod {name}")
        pod = self._pod(namespace, name)
        meta_patch = patch.get("metadata", {})
        uid = meta_patch.get("uid")
        if uid is not None and uid != pod["metadata"]["uid"]:
            raise KubeError(f"patch pod {name}", 422, "metadata.uid: field is immutable")
        rv = meta_patch.get("resourceVersion")
        if rv is not None and rv != pod["metadata"]["resourceVersion"]:
            raise KubeError(f"patch pod {name}", 409, "the object has been modified")
        annotations = pod["metadata"].setdefault("annotations", {})
        for k, v in meta_patch.get("annotations", {}).items():
            if v is None:
                annotations.pop(k, None)
            else:
                annotations[k] = v
        pod["metadata"]["resourceVersion"] = str(int(pod["metadata"]["resourceVersion"]) + 1)
        if self.on_patch is not None:
            self.on_patch(pod)
        return pod

    def bind_pod(
        self,
        namespace: str,
        name: str,
        uid: str,
        node: str,
        *,
        annotations: Mapping[str, str] | None = None,
        resource_version: str = "",
    ) -> None:
        """As the API server's Binding: UID and resourceVersion preconditions, then the node
        and ``annotations`` written in one update."""
        self.calls.append(f"bind {name} {node}")
        self._fail("bind", f"bind pod {name}")
        pod = self._pod(namespace, name)
        meta = pod["metadata"]
        if meta["uid"] != uid:
            raise KubeError(f"bind pod {name}", 409, "UID precondition failed")
        if resource_version and resource_version != meta["resourceVersion"]:
            raise KubeError(f"bind pod {name}", 409, "ResourceVersion precondition failed")
        if pod["spec"].get("nodeName"):
            raise KubeError(f"bind pod {name}", 409, "pod is already assigned to a node")
        pod["spec"]["nodeName"] = node
        meta.setdefault("annotations", {}).update(annotations or {})
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Extender:
    """An app with everything it was built from, for tests to poke at."""

    app: Flask
    client: FlaskClient
    state: ClusterState
    api: FakePodAPI
    metrics: ExtenderMetrics
    clock: Clock
    settings: Settings


def build_extender(
    state: ClusterState,
    *,
    mode: Mode = Mode.DECIDE,
    policy: str = "binpack",
    max_body_bytes: int = 1024 * 1024,
    api: FakePodAPI | None = None,
    clock: Clock | None = None,
    metrics_port: int | None = None,
) -> Extender:
    settings = Settings(
        mode=mode,
        policy=policy,
        max_body_bytes=max_body_bytes,
        metrics_host=None if metrics_port is None else "0.0.0.0",
        metrics_port=metrics_port,
    )
    api = api or FakePodAPI()
    clock = clock or Clock()
    metrics = ExtenderMetrics(CollectorRegistry())
    binder = Binder(state, api, settings, clock=clock)
    app = create_app(settings, state, binder, metrics, clock=clock)
    return Extender(app, app.test_client(), state, api, metrics, clock, settings)


def mixed_pool() -> list[NodeState]:
    """Two 8x H100 80 GB nodes and two 8x A100 40 GB nodes."""
    return [
        gpu_node("h100-0"),
        gpu_node("h100-1"),
        gpu_node("a100-0", product=A100, gib=40),
        gpu_node("a100-1", product=A100, gib=40),
    ]
