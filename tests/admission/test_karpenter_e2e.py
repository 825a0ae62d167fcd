"""End to end with a real autoscaler: Karpenter (kwok provider) buys nodes for GPU pods only when
the admission webhook has told it what they need.

The cluster: one 8x A100 40 GB node (with its simulated agent), kube-scheduler with vramfit's
extender (the shipped profile), and Karpenter allowed to buy 8x 40 GB and 8x 80 GB A100 nodes
(the 40 GB ones cheaper), with a simulated agent started for every node it creates. A burst of
KServe pods needing 70 GiB on each of 2 GPUs:

- without the webhook, Karpenter counts the 40 GB node's eight free GPUs as room for them and
  buys nothing, while the extender refuses them there: they stay Pending;
- with the webhook, their node affinity (``nvidia.com/gpu.memory`` > 71679 MiB) rules the 40 GB
  node and the 40 GB type out: Karpenter buys an 80 GB node and the pods bind there;
- when the pods are gone (scale to zero), Karpenter removes the node it bought.
"""

from __future__ import annotations

import functools
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from controlplane.cluster import DEPLOY_DIR
from controlplane.harness import ControlPlane
from controlplane.karpenter import (
    INSTANCE_TYPE_LABEL,
    GpuInstanceType,
    KarpenterRun,
    NodeKeeper,
    agent_spec,
    node_pool,
)
from controlplane.karpenterbin import locate
from controlplane.nodes import GpuNode, create_nodes, delete_nodes
from controlplane.processes import free_ports, http_ok
from controlplane.pytest_plugin import wait_for
from placement.model import GIB
from placement.nodegpustate import LEASE_PREFIX
from tests.admission.harness import admission_webhook
from tests.placement.kserve_pods import LLAMA_70B, isvc_pod

pytestmark = pytest.mark.integration

A100_40 = GpuInstanceType("gpu-a100-40g-8x", "NVIDIA-A100-SXM4-40GB", 8, 40960, price=24.0)
A100_80 = GpuInstanceType("gpu-a100-80g-8x", "NVIDIA-A100-SXM4-80GB", 8, 81920, price=32.0)
SYSTEM = "vramfit-system"
PODS = 2
STUCK_S = 20.0


def script(name: str) -> str:
    path = Path(sys.executable).parent / name
    assert path.exists(), f"{name} is not installed in this environment"
    return str(path)


def agent_argv(plane: ControlPlane, node: str, spec: Path, port: int) -> list[str]:
    return [
        script("vramfit-agent"),
        "--backend=simulated",
        f"--node-name={node}",
        f"--spec={spec}",
        f"--kubeconfig={plane.kubeconfig}",
        f"--listen=127.0.0.1:{port}",
    ]


@dataclass
class Scene:
    plane: ControlPlane
    core: k8s.CoreV1Api
    custom: k8s.CustomObjectsApi
    keeper: NodeKeeper
    plain: str  # a namespace the webhook does not see
    hooked: str  # a namespace the webhook mutates
    small_node: str

    def burst(self, namespace: str) -> list[str]:
        names = []
        for i in range(PODS):
            pod = isvc_pod(LLAMA_70B, gpus=2, annotations={"vramfit.io/vram-per-gpu": "70Gi"})
            pod["metadata"].pop("generateName")
            pod["metadata"]["name"] = f"big-{i}"
            pod["metadata"]["namespace"] = namespace
            pod["spec"]["schedulerName"] = "vramfit"
            pod["spec"]["terminationGracePeriodSeconds"] = 0
            pod["spec"]["initContainers"][0]["image"] = "kserve/storage-initializer:v0.15.0"
            self.core.create_namespaced_pod(namespace, pod)
            names.append(pod["metadata"]["name"])
        return names

    def pods(self, namespace: str) -> list[Any]:
        return list(self.core.list_namespaced_pod(namespace).items)

    def node_claims(self) -> list[dict[str, Any]]:
        found = self.custom.list_cluster_custom_object("karpenter.sh", "v1", "nodeclaims")
        return list(found["items"])

    def kwok_nodes(self) -> list[Any]:
        return list(self.core.list_node(label_selector="kwok.x-k8s.io/node=fake").items)


def _namespace(core: k8s.CoreV1Api, prefix: str) -> str:
    name = f"{prefix}-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": name}})
    return name


@pytest.fixture(scope="module")
def scene(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    plane = control_plane
    work = tmp_path_factory.mktemp("karpenter")
    for name in ("namespace.yaml", "crd-nodegpustate.yaml"):
        plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(DEPLOY_DIR / name))
    plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/nodegpustates.vramfit.io"
    )
    karpenter = KarpenterRun(plane, locate(), [A100_40, A100_80], work / "karpenter")
    karpenter.install()
    with plane.api_client() as api:
        core = k8s.CoreV1Api(api)
        custom = k8s.CustomObjectsApi(api)
        plain, hooked = _namespace(core, "plain"), _namespace(core, "hooked")
        small = f"fixed-a100-40g-{secrets.token_hex(2)}"
        create_nodes(core, [GpuNode(small, product=A100_40.product, memory_per_gpu_bytes=40 * GIB)])
        spec = work / f"{small}.yaml"
        spec.write_text(yaml.safe_dump(agent_spec(small, A100_40)))
        leases = k8s.CoordinationV1Api(api)
        (agent_port, extender_port) = free_ports(2)
        plane.start_process(
            f"agent-{small}",
            agent_argv(plane, small, spec, agent_port),
            functools.partial(_lease_exists, leases, small),
            timeout=90,
        )
        plane.start_process(
            f"extender-{extender_port}",
            [
                script("vramfit-extender"),
                f"--kubeconfig={plane.kubeconfig}",
                f"--listen=127.0.0.1:{extender_port}",
            ],
            functools.partial(
                http_ok, f"http://127.0.0.1:{extender_port}/readyz", lambda b: b == b"ok\n"
            ),
        )
        scheduler = plane.start_scheduler(
            _shipped_scheduler_config(f"http://127.0.0.1:{extender_port}"),
            name="scheduler-vramfit-karpenter",
        )
        keeper = NodeKeeper(
            plane, [A100_40, A100_80], work, functools.partial(agent_argv, plane)
        ).start()
        pool = node_pool("gpu", [A100_40.name, A100_80.name], gpu_limit=32)
        plane.kubectl("apply", "--server-side", "-f", "-", input_text=yaml.safe_dump(pool))
        karpenter.start()
        try:
            with admission_webhook(plane, [hooked], work, secret_namespace=SYSTEM):
                yield Scene(plane, core, custom, keeper, plain, hooked, small)
        finally:
            plane.kubectl("delete", "nodepool", "gpu", "--wait=false", check=False)
            for namespace in (plain, hooked):
                core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
                core.delete_namespace(namespace)
            with_deadline = time.monotonic() + 60
            while keeper.agents and time.monotonic() < with_deadline:
                time.sleep(1)
            karpenter.stop()
            keeper.stop()
            scheduler.stop()
            delete_nodes(core, [small] + [n.metadata.name for n in scene_nodes(core)])


def scene_nodes(core: k8s.CoreV1Api) -> list[Any]:
    return list(core.list_node(label_selector="kwok.x-k8s.io/node=fake").items)


def _lease_exists(api: k8s.CoordinationV1Api, node: str) -> bool:
    try:
        api.read_namespaced_lease(f"{LEASE_PREFIX}{node}", SYSTEM)
    except k8s.ApiException:
        return False
    return True


def _shipped_scheduler_config(extender_url: str) -> dict[str, Any]:
    configmap = yaml.safe_load((DEPLOY_DIR / "scheduler-config.yaml").read_text())
    config: dict[str, Any] = yaml.safe_load(configmap["data"]["config.yaml"])
    config["extenders"][0]["urlPrefix"] = f"{extender_url}/scheduler"
    config.pop("leaderElection", None)
    return config


def test_without_the_webhook_karpenter_sees_room_and_the_pods_stay_pending(scene: Scene) -> None:
    scene.burst(scene.plain)
    wait_for(
        "the extender to refuse the 40 GB node",
        lambda: all(
            any(c.reason == "Unschedulable" for c in (p.status.conditions or []))
            for p in scene.pods(scene.plain)
        ),
        timeout=60,
    )
    deadline = time.monotonic() + STUCK_S
    while time.monotonic() < deadline:
        assert scene.node_claims() == [], "Karpenter bought a node without the webhook"
        assert not any(p.spec.node_name for p in scene.pods(scene.plain))
        time.sleep(1)
    scene.core.delete_collection_namespaced_pod(scene.plain, grace_period_seconds=0)


def test_with_the_webhook_karpenter_buys_80gb_nodes_and_the_pods_bind_there(scene: Scene) -> None:
    started = time.monotonic()
    scene.burst(scene.hooked)
    for pod in scene.pods(scene.hooked):
        terms = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
        expressions = terms.node_selector_terms[0].match_expressions
        assert [(e.key, e.operator, e.values) for e in expressions] == [
            ("nvidia.com/gpu.memory", "Gt", ["71679"])
        ]

    wait_for("Karpenter to buy a node", scene.node_claims, timeout=STUCK_S)
    # ...well within the time the first test waited without a purchase: that wait meant it.
    assert time.monotonic() - started < STUCK_S

    def all_bound() -> list[Any] | None:
        pods = scene.pods(scene.hooked)
        return pods if pods and all(p.spec.node_name for p in pods) else None

    bound = wait_for("the pods to bind to a node Karpenter bought", all_bound, timeout=180)
    nodes = {p.spec.node_name for p in bound}
    assert scene.small_node not in nodes
    for name in nodes:
        node = scene.core.read_node(name)
        assert node.metadata.labels[INSTANCE_TYPE_LABEL] == A100_80.name
        assert node.metadata.labels["nvidia.com/gpu.memory"] == "81920"
    assert {n.metadata.labels[INSTANCE_TYPE_LABEL] for n in scene.kwok_nodes()} == {A100_80.name}
    assert set(scene.keeper.seen) >= nodes  # each bought node got its simulated agent


def test_scale_to_zero_karpenter_removes_the_nodes(scene: Scene) -> None:
    assert scene.node_claims(), "the previous test left no node to remove"
    scene.core.delete_collection_namespaced_pod(scene.hooked, grace_period_seconds=0)
    wait_for(
        "Karpenter to remove the empty nodes",
        lambda: not scene.node_claims() and not scene.kwok_nodes(),
        timeout=180,
        interval=1.0,
    )
    wait_for("their agents to stop", lambda: not scene.keeper.agents, timeout=30)
