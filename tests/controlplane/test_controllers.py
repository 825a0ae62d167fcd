"""kube-controller-manager in the test control plane: workload controllers create pods.

The end-to-end bursts scale Deployments shaped as KServe predictors, so the pods they schedule
must come from the real ReplicaSet and StatefulSet controllers, with owner references, the
pod-template hash and the names those controllers give, not from the test itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client as k8s_client

from controlplane.harness import ControlPlane
from controlplane.pytest_plugin import wait_for

pytestmark = pytest.mark.integration

POD_TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"app": "predictor"}},
    "spec": {"containers": [{"name": "kserve-container", "image": "example.invalid/vllm"}]},
}


def deployment(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "predictor"}},
            "template": POD_TEMPLATE,
        },
    }


def stateful_set(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": "predictor"}},
            "template": POD_TEMPLATE,
        },
    }


def _create_deployment(apps: k8s_client.AppsV1Api, namespace: str, replicas: int) -> None:
    apps.create_namespaced_deployment(namespace, deployment("llama-predictor", replicas))


def _create_stateful_set(apps: k8s_client.AppsV1Api, namespace: str, replicas: int) -> None:
    apps.create_namespaced_stateful_set(namespace, stateful_set("llama-worker", replicas))


@pytest.mark.parametrize(
    ("create", "owner_kind"),
    [
        pytest.param(_create_deployment, "ReplicaSet", id="deployment-through-replicaset"),
        pytest.param(_create_stateful_set, "StatefulSet", id="statefulset"),
    ],
)
def test_workload_controllers_create_pods(
    control_plane: ControlPlane,
    core_v1: k8s_client.CoreV1Api,
    namespace: str,
    create: Callable[[k8s_client.AppsV1Api, str, int], None],
    owner_kind: str,
) -> None:
    apps = k8s_client.AppsV1Api(core_v1.api_client)
    create(apps, namespace, 3)

    def pods() -> list[k8s_client.V1Pod] | None:
        items = core_v1.list_namespaced_pod(namespace).items
        return items if len(items) == 3 else None

    created = wait_for("3 pods from the controller", pods, timeout=60)
    for pod in created:
        (owner,) = pod.metadata.owner_references
        assert owner.kind == owner_kind and owner.controller
        assert pod.spec.scheduler_name == "default-scheduler"


def test_scaling_a_deployment_to_zero_removes_its_pods(
    control_plane: ControlPlane, core_v1: k8s_client.CoreV1Api, namespace: str
) -> None:
    apps = k8s_client.AppsV1Api(core_v1.api_client)
    _create_deployment(apps, namespace, 2)
    wait_for("2 pods", lambda: len(core_v1.list_namespaced_pod(namespace).items) == 2 or None, 60)
    apps.patch_namespaced_deployment_scale("llama-predictor", namespace, {"spec": {"replicas": 0}})
    # Unbound pods are deleted at once; nothing waits for a kubelet.
    wait_for("no pods", lambda: not core_v1.list_namespaced_pod(namespace).items or None, 60)


def test_service_accounts_are_created_in_new_namespaces(
    control_plane: ControlPlane, core_v1: k8s_client.CoreV1Api, namespace: str
) -> None:
    found = wait_for(
        "the default ServiceAccount",
        lambda: core_v1.list_namespaced_service_account(namespace).items or None,
        60,
    )
    assert [sa.metadata.name for sa in found] == ["default"]
