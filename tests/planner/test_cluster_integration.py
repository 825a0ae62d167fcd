"""Reading InferenceServices and LLMInferenceServices from a real kube-apiserver with the KServe
CRDs applied: the ``inferenceservice-config`` ConfigMap, LocalModelCaches, presets from
LLMInferenceServiceConfigs in the service's namespace and KServe's, both served versions, one
namespace or all, a cluster without the LLMInferenceService CRD, and the error when the
kubeconfig is wrong. The LLMInferenceService CRDs are KServe's own (``fixtures/crds``)."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
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
LLM_CRDS = {
    # name: sha256 of KServe's YAML (fixtures/crds/README.md says where each comes from)
    "llminferenceservices": "ae7d4f3a4f41b4745f8cd5ae43f2517d5758c64f7e0bfd3824da80ab6dbb0d58",
    "llminferenceserviceconfigs": "fffb4413f7f2cbf0d46a1f901e5f495b9d3f824b9a5c406ffc41abb4bd77d1ca",
}


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


def _kserve_crd(plural: str) -> dict[str, Any]:
    """KServe's own CRD of ``plural``, checked against the hash of the file KServe ships."""
    text = gzip.decompress((FIXTURES / "crds" / f"{GROUP}_{plural}.yaml.gz").read_bytes())
    assert hashlib.sha256(text).hexdigest() == LLM_CRDS[plural]
    crd: dict[str, Any] = yaml.load(text, Loader=yaml.CSafeLoader)
    return crd


def _gone(ext: k8s_client.ApiextensionsV1Api, name: str) -> bool:
    try:
        ext.read_custom_resource_definition(name)
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


@pytest.fixture(scope="module")
def llm_crds(control_plane: ControlPlane, kserve_crds: None) -> Iterator[None]:
    """KServe's LLMInferenceService and LLMInferenceServiceConfig CRDs, applied and serving
    both versions."""
    with control_plane.api_client() as api:
        ext = k8s_client.ApiextensionsV1Api(api)
        for plural in LLM_CRDS:
            try:
                ext.create_custom_resource_definition(_kserve_crd(plural))
            except ApiException as exc:
                if exc.status != 409:
                    raise
        custom = k8s_client.CustomObjectsApi(api)
        deadline = time.monotonic() + 60
        for plural in LLM_CRDS:
            while not _established(ext, f"{plural}.{GROUP}"):
                assert time.monotonic() < deadline, f"{plural} never became Established"
                time.sleep(0.2)
            for version in ("v1alpha1", "v1alpha2"):
                while True:
                    try:
                        custom.list_cluster_custom_object(GROUP, version, plural)
                        break
                    except ApiException:
                        assert time.monotonic() < deadline, f"{plural} {version} never served"
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


@pytest.mark.integration
def test_a_cluster_without_the_llm_crds_plans_its_inference_services(
    control_plane: ControlPlane, kserve_crds: None, namespace: str
) -> None:
    with control_plane.api_client() as api:
        ext = k8s_client.ApiextensionsV1Api(api)
        deadline = time.monotonic() + 60
        for plural in LLM_CRDS:
            name = f"{plural}.{GROUP}"
            if not _gone(ext, name):
                ext.delete_custom_resource_definition(name)
            while not _gone(ext, name):
                assert time.monotonic() < deadline, f"{name} was never deleted"
                time.sleep(0.2)
        doc = yaml.safe_load((FIXTURES / "canary.yaml").read_text())
        k8s_client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, "v1beta1", namespace, "inferenceservices", _with_namespace(doc, namespace)
        )
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc, report = _plan(["--kubeconfig", str(control_plane.kubeconfig), "-n", namespace])
    assert rc == EXIT_OK and report is not None
    assert [s["name"] for s in report["services"]] == [f"{namespace}/my-model"]
    absent = (
        "the LLMInferenceService CRD (serving.kserve.io/v1alpha2 or serving.kserve.io/v1alpha1) "
        "is not installed"
    )
    assert any(absent in n for n in report["inputs"]["notes"])
    assert absent in err.getvalue()


def _apply_docs(
    custom: k8s_client.CustomObjectsApi, path: Path, namespace: str, *, drop: str = ""
) -> None:
    """Every LLMInferenceService(Config) of a fixture file, created in ``namespace`` at the
    version the file names, without its ``spec.<drop>`` section."""
    for doc in yaml.safe_load_all(path.read_text()):
        doc["spec"].pop(drop, None)
        group, version = doc["apiVersion"].split("/")
        plural = {"LLMInferenceService": "llminferenceservices"}.get(
            doc["kind"], "llminferenceserviceconfigs"
        )
        custom.create_namespaced_custom_object(
            group, version, namespace, plural, _with_namespace(doc, namespace)
        )


@pytest.mark.integration
def test_reads_llm_services_and_their_presets_from_the_api_server(
    control_plane: ControlPlane, llm_crds: None, namespace: str
) -> None:
    docs = FIXTURES / "kserve-docs"
    with control_plane.api_client() as api:
        custom = k8s_client.CustomObjectsApi(api)
        core = k8s_client.CoreV1Api(api)
        kserve_ns = f"kserve-{secrets.token_hex(3)}"
        core.create_namespace({"metadata": {"name": kserve_ns}})
        try:
            # A preset in KServe's namespace, found by name from the service's namespace. KServe's
            # CRD rejects the sample's router section (its scheduler pool spec lacks the required
            # endpointPickerRef.name, selector and targetPorts); the router asks for no GPU.
            _apply_docs(custom, docs / "llmisvc-gpt-oss-preset.yaml", kserve_ns, drop="router")
            for name in (
                "llmisvc-gpt-oss-baserefs.yaml",
                "llmisvc-deepseek-dp-ep.yaml",
                "llmisvc-qwen-prefill-decode.yaml",
                "llmisvc-v1alpha1-pipeline.yaml",
                "llmisvc-keda-scale-to-zero.yaml",
            ):
                _apply_docs(custom, docs / name, namespace)
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                rc, report = _plan(
                    [
                        "--kubeconfig",
                        str(control_plane.kubeconfig),
                        "-n",
                        namespace,
                        "--kserve-namespace",
                        kserve_ns,
                    ]
                )
        finally:
            core.delete_namespace(kserve_ns)
    assert rc == EXIT_OK, err.getvalue()
    assert report is not None
    inputs = report["inputs"]
    assert (inputs["inference_services"], inputs["llm_inference_services"]) == (0, 5)
    assert inputs["llm_inference_service_configs"] >= 1
    # What the API server returns (uid, managedFields, defaults) reads without a note.
    assert not any("unknown field" in n for n in inputs["notes"]), inputs["notes"]
    assert inputs["broken"] == []
    services = {s["name"].split("/", 1)[1]: s for s in report["services"]}
    assert set(services) == {
        "gpt-oss-20b",
        "deepseek-coder-v2",
        "qwen2-7b-instruct-pd",
        "llama-405b-pp2",
        "mistral-7b-keda",
    }
    assert all(s["kind"] == "LLMInferenceService" for s in services.values())
    assert services["deepseek-coder-v2"]["replica_shape"] == "2 pods x 8 GPUs (one group)"
    assert services["qwen2-7b-instruct-pd"]["components"] == ["decode", "prefill"]
    assert services["mistral-7b-keda"]["min_replicas"] == 0
    assert any(
        w.endswith(
            "spec merged over the LLMInferenceServiceConfigs "
            "llmisvc-intelligent-inference-scheduling, in that order"
        )
        for w in report["warnings"]
    )
    groups = report["scenarios"]["peak"]["groups"]
    assert sorted(g["inference_service"].split("/", 1)[1] for g in groups) == [
        "deepseek-coder-v2",
        "llama-405b-pp2",
    ]
    for g in groups:
        placed = [
            p
            for p in report["scenarios"]["peak"]["placements"]
            if p["inference_service"] == g["inference_service"]
        ]
        assert {p["pool"] for p in placed} == {g["pool"]} and len(placed) == g["pods"] == 2
