"""End to end: the real kube-scheduler calls the real extender (gunicorn, over HTTP), which
watches the real API server; simulated node agents report GPUs and run the pods' loads.

The pool is the one the product is built for: 8x H100 80 GB and 8x A100 40 GB nodes, each
with a simulated agent (NodeGPUState + Lease + a kubelet stand-in that gives pods GPUs and
loads their weights). The scheduler runs with the shipped configuration
(``deploy/scheduler-config.yaml``), pointed at the extender's port.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from kubernetes import client as k8s

from controlplane.harness import ControlPlane, SchedulerProcess
from controlplane.nodes import GpuNode, create_nodes, delete_nodes
from controlplane.processes import ManagedProcess, free_ports, http_ok
from controlplane.pytest_plugin import wait_for
from placement.annotation import decode_reservation
from placement.model import GIB
from placement.nodegpustate import GROUP, LEASE_PREFIX, PLURAL, VERSION, encode_status, format_time
from tests.extender.conftest import gpu_node

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SYSTEM = "vramfit-system"
H100 = "NVIDIA-H100-80GB-HBM3"
A100 = "NVIDIA-A100-SXM4-40GB"
LLAMA_70B = "meta-llama/Llama-3.1-70B-Instruct"
RESERVATION = "vramfit.io/reservation"


def script(name: str) -> str:
    path = Path(sys.executable).parent / name
    assert path.exists(), f"{name} is not installed in this environment"
    return str(path)


# ----- the cluster's vramfit pieces --------------------------------------------------------


def apply_file(plane: ControlPlane, path: Path) -> None:
    plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))


@pytest.fixture(scope="module")
def vramfit_api(control_plane: ControlPlane) -> ControlPlane:
    """The vramfit namespace and the NodeGPUState CRD, as shipped."""
    apply_file(control_plane, DEPLOY / "namespace.yaml")
    apply_file(control_plane, DEPLOY / "crd-nodegpustate.yaml")
    control_plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/nodegpustates.vramfit.io"
    )
    return control_plane


@dataclass
class Extender:
    """The extender as a real process: started with the CLI, killed with SIGKILL."""

    plane: ControlPlane
    port: int
    args: tuple[str, ...]
    process: ManagedProcess | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        self.process = self.plane.start_process(
            f"vramfit-extender-{self.port}-{self.starts}",
            [
                script("vramfit-extender"),
                f"--kubeconfig={self.plane.kubeconfig}",
                f"--listen=127.0.0.1:{self.port}",
                "--log-level=info",
                *self.args,
            ],
            functools.partial(http_ok, f"{self.url}/readyz", lambda body: body == b"ok\n"),
            timeout=60,
        )

    def kill(self) -> None:
        """SIGKILL the whole process group (gunicorn master and worker) at once."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        process = self.process
        wait_for("the extender to die", lambda: not process.running)

    def stop(self) -> None:
        if self.process is not None and self.process.running:
            self.process.stop()

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as resp:
            text: str = resp.read().decode()
            return text


def shipped_scheduler_config(extender_url: str) -> dict[str, Any]:
    """deploy/scheduler-config.yaml's KubeSchedulerConfiguration, pointed at ``extender_url``."""
    configmap = yaml.safe_load((DEPLOY / "scheduler-config.yaml").read_text())
    config: dict[str, Any] = yaml.safe_load(configmap["data"]["config.yaml"])
    config["extenders"][0]["urlPrefix"] = f"{extender_url}/scheduler"
    config.pop("leaderElection", None)
    return config


@dataclass
class Pool:
    """Fake nodes, each with a running simulated agent."""

    h100: list[str]
    a100: list[str]
    agents: dict[str, ManagedProcess]
    cached_on: str

    @property
    def nodes(self) -> list[str]:
        return self.h100 + self.a100


def _lease_exists(api: k8s.CoordinationV1Api, node: str) -> bool:
    try:
        api.read_namespaced_lease(f"{LEASE_PREFIX}{node}", SYSTEM)
    except k8s.ApiException:
        return False
    return True


@pytest.fixture(scope="module")
def pool(vramfit_api: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    plane = vramfit_api
    suffix = os.urandom(2).hex()
    h100 = [f"e2e-h100-{suffix}-{i}" for i in range(8)]
    a100 = [f"e2e-a100-{suffix}-{i}" for i in range(8)]
    spec_nodes = [
        {
            "name": n,
            "product": H100,
            "gpus": 8,
            "memoryPerGpu": "80Gi",
            "nvlink": "all",
            "cachedModels": [{"id": LLAMA_70B, "size": "141Gi"}] if i == 5 else [],
            # Loads take seconds, not minutes: long enough to overlap in a burst.
            "localDiskBandwidth": "100Gi",
            "remoteBandwidth": "20Gi",
        }
        for i, n in enumerate(h100)
    ] + [
        {
            "name": n,
            "product": A100,
            "gpus": 8,
            "memoryPerGpu": "40Gi",
            "nvlink": "all",
            "localDiskBandwidth": "100Gi",
            "remoteBandwidth": "20Gi",
        }
        for n in a100
    ]
    spec = tmp_path_factory.mktemp("pool") / "nodes.yaml"
    spec.write_text(yaml.safe_dump({"nodes": spec_nodes}))
    with plane.api_client() as api:
        core = k8s.CoreV1Api(api)
        create_nodes(
            core,
            [GpuNode(n, product=H100) for n in h100]
            + [GpuNode(n, product=A100, memory_per_gpu_bytes=40 * GIB) for n in a100],
        )
        leases = k8s.CoordinationV1Api(api)
        agents: dict[str, ManagedProcess] = {}
        try:
            for node, port in zip(h100 + a100, free_ports(16), strict=True):
                agents[node] = plane.start_process(
                    f"agent-{node}",
                    [
                        script("vramfit-agent"),
                        "--backend=simulated",
                        f"--node-name={node}",
                        f"--spec={spec}",
                        f"--kubeconfig={plane.kubeconfig}",
                        f"--listen=127.0.0.1:{port}",
                    ],
                    functools.partial(_lease_exists, leases, node),
                    timeout=90,
                )
            yield Pool(h100, a100, agents, cached_on=h100[5])
        finally:
            for process in agents.values():
                process.stop()
            delete_nodes(core, h100 + a100)


@pytest.fixture(scope="module")
def extender(vramfit_api: ControlPlane) -> Iterator[Extender]:
    (port,) = free_ports(1)
    ext = Extender(vramfit_api, port, ("--policy=binpack", "--mode=decide"))
    ext.start()
    yield ext
    ext.stop()


@pytest.fixture(scope="module")
def schedulers(vramfit_api: ControlPlane, extender: Extender) -> Iterator[SchedulerProcess]:
    """The vramfit profile (with the extender) and the stock default scheduler beside it."""
    vramfit = vramfit_api.start_scheduler(
        shipped_scheduler_config(extender.url), name="scheduler-vramfit-e2e"
    )
    default = vramfit_api.start_scheduler({}, name="scheduler-default-e2e")
    yield vramfit
    vramfit.stop()
    default.stop()


@pytest.fixture
def cluster(
    pool: Pool, extender: Extender, schedulers: SchedulerProcess, control_plane: ControlPlane
) -> Iterator[Cluster]:
    with control_plane.api_client() as api:
        c = Cluster(pool, extender, k8s.CoreV1Api(api), k8s.CustomObjectsApi(api))
        c.wait_idle()
        yield c


# ----- talking to the cluster ---------------------------------------------------------------


def gpu_pod(
    name: str,
    *,
    gpus: int = 2,
    vram: str = "70Gi",
    scheduler: str = "vramfit",
    model: str = "",
    node: str = "",
) -> dict[str, Any]:
    annotations = {"vramfit.io/vram-per-gpu": vram, "vramfit.io/model-size": "141Gi"}
    if model:
        annotations["vramfit.io/model"] = model
    pod: dict[str, Any] = {
        "metadata": {"name": name, "annotations": annotations, "labels": {"app": "e2e"}},
        "spec": {
            "schedulerName": scheduler,
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "server",
                    "image": "kserve/huggingfaceserver:v0.15.0-gpu",
                    "resources": {
                        "limits": {"nvidia.com/gpu": str(gpus)},
                        "requests": {"nvidia.com/gpu": str(gpus)},
                    },
                }
            ],
        },
    }
    if node:
        pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}
    return pod


@dataclass
class Cluster:
    pool: Pool
    extender: Extender
    core: k8s.CoreV1Api
    custom: k8s.CustomObjectsApi

    def create(self, namespace: str, pods: list[dict[str, Any]]) -> None:
        for pod in pods:
            self.core.create_namespaced_pod(namespace, pod)

    def pods(self, namespace: str) -> list[dict[str, Any]]:
        resp = self.core.list_namespaced_pod(namespace, _preload_content=False)
        items: list[dict[str, Any]] = orjson.loads(resp.data)["items"]
        return items

    def bound(self, namespace: str) -> list[dict[str, Any]]:
        return [p for p in self.pods(namespace) if p["spec"].get("nodeName")]

    def reports(self) -> dict[str, dict[str, Any]]:
        resp = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        return {o["metadata"]["name"]: o.get("status") or {} for o in resp["items"]}

    def holders(self) -> dict[str, list[str]]:
        """GPU UUID -> pods the agents report on it (over-commit shows as two pods)."""
        found: dict[str, list[str]] = {}
        for status in self.reports().values():
            for gpu in status.get("gpus", []):
                pods = {p["podUID"] for p in gpu.get("pods", [])}
                if gpu.get("holderPodUID"):
                    pods.add(gpu["holderPodUID"])
                found[gpu["uuid"]] = sorted(pods)
        return found

    def wait_idle(self) -> None:
        """Until no agent reports a GPU held (pods of earlier tests are gone)."""
        wait_for(
            "the pool to be idle",
            lambda: all(not p for p in self.holders().values()),
            timeout=90,
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


def assert_no_double_booking(pods: list[dict[str, Any]], cluster: Cluster) -> None:
    taken: dict[str, str] = {}
    for name, (_, gpus) in reservations(pods).items():
        for g in gpus:
            assert g not in taken, f"GPU {g} reserved for both {taken[g]} and {name}"
            taken[g] = name
    for gpu, holders in cluster.holders().items():
        assert len(holders) <= 1, f"the agent reports GPU {gpu} used by {holders}"
    for p in pods:
        reason = (p.get("status") or {}).get("reason", "")
        assert reason != "UnexpectedAdmissionError", f"kubelet refused {p['metadata']['name']}"


# ----- scenarios -----------------------------------------------------------------------------


def test_70b_pods_land_only_on_80gb_gpus_unlike_the_default_scheduler(
    cluster: Cluster, namespace: str
) -> None:
    pool = cluster.pool
    cluster.create(namespace, [gpu_pod(f"vf-{i}") for i in range(12)])
    wait_for("12 vramfit pods bound", lambda: len(cluster.bound(namespace)) == 12)
    placed = {p["spec"]["nodeName"] for p in cluster.bound(namespace)}
    assert placed <= set(pool.h100), f"70 GiB pods on small GPUs: {placed - set(pool.h100)}"
    assert_no_double_booking(cluster.bound(namespace), cluster)

    cluster.core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
    wait_for("the pods to go", lambda: not cluster.pods(namespace))
    cluster.wait_idle()
    # The default scheduler counts GPUs only and packs these pods onto a few nodes it picks at
    # random, so 12 of them may all land on H100s by chance. One pod more than the H100 nodes
    # hold (33 pods of 2 GPUs, 64 H100 GPUs) leaves it no such luck: it must use an A100 node.
    count = len(pool.h100) * 8 // 2 + 1
    cluster.create(
        namespace, [gpu_pod(f"df-{i}", scheduler="default-scheduler") for i in range(count)]
    )
    wait_for(f"{count} default pods bound", lambda: len(cluster.bound(namespace)) == count)
    on_small = [p for p in cluster.bound(namespace) if p["spec"]["nodeName"] in pool.a100]
    assert on_small, "the default scheduler was expected to put some 70 GiB pods on A100 40 GB"


def test_burst_spreads_concurrent_loads(cluster: Cluster, namespace: str) -> None:
    # 16 loads at once with the binpack policy: binpack alone would fill four nodes, but
    # loads in flight share a node's disks and network, so they go to all eight H100s.
    cluster.create(namespace, [gpu_pod(f"spread-{i:02d}") for i in range(16)])
    wait_for("16 pods bound", lambda: len(cluster.bound(namespace)) == 16)
    per_node: dict[str, int] = {}
    for node, _ in reservations(cluster.bound(namespace)).values():
        per_node[node] = per_node.get(node, 0) + 1
    assert per_node == dict.fromkeys(cluster.pool.h100, 2)
    assert_no_double_booking(cluster.bound(namespace), cluster)


def test_burst_beyond_capacity_never_overcommits(cluster: Cluster, namespace: str) -> None:
    # 40 pods of 2 GPUs each, 70 GiB per GPU: the H100 nodes have room for 32.
    cluster.create(namespace, [gpu_pod(f"burst-{i:02d}") for i in range(40)])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(cluster.bound(namespace)) < 32:
        assert_no_double_booking(cluster.bound(namespace), cluster)
        time.sleep(0.5)
    time.sleep(3)
    bound = cluster.bound(namespace)
    assert len(bound) == 32, "more (or fewer) pods were bound than the GPUs hold"
    assert_no_double_booking(bound, cluster)
    assert {node for node, _ in reservations(bound).values()} == set(cluster.pool.h100)
    pending = [p for p in cluster.pods(namespace) if not p["spec"].get("nodeName")]
    assert len(pending) == 8
    message = wait_for(
        "a FailedScheduling event",
        lambda: cluster.events(namespace, pending[0]["metadata"]["name"]),
    )
    assert "at least 70 GiB" in message  # the A100s can never take it
    # The H100s are full for now: kube-scheduler's own count of nvidia.com/gpu says so first
    # (the shipped profile keeps it), or the extender does.
    assert "Insufficient nvidia.com/gpu" in message or "free GPU(s) with 70 GiB" in message


def test_cached_weights_attract_the_pod(cluster: Cluster, namespace: str) -> None:
    cluster.create(namespace, [gpu_pod("warm", model=LLAMA_70B)])
    (pod,) = wait_for("the pod bound", lambda: cluster.bound(namespace))
    assert pod["spec"]["nodeName"] == cluster.pool.cached_on


def test_stopped_agent_takes_its_node_out_and_back(cluster: Cluster, namespace: str) -> None:
    node = cluster.pool.h100[0]
    agent = cluster.pool.agents[node]
    os.kill(agent.pid, signal.SIGSTOP)
    try:
        time.sleep(45)  # past the Lease's 40 s
        cluster.create(namespace, [gpu_pod("pinned", node=node)])
        message = wait_for(
            "the node to be refused",
            lambda: m if "heartbeat" in (m := cluster.events(namespace, "pinned")) else None,
            timeout=30,
        )
        assert "node agent heartbeat is" in message
        assert not cluster.bound(namespace)
    finally:
        os.kill(agent.pid, signal.SIGCONT)
    # Back in: the agent renews its Lease, the extender wakes the pod it refused (kube-scheduler
    # alone would retry it only on an unrelated cluster event or after five minutes), and the
    # pod is bound with no other event in the cluster.
    (pod,) = wait_for("the pod bound once the agent is back", lambda: cluster.bound(namespace), 30)
    assert pod["spec"]["nodeName"] == node
    assert "vramfit.io/requeued-at" in pod["metadata"]["annotations"]


def test_unhealthy_gpu_is_never_chosen(cluster: Cluster, namespace: str) -> None:
    # A node whose report comes from the test: its GPUs 0-6 are unhealthy.
    name = f"e2e-sick-{os.urandom(2).hex()}"
    create_nodes(cluster.core, [GpuNode(name, product=H100)])
    try:
        now = time.time()
        node = gpu_node(name, unhealthy=tuple(range(7)), observed_at=now)
        cluster.custom.create_cluster_custom_object(
            GROUP,
            VERSION,
            PLURAL,
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "NodeGPUState",
                "metadata": {"name": name},
            },
        )
        cluster.custom.patch_cluster_custom_object_status(
            GROUP, VERSION, PLURAL, name, {"status": dict(encode_status(node))}
        )
        k8s.CoordinationV1Api(cluster.core.api_client).create_namespaced_lease(
            SYSTEM,
            {
                "metadata": {"name": f"{LEASE_PREFIX}{name}"},
                "spec": {
                    "holderIdentity": name,
                    "leaseDurationSeconds": 600,
                    "renewTime": format_time(now),
                },
            },
        )
        cluster.create(namespace, [gpu_pod(f"one-{i}", gpus=1, node=name) for i in range(3)])
        (first,) = wait_for("one pod bound", lambda: cluster.bound(namespace), timeout=30)
        time.sleep(3)
        assert len(cluster.bound(namespace)) == 1
        assert reservations([first])[first["metadata"]["name"]] == (name, (node.gpus[7].uuid,))
        waiting = next(p for p in cluster.pods(namespace) if not p["spec"].get("nodeName"))
        message = wait_for(
            "the refusal", lambda: cluster.events(namespace, waiting["metadata"]["name"])
        )
        assert "7 unhealthy" in message
    finally:
        cluster.core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
        cluster.custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)
        k8s.CoordinationV1Api(cluster.core.api_client).delete_namespaced_lease(
            f"{LEASE_PREFIX}{name}", SYSTEM
        )
        delete_nodes(cluster.core, [name])


def test_sigkill_mid_burst_and_restart_never_double_books(cluster: Cluster, namespace: str) -> None:
    creating = threading.Thread(
        target=cluster.create, args=(namespace, [gpu_pod(f"kill-{i:02d}") for i in range(40)])
    )
    creating.start()
    try:
        wait_for("the burst to start", lambda: cluster.bound(namespace), interval=0.02)
        cluster.extender.kill()
        at_kill = len(cluster.bound(namespace))
    finally:
        creating.join()
    time.sleep(2)  # the scheduler keeps trying and failing while the extender is gone
    cluster.extender.start()
    wait_for("32 pods bound", lambda: len(cluster.bound(namespace)) >= 32, timeout=180)
    time.sleep(3)
    bound = cluster.bound(namespace)
    assert len(bound) == 32, f"{len(bound)} pods bound on 32 pods' worth of GPUs"
    assert at_kill < 32, "the kill came after the burst"
    assert_no_double_booking(bound, cluster)
    assert {p["spec"]["nodeName"] for p in bound} <= set(cluster.pool.h100)
