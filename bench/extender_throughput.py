"""Scheduling throughput with the real kube-scheduler, with and without the vramfit extender.

One local control plane, 1,000 fake GPU nodes (8x H100 80 GB each) with their NodeGPUState
reports and agent Leases published directly (no agents: nothing here loads weights), and two
rounds of 500 single-GPU pods. In each round the pods are created first, for a scheduler
profile that is not running yet; then the scheduler starts and the clock runs from the first
pod bound to the last. Round one is the stock scheduler; round two is the shipped ``vramfit``
profile (``deploy/scheduler-config.yaml``) calling the extender over HTTP.
"""

from __future__ import annotations

import functools
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import yaml
from kubernetes import client as k8s

from controlplane.binaries import locate
from controlplane.harness import ControlPlane
from controlplane.nodes import GpuNode, create_nodes
from controlplane.processes import free_ports, http_ok
from placement.model import GIB, CachedModel, GpuState, NodeState
from placement.nodegpustate import GROUP, LEASE_PREFIX, PLURAL, VERSION, encode_status, format_time

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SYSTEM = "vramfit-system"
H100 = "NVIDIA-H100-80GB-HBM3"


def _node_state(name: str, now: float) -> NodeState:
    uuids = [f"GPU-{name}-{g}" for g in range(8)]
    return NodeState(
        name=name,
        gpus=tuple(
            GpuState(
                uuid=uuids[g],
                index=g,
                product=H100,
                total_bytes=80 * GIB,
                free_bytes=80 * GIB,
                used_bytes=0,
                nvlink_peers=frozenset(u for u in uuids if u != uuids[g]),
            )
            for g in range(8)
        ),
        observed_at=now,
        lease_renewed_at=now,
        cached_models=(CachedModel("meta-llama/Llama-3.1-8B-Instruct", 16 * GIB),),
    )


def _publish(api: k8s.ApiClient, name: str, now: float) -> None:
    custom = k8s.CustomObjectsApi(api)
    custom.create_cluster_custom_object(
        GROUP,
        VERSION,
        PLURAL,
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "NodeGPUState", "metadata": {"name": name}},
    )
    custom.patch_cluster_custom_object_status(
        GROUP, VERSION, PLURAL, name, {"status": dict(encode_status(_node_state(name, now)))}
    )
    k8s.CoordinationV1Api(api).create_namespaced_lease(
        SYSTEM,
        {
            "metadata": {"name": f"{LEASE_PREFIX}{name}"},
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": 3600,
                "renewTime": format_time(now),
            },
        },
    )


def _pod(name: str, scheduler: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "annotations": {
                "vramfit.io/vram-per-gpu": "20Gi",
                "vramfit.io/model": "meta-llama/Llama-3.1-8B-Instruct",
            },
        },
        "spec": {
            "schedulerName": scheduler,
            "containers": [
                {
                    "name": "server",
                    "image": "kserve/huggingfaceserver:v0.15.0-gpu",
                    "resources": {
                        "limits": {"nvidia.com/gpu": "1"},
                        "requests": {"nvidia.com/gpu": "1"},
                    },
                }
            ],
        },
    }


def _bound(core: k8s.CoreV1Api, namespace: str) -> int:
    resp = core.list_namespaced_pod(namespace, _preload_content=False)
    return sum(1 for p in orjson.loads(resp.data)["items"] if p["spec"].get("nodeName"))


def _round(
    plane: ControlPlane,
    core: k8s.CoreV1Api,
    pods: int,
    scheduler_name: str,
    config: dict[str, Any],
    *,
    timeout: float,
) -> dict[str, Any]:
    namespace = f"bench-{scheduler_name}"
    core.create_namespace({"metadata": {"name": namespace}})
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda i: core.create_namespaced_pod(namespace, _pod(f"p-{i:04d}", scheduler_name)),
                range(pods),
            )
        )
    scheduler = plane.start_scheduler(config, name=f"bench-{scheduler_name}", verbosity=1)
    try:
        first = last = None
        deadline = time.monotonic() + timeout
        done = 0
        while time.monotonic() < deadline:
            done = _bound(core, namespace)
            now = time.monotonic()
            if done and first is None:
                first = now
            if done >= pods:
                last = now
                break
            time.sleep(0.1)
    finally:
        scheduler.stop()
    if first is None or last is None:
        raise RuntimeError(f"{scheduler_name}: only {done} of {pods} pods bound in {timeout:.0f}s")
    seconds = max(last - first, 0.1)
    return {"pods": pods, "seconds": round(seconds, 2), "pods_per_s": round(pods / seconds, 1)}


def run_throughput(*, nodes: int = 1_000, pods: int = 500, timeout: float = 300) -> dict[str, Any]:
    """Both rounds on one control plane; returns pods per second of each and their ratio."""
    workdir = Path(tempfile.mkdtemp(prefix="vramfit-bench-"))
    plane = ControlPlane(locate(), workdir).start()
    try:
        plane.kubectl("apply", "--server-side", "-f", str(DEPLOY / "namespace.yaml"))
        plane.kubectl("apply", "--server-side", "-f", str(DEPLOY / "crd-nodegpustate.yaml"))
        plane.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "crd/nodegpustates.vramfit.io"
        )
        names = [f"bench-h100-{i:04d}" for i in range(nodes)]
        with plane.api_client() as api:
            core = k8s.CoreV1Api(api)
            create_nodes(core, [GpuNode(n, product=H100) for n in names])
            now = time.time()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda n: _publish(api, n, now), names))
            (port,) = free_ports(1)
            url = f"http://127.0.0.1:{port}"
            plane.start_process(
                "vramfit-extender",
                [
                    str(Path(sys.executable).parent / "vramfit-extender"),
                    f"--kubeconfig={plane.kubeconfig}",
                    f"--listen=127.0.0.1:{port}",
                    # The reports are published once, before the rounds.
                    "--max-report-age=3600",
                    "--log-level=warning",
                ],
                functools.partial(http_ok, f"{url}/readyz", lambda body: body == b"ok\n"),
                timeout=120,
            )
            configmap = yaml.safe_load((DEPLOY / "scheduler-config.yaml").read_text())
            shipped: dict[str, Any] = yaml.safe_load(configmap["data"]["config.yaml"])
            shipped.pop("leaderElection", None)
            shipped["extenders"][0]["urlPrefix"] = f"{url}/scheduler"
            default = {
                "percentageOfNodesToScore": 100,
                "profiles": [{"schedulerName": "stock"}],
            }
            without = _round(plane, core, pods, "stock", default, timeout=timeout)
            with_ext = _round(plane, core, pods, "vramfit", shipped, timeout=timeout)
        return {
            "nodes": nodes,
            "pods": pods,
            "default_pods_per_s": without["pods_per_s"],
            "extender_pods_per_s": with_ext["pods_per_s"],
            "default_seconds": without["seconds"],
            "extender_seconds": with_ext["seconds"],
            "ratio": round(with_ext["pods_per_s"] / without["pods_per_s"], 3),
        }
    finally:
        plane.stop()
