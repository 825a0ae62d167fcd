"""The real kube-scheduler places GPU pods on fake GPU nodes, and only where they fit."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from kubernetes import client as k8s_client

from controlplane.cluster import extender_scheduler_config
from controlplane.nodes import COUNT_LABEL, MEMORY_LABEL, PRODUCT_LABEL
from controlplane.pytest_plugin import MakeGpuNodes, StartScheduler, wait_for
from placement.demand import GPU_RESOURCE

pytestmark = pytest.mark.integration


def gpu_pod(name: str, gpus: int, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "model",
                    "image": "registry.invalid/model-server:1",
                    "resources": {"limits": {GPU_RESOURCE: str(gpus)}},
                }
            ],
            **spec,
        },
    }


def scheduled_node(core: k8s_client.CoreV1Api, namespace: str, name: str) -> str | None:
    node: str | None = core.read_namespaced_pod(name, namespace).spec.node_name
    return node


def unschedulable_message(core: k8s_client.CoreV1Api, namespace: str, name: str) -> str | None:
    conditions = core.read_namespaced_pod(name, namespace).status.conditions or []
    for condition in conditions:
        if condition.type == "PodScheduled" and condition.reason == "Unschedulable":
            message: str = condition.message
            return message
    return None


def test_fake_gpu_nodes_keep_their_status_and_get_no_taint(
    core_v1: k8s_client.CoreV1Api, make_gpu_nodes: MakeGpuNodes
) -> None:
    (name,) = make_gpu_nodes(gpus=4, product="NVIDIA-A100-SXM4-40GB", memory_per_gpu="40Gi")
    node = core_v1.read_node(name)
    assert node.status.allocatable[GPU_RESOURCE] == "4"
    assert node.status.capacity[GPU_RESOURCE] == "4"
    assert node.metadata.labels[PRODUCT_LABEL] == "NVIDIA-A100-SXM4-40GB"
    assert node.metadata.labels[MEMORY_LABEL] == "40960"
    assert node.metadata.labels[COUNT_LABEL] == "4"
    assert [(c.type, c.status) for c in node.status.conditions] == [("Ready", "True")]
    assert not node.spec.taints


def test_a_gpu_pod_is_scheduled_onto_the_gpu_node_and_never_the_cpu_node(
    core_v1: k8s_client.CoreV1Api,
    namespace: str,
    make_gpu_nodes: MakeGpuNodes,
    start_scheduler: StartScheduler,
) -> None:
    (gpu_node,) = make_gpu_nodes(gpus=8)
    make_gpu_nodes(3, gpus=0, prefix="cpu")
    start_scheduler({})
    for i in range(4):
        core_v1.create_namespaced_pod(namespace, gpu_pod(f"llm-{i}", gpus=2))
    for i in range(4):
        bound = functools.partial(scheduled_node, core_v1, namespace, f"llm-{i}")
        assert wait_for(f"llm-{i} to be bound", bound) == gpu_node


def test_a_pod_is_pending_while_no_node_has_enough_gpus_and_scheduled_once_one_does(
    core_v1: k8s_client.CoreV1Api,
    namespace: str,
    make_gpu_nodes: MakeGpuNodes,
    start_scheduler: StartScheduler,
) -> None:
    make_gpu_nodes(2, gpus=4)
    start_scheduler({})
    core_v1.create_namespaced_pod(namespace, gpu_pod("tp8", gpus=8))
    message = wait_for(
        "tp8 to be unschedulable", lambda: unschedulable_message(core_v1, namespace, "tp8")
    )
    assert f"Insufficient {GPU_RESOURCE}" in message
    assert scheduled_node(core_v1, namespace, "tp8") is None
    (big,) = make_gpu_nodes(gpus=8, prefix="big")
    assert wait_for("tp8 to be bound", lambda: scheduled_node(core_v1, namespace, "tp8")) == big


def test_gpu_product_labels_steer_a_pod(
    core_v1: k8s_client.CoreV1Api,
    namespace: str,
    make_gpu_nodes: MakeGpuNodes,
    start_scheduler: StartScheduler,
) -> None:
    make_gpu_nodes(2, product="NVIDIA-H100-80GB-HBM3", memory_per_gpu="80Gi", prefix="h100")
    (a100,) = make_gpu_nodes(product="NVIDIA-A100-SXM4-40GB", memory_per_gpu="40Gi", prefix="a100")
    start_scheduler({})
    pod = gpu_pod("small", gpus=1, nodeSelector={PRODUCT_LABEL: "NVIDIA-A100-SXM4-40GB"})
    core_v1.create_namespaced_pod(namespace, pod)
    assert (
        wait_for("small to be bound", lambda: scheduled_node(core_v1, namespace, "small")) == a100
    )


def test_the_extender_scheduler_configuration_of_make_cluster_is_accepted(
    start_scheduler: StartScheduler,
) -> None:
    scheduler = start_scheduler(extender_scheduler_config("http://127.0.0.1:9"))
    assert scheduler.running
