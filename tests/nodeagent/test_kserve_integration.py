"""KServe's LocalModelCache on the real API server: the agent publishes the cached folders of
its node under the model ids the planner recommends for the same URIs.

KServe's own LocalModelCache and LocalModelNode CRDs (``fixtures/crds``) are applied, with the
agent's RBAC and admission policy from deploy/; the agent runs with its own service-account
token, bound to a pod on its node, so its permissions are the ones deploy/ grants.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from controlplane.harness import ControlPlane
from controlplane.manifests import load_documents, server_side_apply
from controlplane.pytest_plugin import MakeGpuNodes, not_found, wait_for
from nodeagent.agent import build_agent
from nodeagent.config import argument_parser, settings_from_args
from nodeagent.kservecache import storage_key
from nodeagent.kube import Credentials, KubeClient
from planner.inputs.model_ids import identify
from planner.inputs.models import load_model_catalog

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CRDS = Path(__file__).parent / "fixtures" / "crds"
KSERVE_CRDS = {
    # file: sha256 (fixtures/crds/README.md says where each comes from)
    "serving.kserve.io_localmodelcaches.yaml": "51d10e565a118af7da31250e99d6e8ff59bdc9f0e9fb4e4d1c1c3e2eb591bdef",
    "serving.kserve.io_localmodelnodes.yaml": "32bd25b665a3fb074128dd2c4186943760b7e1bcc32da3293b3820da09fea612",
}  # fmt: skip
NS = "vramfit-system"
GROUP, VERSION = "serving.kserve.io", "v1alpha1"
LLAMA_URI = "hf://meta-llama/Llama-3.1-8B-Instruct"
QWEN_URI = "s3://models/Qwen--Qwen2.5-72B-Instruct"
MISTRAL_URI = "gs://models/mistral-7b-instruct-v0.3"


@pytest.fixture
def kserve_api(control_plane: ControlPlane) -> Iterator[k8s.CustomObjectsApi]:
    """deploy/'s agent objects and KServe's two CRDs (replacing any reduced copy of them)."""
    files = [
        "namespace.yaml",
        "crd-nodegpustate.yaml",
        "agent-rbac.yaml",
        "agent-admission-policy.yaml",
    ]
    server_side_apply(control_plane.kubectl, load_documents([DEPLOY / f for f in files]))
    with control_plane.api_client() as api:
        ext = k8s.ApiextensionsV1Api(api)
        names = []
        for name, digest in KSERVE_CRDS.items():
            data = (CRDS / name).read_bytes()
            assert hashlib.sha256(data).hexdigest() == digest, f"{name} is not KServe's"
            crd = yaml.safe_load(data)
            names.append(crd["metadata"]["name"])
            try:
                ext.create_custom_resource_definition(crd)
            except k8s.ApiException as exc:
                if exc.status != 409:
                    raise
                old = ext.read_custom_resource_definition(crd["metadata"]["name"])
                crd["metadata"]["resourceVersion"] = old.metadata.resource_version
                ext.replace_custom_resource_definition(crd["metadata"]["name"], crd)

        def established() -> bool:
            return all(
                any(
                    c.type == "Established" and c.status == "True"
                    for c in ext.read_custom_resource_definition(n).status.conditions or []
                )
                for n in names
            )

        wait_for("KServe's CRDs to be Established", established)
        yield k8s.CustomObjectsApi(api)


def agent_client(plane: ControlPlane, core_v1: k8s.CoreV1Api, node: str) -> tuple[KubeClient, str]:
    """A client with a vramfit-agent token bound to a pod on ``node``, and the pod's name."""
    name = f"vramfit-agent-{secrets.token_hex(3)}"
    pod = core_v1.create_namespaced_pod(
        NS,
        {
            "metadata": {"name": name},
            "spec": {
                "nodeName": node,
                "serviceAccountName": "vramfit-agent",
                "containers": [{"name": "agent", "image": "ghcr.io/vramfit/vramfit:0.1.0"}],
            },
        },
    )
    bound = {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": pod.metadata.uid}
    token = core_v1.create_namespaced_service_account_token(
        "vramfit-agent", NS, {"spec": {"boundObjectRef": bound, "expirationSeconds": 3600}}
    ).status.token
    creds = Credentials(server=plane.server, token=token, ca_file=plane.ca_file)
    return KubeClient(creds, user_agent=f"vramfit-agent/{node}"), name


def local_model_cache(name: str, uri: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LocalModelCache",
        "metadata": {"name": name},
        "spec": {"sourceModelUri": uri, "modelSize": "16Gi", "nodeGroups": ["nvme"]},
    }


def put(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)


def test_the_agent_publishes_kserves_cached_folders_under_the_planners_model_ids(
    *,
    kserve_api: k8s.CustomObjectsApi,
    control_plane: ControlPlane,
    core_v1: k8s.CoreV1Api,
    make_gpu_nodes: MakeGpuNodes,
    tmp_path: Path,
) -> None:
    (node,) = make_gpu_nodes(1, gpus=2)
    suffix = secrets.token_hex(3)
    caches = {
        f"llama-{suffix}": LLAMA_URI,
        f"qwen-{suffix}": QWEN_URI,
        f"mistral-{suffix}": MISTRAL_URI,
    }
    llama, qwen, mistral = caches
    for name, uri in caches.items():
        kserve_api.create_cluster_custom_object(
            GROUP, VERSION, "localmodelcaches", local_model_cache(name, uri)
        )
    # KServe 0.18 on: Llama and Qwen in folders named by their URIs' storage keys, assigned on
    # this node's LocalModelNode; Llama is downloaded, Qwen still downloading. Mistral is in a
    # folder named after its cache (KServe 0.17) and only the cache says it is downloaded here.
    root = tmp_path / "host-models"
    put(root / "models" / storage_key(LLAMA_URI) / "config.json", 24)
    put(root / "models" / storage_key(LLAMA_URI) / "model.safetensors", 1000)
    put(root / "models" / storage_key(QWEN_URI) / "model-00001-of-00031.safetensors", 700)
    put(root / "models" / mistral / "model.safetensors", 500)
    kserve_api.patch_cluster_custom_object_status(
        GROUP,
        VERSION,
        "localmodelcaches",
        mistral,
        {"status": {"nodeStatus": {node: "NodeDownloaded"}}},
    )
    kserve_api.create_cluster_custom_object(GROUP, VERSION, "localmodelnodes", {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LocalModelNode",
        "metadata": {"name": node},
        "spec": {"localModels": [
            {"modelName": llama, "sourceModelUri": LLAMA_URI, "nodeGroup": "nvme"},
            {"modelName": qwen, "sourceModelUri": QWEN_URI, "nodeGroup": "nvme"},
        ]},
    })  # fmt: skip
    kserve_api.patch_cluster_custom_object_status(
        GROUP, VERSION, "localmodelnodes", node,
        {"status": {"modelStatus": {llama: "ModelDownloaded", qwen: "ModelDownloading"}}},
    )  # fmt: skip
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"nodes": [{"name": node, "product": "NVIDIA-H100-80GB-HBM3", "gpus": 2, "memoryPerGpu": "80Gi"}]}))  # fmt: skip
    settings = settings_from_args(argument_parser().parse_args([
        "--backend", "simulated", "--node-name", node, "--spec", str(spec),
        "--listen", "127.0.0.1:0", "--poll-interval", "0.2", "--cache-dir", str(root),
        "--cache-rescan", "1",
    ]))  # fmt: skip
    client, pod = agent_client(control_plane, core_v1, node)
    agent = build_agent(settings, client=client)
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    models = load_model_catalog()
    # The vramfit.io/model the planner recommends for a component serving each URI.
    want = {uri: identify(models, {}, uri).model_id for uri in caches.values()}
    assert want == {
        LLAMA_URI: "meta-llama/Llama-3.1-8B-Instruct",
        QWEN_URI: "Qwen/Qwen2.5-72B-Instruct",
        MISTRAL_URI: "mistralai/Mistral-7B-Instruct-v0.3",
    }

    def cached(expected: dict[str, int]) -> dict[str, int] | None:
        obj = kserve_api.get_cluster_custom_object_status(
            "vramfit.io", "v1alpha1", "nodegpustates", node
        )
        got = {
            m["modelId"]: m["bytes"] for m in (obj.get("status") or {}).get("cachedModels") or []
        }
        return got if got == expected else None

    try:
        wait_for(
            "the downloaded models in the NodeGPUState",
            lambda: cached({want[LLAMA_URI]: 1024, want[MISTRAL_URI]: 500}),
            retry_on=not_found,
        )
        # KServe finishes Qwen's download: the agent publishes it within a rescan.
        kserve_api.patch_cluster_custom_object_status(
            GROUP, VERSION, "localmodelnodes", node,
            {"status": {"modelStatus": {qwen: "ModelDownloaded"}}},
        )  # fmt: skip
        wait_for(
            "Qwen in the NodeGPUState once downloaded",
            lambda: cached({want[LLAMA_URI]: 1024, want[MISTRAL_URI]: 500, want[QWEN_URI]: 700}),
            timeout=15,
        )
    finally:
        stop.set()
        thread.join(timeout=10)
        assert not [t.name for t in threading.enumerate() if t.name.startswith("kserve-")]
        core_v1.delete_namespaced_pod(pod, NS, grace_period_seconds=0)
        kserve_api.delete_cluster_custom_object(GROUP, VERSION, "localmodelnodes", node)
        for name in caches:
            kserve_api.delete_cluster_custom_object(GROUP, VERSION, "localmodelcaches", name)
        with contextlib.suppress(k8s.ApiException):
            kserve_api.delete_cluster_custom_object("vramfit.io", "v1alpha1", "nodegpustates", node)
        with contextlib.suppress(k8s.ApiException):
            k8s.CoordinationV1Api(core_v1.api_client).delete_namespaced_lease(
                f"vramfit-agent-{node}", NS
            )
