"""Scheduling throughput with the real kube-scheduler, with and without the vramfit extender.

One local control plane, fake GPU nodes (8x H100 80 GB each) with their NodeGPUState reports
and agent Leases published directly (no agents: nothing here loads weights), and bursts of
single-GPU pods. In each burst the scheduler starts first, then the pods are created (eight
clients at once), as a scale-up creates them: the extender nominates pods from its pod watch
(``--nominate-ahead``, as shipped), so a burst created before the scheduler started would let
it do that work off the clock. Throughput is the pods over the time from the first pod bound to
the last; the burst's time runs from the first pod created to the last pod bound (a watch
notes when each pod is bound). Each run has a burst for the stock scheduler and one for the
shipped ``vramfit`` profile (``deploy/scheduler-config.yaml``) calling the extender over HTTP,
the same kube-scheduler talking to the API server the same way; their ratio is taken within
the run, and the bound pods are deleted before the next burst.
"""

from __future__ import annotations

import functools
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import yaml
from kubernetes import client as k8s

from bench.calibration import spread
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


class _Binds:
    """When each pod of a namespace was first seen bound, from a watch (no polling: listing
    thousands of pods ten times a second would load the machine being measured). A watch that
    breaks or ends is followed by a list (the pods it shows bound are stamped then) and a new
    watch from there, so one dropped stream does not end a run."""

    def __init__(self, core: k8s.CoreV1Api, namespace: str, pods: int) -> None:
        self.core, self.namespace, self.pods = core, namespace, pods
        self.at: dict[str, float] = {}
        self.done = threading.Event()
        self.stop = threading.Event()
        self.version = self._list()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _seen(self, obj: dict[str, Any]) -> None:
        name = obj.get("metadata", {}).get("name")
        if name and obj.get("spec", {}).get("nodeName"):
            self.at.setdefault(name, time.monotonic())

    def _list(self) -> str:
        listed = orjson.loads(
            self.core.list_namespaced_pod(self.namespace, _preload_content=False).data
        )
        for obj in listed.get("items") or []:
            self._seen(obj)
        version: str = listed["metadata"]["resourceVersion"]
        return version

    def _watch(self) -> None:
        resp = self.core.list_namespaced_pod(
            self.namespace,
            watch=True,
            resource_version=self.version,
            timeout_seconds=3600,
            _preload_content=False,
        )
        try:
            for line in resp:
                event = orjson.loads(line)
                obj = event["object"]
                if event.get("type") == "ERROR":  # e.g. 410 Gone: list again
                    raise RuntimeError(f"watch error: {obj}")
                self._seen(obj)
                self.version = obj.get("metadata", {}).get("resourceVersion", self.version)
                if len(self.at) >= self.pods or self.stop.is_set():
                    return
        finally:
            resp.close()

    def _run(self) -> None:
        try:
            while len(self.at) < self.pods and not self.stop.is_set():
                try:
                    self._watch()
                except Exception as exc:  # a dropped stream: list, then watch on
                    print(f"bench: pod watch of {self.namespace} broke ({exc}); listing again")
                    time.sleep(0.5)
                    self.version = self._list()
        finally:
            self.done.set()


def _round(
    plane: ControlPlane,
    core: k8s.CoreV1Api,
    pods: int,
    namespace: str,
    *,
    scheduler_name: str,
    config: dict[str, Any],
    timeout: float,
) -> dict[str, Any]:
    """One burst: the scheduler started, then ``pods`` pods created for it; the clock runs
    from the first creation (the burst) and from the first pod bound."""
    core.create_namespace({"metadata": {"name": namespace}})
    bodies = [_pod(f"p-{i:04d}", scheduler_name) for i in range(pods)]
    binds = _Binds(core, namespace, pods)
    scheduler = plane.start_scheduler(config, name=f"bench-{namespace}", verbosity=1)
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda body: core.create_namespaced_pod(namespace, body), bodies))
        created = time.monotonic() - started
        binds.done.wait(timeout)
    finally:
        binds.stop.set()
        scheduler.stop()
    if len(binds.at) < pods:
        raise RuntimeError(f"{namespace}: only {len(binds.at)} of {pods} pods bound in {timeout}s")
    first, last = min(binds.at.values()), max(binds.at.values())
    core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
    return {
        "pods_per_s": round(pods / max(last - first, 0.01), 1),
        "seconds": round(last - first, 2),
        "burst_s": round(last - started, 2),
        "first_bound_s": round(first - started, 2),
        "created_s": round(created, 2),
    }


def _configs(url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stock scheduler's configuration and the shipped ``vramfit`` profile's, pointed at
    ``url``; the stock one talks to the API server as the shipped one does, so the two differ
    only by the extender."""
    configmap = yaml.safe_load((DEPLOY / "scheduler-config.yaml").read_text())
    shipped: dict[str, Any] = yaml.safe_load(configmap["data"]["config.yaml"])
    shipped.pop("leaderElection", None)
    shipped["extenders"][0]["urlPrefix"] = f"{url}/scheduler"
    stock: dict[str, Any] = {
        "percentageOfNodesToScore": 100,
        "profiles": [{"schedulerName": "stock"}],
    }
    if "clientConnection" in shipped:
        stock["clientConnection"] = dict(shipped["clientConnection"])
    return stock, shipped


def shipped_extender_flags() -> list[str]:
    """The decision flags the shipped extender runs with (``deploy/scheduler-deployment.yaml``),
    its listeners left out."""
    for doc in yaml.safe_load_all((DEPLOY / "scheduler-deployment.yaml").read_text()):
        if not isinstance(doc, dict) or doc.get("kind") != "Deployment":
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            if container["name"] == "extender":
                return [
                    str(a)
                    for a in container["command"][1:]
                    if not str(a).startswith(("--listen", "--metrics-listen"))
                ]
    raise RuntimeError("deploy/scheduler-deployment.yaml has no extender container")


def _cluster(plane: ControlPlane, core: k8s.CoreV1Api, api: k8s.ApiClient, nodes: int) -> str:
    """The fake GPU nodes, their reports and Leases, and the extender; returns its URL."""
    plane.kubectl("apply", "--server-side", "-f", str(DEPLOY / "namespace.yaml"))
    plane.kubectl("apply", "--server-side", "-f", str(DEPLOY / "crd-nodegpustate.yaml"))
    plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/nodegpustates.vramfit.io"
    )
    names = [f"bench-h100-{i:05d}" for i in range(nodes)]
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
            "--max-report-age=7200",
            "--log-level=warning",
            *shipped_extender_flags(),
        ],
        functools.partial(http_ok, f"{url}/readyz", lambda body: body == b"ok\n"),
        timeout=300,
    )
    return url


def run_throughput(
    *, nodes: int = 1_000, pods: int = 500, runs: int = 3, timeout: float = 600
) -> dict[str, Any]:
    """``runs`` runs on one control plane, each a burst for the stock scheduler and one for
    the ``vramfit`` profile (which goes first alternates); each figure the median of the runs
    with the least and greatest, the ratio taken within each run."""
    workdir = Path(tempfile.mkdtemp(prefix="vramfit-bench-"))
    plane = ControlPlane(locate(), workdir).start()
    rounds: list[dict[str, dict[str, Any]]] = []
    try:
        with plane.api_client() as api:
            core = k8s.CoreV1Api(api)
            url = _cluster(plane, core, api, nodes)
            configs = dict(zip(("stock", "vramfit"), _configs(url), strict=True))
            for run in range(runs):
                order = ("stock", "vramfit") if run % 2 == 0 else ("vramfit", "stock")
                rounds.append(
                    {
                        name: _round(
                            plane,
                            core,
                            pods,
                            f"bench-{name}-{run}",
                            scheduler_name=name,
                            config=configs[name],
                            timeout=timeout,
                        )
                        for name in order
                    }
                )
    finally:
        plane.stop()

    def figure(name: str, key: str, digits: int = 2) -> dict[str, Any]:
        return spread([r[name][key] for r in rounds], digits)

    ratios = [r["vramfit"]["pods_per_s"] / r["stock"]["pods_per_s"] for r in rounds]
    return {
        "nodes": nodes,
        "pods": pods,
        "runs": runs,
        "default_pods_per_s": figure("stock", "pods_per_s", 1),
        "extender_pods_per_s": figure("vramfit", "pods_per_s", 1),
        "ratio": spread(ratios, 3),
        "default_burst_s": figure("stock", "burst_s"),
        "extender_burst_s": figure("vramfit", "burst_s"),
        "default_first_bound_s": figure("stock", "first_bound_s"),
        "extender_first_bound_s": figure("vramfit", "first_bound_s"),
    }
