"""Reading InferenceServices from a real kube-apiserver with the KServe CRDs applied: the
``inferenceservice-config`` ConfigMap, LocalModelCaches, one namespace or all, and the error
when the kubeconfig is wrong."""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from controlplane.harness import ControlPlane
from planner.cli import EXIT_INPUT, EXIT_OK, main

FIXTURES = Path(__file__).parent / "fixtures"
GROUP = "serving.kserve.io"


def _established(ext: k8s_client.ApiextensionsV1Api, name: str) -> bool:
    crd = ext.read_custom_resource_definition(name)
    return any(
        c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])
    )


@pytest.fixture(scope="module")
def kserve_crds(control_plane: ControlPlane) -> Iterator[None]:
    """The KServe CRDs, applied once and ready to serve."""
    with control_plane.api_client() as api:
        ext = k8s_client.ApiextensionsV1Api(api)
        names = []
        for crd in yaml.safe_load_all((FIXTURES / "crd-kserve.yaml").read_text()):
            names.append(crd["metadata"]["name"])
            try:
                ext.create_custom_resource_definition(crd)
            except ApiException as exc:
                if exc.status != 409:
                    raise
        deadline = time.monotonic() + 30
        while not all(_established(ext, n) for n in names):
            assert time.monotonic() < deadline, "KServe CRDs never became Established"
            time.sleep(0.2)
        # The discovery cache of the API server needs a moment after Established.
        custom = k8s_client.CustomObjectsApi(api)
        while True:
            try:
                custom.list_cluster_custom_object(GROUP, "v1beta1", "inferenceservices")
                break
            except ApiException:
                assert time.monotonic() < deadline, "InferenceServices never served"
                time.sleep(0.2)
    yield


def _with_namespace(doc: dict[str, Any], namespace: str) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    doc["metadata"]["namespace"] = namespace
    return doc


def _plan(argv: list[str]) -> tuple[int, dict[str, Any] | None]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main([*argv, "-o", "json", "--time-limit", "2", "--scenarios", "min,peak"])
    text = out.getvalue()
    return rc, (json.loads(text) if text else None)


@pytest.mark.integration
def test_reads_isvcs_configmap_and_caches_from_the_api_server(
    control_plane: ControlPlane, kserve_crds: None, namespace: str
) -> None:
    cache_name = f"llama-8b-{secrets.token_hex(3)}"
    uri = f"hf://meta-llama/Llama-3.1-8B-Instruct-{cache_name}"
    with control_plane.api_client() as api:
        custom = k8s_client.CustomObjectsApi(api)
        core = k8s_client.CoreV1Api(api)
        for path in ("llama70b_tp4.yaml", "canary.yaml", "multinode.yaml", "autoscale_gpu.yaml"):
            for doc in yaml.safe_load_all((FIXTURES / path).read_text()):
                for item in doc.get("items", [doc]):
                    custom.create_namespaced_custom_object(
                        GROUP,
                        "v1beta1",
                        namespace,
                        "inferenceservices",
                        _with_namespace(item, namespace),
                    )
        cached = {
            "apiVersion": f"{GROUP}/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "cached-8b", "namespace": namespace},
            "spec": {
                "predictor": {
                    "minReplicas": 0,
                    "model": {
                        "modelFormat": {"name": "huggingface"},
                        "storageUri": uri,
                        "resources": {"limits": {"nvidia.com/gpu": "1"}},
                    },
                }
            },
        }
        custom.create_namespaced_custom_object(
            GROUP, "v1beta1", namespace, "inferenceservices", cached
        )
        core.create_namespaced_config_map(
            namespace,
            {
                "metadata": {"name": "inferenceservice-config"},
                "data": {"deploy": json.dumps({"defaultDeploymentMode": "RawDeployment"})},
            },
        )
        custom.create_cluster_custom_object(
            GROUP,
            "v1alpha1",
            "localmodelcaches",
            {
                "apiVersion": f"{GROUP}/v1alpha1",
                "kind": "LocalModelCache",
                "metadata": {"name": cache_name},
                "spec": {"sourceModelUri": uri, "modelSize": "16Gi", "nodeGroups": ["nvme"]},
            },
        )
        try:
            rc, report = _plan(
                [
                    "--kubeconfig",
                    str(control_plane.kubeconfig),
                    "-n",
                    namespace,
                    "--kserve-namespace",
                    namespace,
                ]
            )
        finally:
            custom.delete_cluster_custom_object(GROUP, "v1alpha1", "localmodelcaches", cache_name)
    assert rc == EXIT_OK
    assert report is not None
    assert report["inputs"]["inference_services"] == 6
    assert report["inputs"]["default_deployment_mode"] == "Standard"
    services = {s["name"]: s for s in report["services"]}
    assert set(services) == {
        f"{namespace}/{n}"
        for n in (
            "llama-70b",
            "my-model",
            "huggingface-llama3-8b-pp2",
            "huggingface-llama3-70b-tp16",
            "flowers-sample-gpu",
            "cached-8b",
        )
    }
    # The LocalModelCache holds exactly this storageUri: the cold start reads local disk.
    assert services[f"{namespace}/cached-8b"]["storage_tier"] == "cache"
    # The cluster's default mode is Standard (HPA): minReplicas 0 cannot scale to zero there.
    assert services[f"{namespace}/cached-8b"]["min_replicas"] == 1
    tp16 = [
        p
        for p in report["placements"]
        if p["inference_service"].endswith("/huggingface-llama3-70b-tp16")
    ]
    assert len(tp16) == 2 and all(len(p["gpus"]) == 8 for p in tp16)


@pytest.mark.integration
def test_wrong_context_is_one_clear_error(
    control_plane: ControlPlane, kserve_crds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "--kubeconfig",
            str(control_plane.kubeconfig),
            "--context",
            "no-such-context",
            "-o",
            "json",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == EXIT_INPUT
    assert len(err) == 1 and "no-such-context" in err[0]
