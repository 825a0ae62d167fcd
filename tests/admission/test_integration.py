"""The webhook behind the real kube-apiserver: TLS with its own CA, matchConditions, the patch
applied to real pods, and Events for pods it admits unchanged."""

from __future__ import annotations

import base64
import secrets
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s_client

from controlplane.harness import ControlPlane
from controlplane.pytest_plugin import wait_for
from placement.affinity import REQUIRED
from tests.admission.harness import RunningWebhook, admission_webhook
from tests.placement.kserve_pods import LLAMA_8B, container, isvc_pod

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def webhook_namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = f"adm-{secrets.token_hex(3)}"
    with control_plane.api_client() as api:
        core = k8s_client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": name}})
        try:
            yield name
        finally:
            core.delete_collection_namespaced_pod(name, grace_period_seconds=0)
            core.delete_namespace(name)


@pytest.fixture(scope="module")
def webhook(
    control_plane: ControlPlane, webhook_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningWebhook]:
    with admission_webhook(
        control_plane,
        [webhook_namespace],
        tmp_path_factory.mktemp("admission"),
        secret_namespace=webhook_namespace,
    ) as running:
        yield running


def _create(plane: ControlPlane, namespace: str, pod: dict[str, Any]) -> Any:
    pod = {**pod, "metadata": {**pod["metadata"], "namespace": namespace}}
    pod["metadata"].pop("generateName", None)
    pod["metadata"]["name"] = f"p-{secrets.token_hex(3)}"
    pod["spec"]["initContainers"] = [
        {**c, "image": "busybox"} for c in pod["spec"].get("initContainers", [])
    ]
    with plane.api_client() as api:
        return k8s_client.CoreV1Api(api).create_namespaced_pod(namespace, pod)


def _metric(webhook: RunningWebhook, line_start: str) -> float:
    with urllib.request.urlopen(webhook.metrics_url, timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_kserve_gpu_pod_is_created_with_its_demand_and_affinity(
    control_plane: ControlPlane, webhook: RunningWebhook, webhook_namespace: str
) -> None:
    zone = {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}
    pod = isvc_pod(
        LLAMA_8B,
        gpus=1,
        affinity={
            "nodeAffinity": {REQUIRED: {"nodeSelectorTerms": [{"matchExpressions": [zone]}]}}
        },
    )
    created = _create(control_plane, webhook_namespace, pod)
    annotations = created.metadata.annotations
    assert annotations["vramfit.io/model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert annotations["vramfit.io/derived"] == "model,model-size,vram-per-gpu"
    assert annotations["vramfit.io/vram-per-gpu"].endswith("Mi")
    (term,) = (
        created.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
    )
    keys = [(e.key, e.operator) for e in term.match_expressions]
    assert keys == [("topology.kubernetes.io/zone", "In"), ("nvidia.com/gpu.memory", "Gt")]


def test_pods_without_gpus_are_not_sent(
    control_plane: ControlPlane, webhook: RunningWebhook, webhook_namespace: str
) -> None:
    before = _metric(webhook, "vramfit_admission_reviews_total{")
    pod = {"metadata": {"name": "web"}, "spec": {"containers": [container(None, name="web")]}}
    created = _create(control_plane, webhook_namespace, pod)
    assert created.metadata.annotations is None
    assert _metric(webhook, "vramfit_admission_reviews_total{") == before


def test_an_unknown_model_is_admitted_unchanged_with_an_event_and_a_metric(
    control_plane: ControlPlane, webhook: RunningWebhook, webhook_namespace: str
) -> None:
    created = _create(control_plane, webhook_namespace, isvc_pod("s3://bucket/in-house/v3"))
    assert "vramfit.io/derived" not in created.metadata.annotations
    assert created.spec.affinity is None
    with control_plane.api_client() as api:
        core = k8s_client.CoreV1Api(api)
        event = wait_for(
            "the VramfitNotDerived event",
            lambda: [
                e
                for e in core.list_namespaced_event(webhook_namespace).items
                if e.reason == "VramfitNotDerived"
            ],
        )[0]
    assert event.involved_object.name == created.metadata.name
    assert "not in the model catalog" in event.message
    assert _metric(webhook, 'vramfit_admission_not_derived_total{reason="unknown-model"}') >= 1


def test_the_certificate_lives_in_a_secret_and_the_api_server_trusts_it(
    control_plane: ControlPlane, webhook: RunningWebhook, webhook_namespace: str, tmp_path: Path
) -> None:
    with control_plane.api_client() as api:
        secret = k8s_client.CoreV1Api(api).read_namespaced_secret(webhook.secret, webhook_namespace)
        config = k8s_client.AdmissionregistrationV1Api(api).read_mutating_webhook_configuration(
            webhook.configuration
        )
    bundle = base64.b64decode(secret.data["ca-bundle.crt"])
    assert base64.b64decode(config.webhooks[0].client_config.ca_bundle) == bundle
    assert _metric(webhook, "vramfit_admission_certificate_not_after_timestamp_seconds") > 0
