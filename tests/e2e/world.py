"""The end-to-end world: vramfit as shipped in deploy/, on fake GPU nodes with simulated agents.

Every vramfit component runs as its own process under its own identity, never the admin's:

- the extender and the vramfit kube-scheduler as the ``vramfit-scheduler`` ServiceAccount;
- each node agent as ``vramfit-agent``, with a token bound to the agent DaemonSet's pod on its
  node (the real DaemonSet controller makes it, the stock scheduler places it), so the token
  carries the node's name that the agent's admission policy checks; when that pod is
  replaced (its node was deleted and came back), the token file is renewed as the kubelet
  renews a projected token;
- each agent's kubelet stand-in as the node's kubelet (``system:node:<name>``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson
import yaml
from kubernetes import client as k8s

from controlplane.harness import ControlPlane
from controlplane.identities import ServiceAccountIdentity
from controlplane.manifests import Document, load_documents, server_side_apply, yaml_files
from controlplane.nodes import GpuNode, create_nodes, delete_nodes
from controlplane.processes import ManagedProcess, free_ports, http_ok
from controlplane.pytest_plugin import wait_for
from placement.model import GIB
from placement.nodegpustate import GROUP, LEASE_PREFIX, PLURAL, VERSION

ROOT: Final = Path(__file__).resolve().parents[2]
DEPLOY: Final = ROOT / "deploy"
SYSTEM: Final = "vramfit-system"
AGENT_SA: Final = "vramfit-agent"
SCHEDULER_SA: Final = "vramfit-scheduler"
AGENT_POD_LABEL: Final = "app.kubernetes.io/name=vramfit-agent"
GPU_PRESENT: Final = {"nvidia.com/gpu.present": "true"}
H100: Final = "NVIDIA-H100-80GB-HBM3"
A100: Final = "NVIDIA-A100-SXM4-40GB"
LLAMA_70B: Final = "meta-llama/Llama-3.1-70B-Instruct"
# Left out of deploy/: Deployments, which need a real kubelet to run anything (here the
# scheduler and the extender run as processes instead), and the registrations of webhooks whose
# servers would run in them (the API server would call a Service nothing serves). Everything
# else (ServiceAccounts, RBAC, admission policies, the agent DaemonSet) is applied as shipped.
NOT_RUN_HERE: Final = frozenset(
    {"Deployment", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}
)


def script(name: str) -> str:
    path = Path(sys.executable).parent / name
    assert path.exists(), f"{name} is not installed in this environment"
    return str(path)


def shipped_documents() -> list[Document]:
    return [d for d in load_documents(yaml_files(DEPLOY)) if d.kind not in NOT_RUN_HERE]


def apply_deploy(plane: ControlPlane) -> None:
    """deploy/ as shipped (but :data:`NOT_RUN_HERE`), the CRD established."""
    server_side_apply(plane.kubectl, shipped_documents())
    plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/nodegpustates.vramfit.io"
    )


def shipped_scheduler_config(extender_url: str) -> dict[str, Any]:
    """deploy/scheduler-config.yaml's KubeSchedulerConfiguration, pointed at ``extender_url``."""
    configmap = yaml.safe_load((DEPLOY / "scheduler-config.yaml").read_text())
    config: dict[str, Any] = yaml.safe_load(configmap["data"]["config.yaml"])
    config["extenders"][0]["urlPrefix"] = f"{extender_url}/scheduler"
    return config


# ----- the extender --------------------------------------------------------------------------


@dataclass
class Extender:
    """The extender as a real process under its ServiceAccount; SIGKILL takes it down."""

    plane: ControlPlane
    port: int
    identity: ServiceAccountIdentity
    args: tuple[str, ...] = ("--policy=binpack", "--mode=decide", "--nominate-ahead")
    process: ManagedProcess | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        self.starts += 1
        self.process = self.plane.start_process(
            f"vramfit-extender-{self.port}-{self.starts}",
            [
                script("vramfit-extender"),
                f"--kubeconfig={self.identity.kubeconfig}",
                f"--listen=127.0.0.1:{self.port}",
                "--log-level=info",
                *self.args,
            ],
            functools.partial(http_ok, f"{self.url}/readyz", lambda body: body == b"ok\n"),
            timeout=timeout,
        )

    def kill(self) -> None:
        """SIGKILL the whole process group (gunicorn master and workers) at once."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        process = self.process
        wait_for("the extender to die", lambda: not process.running)

    def stop(self) -> None:
        if self.process is not None and self.process.running:
            self.process.stop()

    def readyz(self) -> tuple[int, str]:
        """(HTTP status, body) of ``/readyz``; status 0 when nothing answers."""
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError as exc:
            return 0, str(exc)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as resp:
            text: str = resp.read().decode()
            return text


def start_extender(plane: ControlPlane, label: str = "extender") -> Extender:
    (port,) = free_ports(1)
    identity = plane.service_account_identity(SYSTEM, SCHEDULER_SA, label=f"{label}-{port}")
    extender = Extender(plane, port, identity)
    extender.start()
    return extender


# ----- the nodes and their agents -------------------------------------------------------------


@dataclass
class Agent:
    """One node's agent process and the identities it runs with."""

    node: str
    identity: ServiceAccountIdentity
    kubelet_kubeconfig: Path
    process: ManagedProcess


def node_spec(name: str, product: str, *, cached: bool = False) -> dict[str, Any]:
    """One node of the simulated agents' spec: loads take seconds, long enough to overlap."""
    return {
        "name": name,
        "product": product,
        "gpus": 8,
        "memoryPerGpu": "80Gi" if product == H100 else "40Gi",
        "nvlink": "all",
        "cachedModels": [{"id": LLAMA_70B, "size": "141Gi"}] if cached else [],
        "localDiskBandwidth": "100Gi",
        "remoteBandwidth": "20Gi",
    }


def fake_node(name: str, product: str) -> GpuNode:
    memory = (80 if product == H100 else 40) * GIB
    return GpuNode(name, product=product, memory_per_gpu_bytes=memory, labels=GPU_PRESENT)


def agent_pod(core: k8s.CoreV1Api, node: str) -> k8s.V1Pod | None:
    """The agent DaemonSet's live pod on ``node``, once it is there."""
    pods = core.list_namespaced_pod(
        SYSTEM, label_selector=AGENT_POD_LABEL, field_selector=f"spec.nodeName={node}"
    ).items
    live = [p for p in pods if p.metadata.deletion_timestamp is None]
    return live[0] if live else None


def published(plane: ControlPlane, node: str) -> bool:
    """Whether ``node``'s agent has written its Lease and its report (what the extender reads)."""
    with plane.api_client() as api:
        try:
            k8s.CoordinationV1Api(api).read_namespaced_lease(f"{LEASE_PREFIX}{node}", SYSTEM)
            k8s.CustomObjectsApi(api).get_cluster_custom_object(GROUP, VERSION, PLURAL, node)
        except k8s.ApiException:
            return False
    return True


@dataclass
class Pool:
    """Fake GPU nodes, each with its agent DaemonSet pod and a running simulated agent."""

    plane: ControlPlane
    spec: Path
    h100: list[str]
    a100: list[str]
    cached_on: str
    agents: dict[str, Agent] = field(default_factory=dict)
    agent_args: tuple[str, ...] = ()  # more flags for every agent (``--dra-driver``)
    _stop: threading.Event = field(default_factory=threading.Event)
    _renewer: threading.Thread | None = None

    @property
    def nodes(self) -> list[str]:
        return self.h100 + self.a100

    def create_node(self, core: k8s.CoreV1Api, name: str) -> None:
        create_nodes(core, [fake_node(name, H100 if name in self.h100 else A100)])

    def start_agents(self, core: k8s.CoreV1Api) -> None:
        pods = {
            node: wait_for(
                f"the agent DaemonSet's pod on {node}", functools.partial(agent_pod, core, node)
            )
            for node in self.nodes
        }
        launched = []
        for node, port in zip(self.nodes, free_ports(len(self.nodes)), strict=True):
            identity = self.plane.service_account_identity(
                SYSTEM, AGENT_SA, label=node, pod=pods[node]
            )
            kubelet = self.plane.kubelet_kubeconfig(node)
            argv = [
                script("vramfit-agent"),
                "--backend=simulated",
                f"--node-name={node}",
                f"--spec={self.spec}",
                f"--kubeconfig={identity.kubeconfig}",
                f"--kubelet-kubeconfig={kubelet}",
                f"--listen=127.0.0.1:{port}",
                *self.agent_args,
            ]
            launched.append((node, identity, kubelet, argv))
        processes = self.plane.start_processes(
            [
                (f"agent-{node}", argv, functools.partial(published, self.plane, node))
                for node, _, _, argv in launched
            ],
            timeout=120,
        )
        for (node, identity, kubelet, _), process in zip(launched, processes, strict=True):
            self.agents[node] = Agent(node, identity, kubelet, process)
        self._renewer = threading.Thread(target=self._renew_tokens, name="token-renewer")
        self._renewer.start()

    def _renew_tokens(self) -> None:
        """Keep each agent's token bound to the DaemonSet's current pod on its node."""
        with self.plane.api_client() as api:
            core = k8s.CoreV1Api(api)
            while not self._stop.wait(1.0):
                for agent in self.agents.values():
                    with contextlib.suppress(Exception):  # the API server may be restarting
                        pod = agent_pod(core, agent.node)
                        if pod is not None and pod.metadata.uid != agent.identity.bound_pod_uid:
                            agent.identity.renew(pod)

    def stop(self, core: k8s.CoreV1Api) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=10)
        for agent in self.agents.values():
            agent.process.stop()
        delete_nodes(core, self.nodes)
        custom = k8s.CustomObjectsApi(core.api_client)
        leases = k8s.CoordinationV1Api(core.api_client)
        for node in self.nodes:
            with contextlib.suppress(k8s.ApiException):
                custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, node)
            with contextlib.suppress(k8s.ApiException):
                leases.delete_namespaced_lease(f"{LEASE_PREFIX}{node}", SYSTEM)


def make_pool(plane: ControlPlane, directory: Path, *, per_product: int = 4) -> Pool:
    """``per_product`` H100 and A100 nodes (8 GPUs each), their agents started."""
    suffix = os.urandom(2).hex()
    h100 = [f"e2e-h100-{suffix}-{i}" for i in range(per_product)]
    a100 = [f"e2e-a100-{suffix}-{i}" for i in range(per_product)]
    cached_on = h100[1]
    spec = directory / "nodes.yaml"
    nodes = [node_spec(n, H100, cached=n == cached_on) for n in h100]
    spec.write_text(yaml.safe_dump({"nodes": nodes + [node_spec(n, A100) for n in a100]}))
    pool = Pool(plane, spec, h100, a100, cached_on)
    with plane.api_client() as api:
        core = k8s.CoreV1Api(api)
        create_nodes(core, [fake_node(n, H100) for n in h100] + [fake_node(n, A100) for n in a100])
        try:
            pool.start_agents(core)
        except BaseException:
            pool.stop(core)
            raise
    return pool


def pod_list(core: k8s.CoreV1Api, namespace: str) -> list[dict[str, Any]]:
    """The namespace's pods as raw JSON (faster than the client's models)."""
    resp = core.list_namespaced_pod(namespace, _preload_content=False)
    items: list[dict[str, Any]] = orjson.loads(resp.data)["items"]
    return items


def reports(custom: k8s.CustomObjectsApi) -> dict[str, dict[str, Any]]:
    resp = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    return {o["metadata"]["name"]: o.get("status") or {} for o in resp["items"]}


@contextlib.contextmanager
def api_clients(plane: ControlPlane) -> Iterator[tuple[k8s.CoreV1Api, k8s.CustomObjectsApi]]:
    with plane.api_client() as api:
        yield k8s.CoreV1Api(api), k8s.CustomObjectsApi(api)
