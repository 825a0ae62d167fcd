"""Pods shaped as KServe creates them (``reference/cluster-agreement.md`` §4), for tests."""

from __future__ import annotations

import copy
from typing import Any

LLAMA_70B = "hf://meta-llama/Llama-3.1-70B-Instruct"
LLAMA_8B = "hf://meta-llama/Llama-3.1-8B-Instruct"


def container(gpus: int | None, *, name: str = "kserve-container", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "image": "vllm/vllm-openai:v0.9.0", **extra}
    if gpus is not None:
        out["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    return out


def isvc_pod(
    uri: str = LLAMA_70B,
    gpus: int = 2,
    *,
    annotations: dict[str, str] | None = None,
    affinity: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A v1beta1 InferenceService predictor pod after KServe's pod mutator ran."""
    meta: dict[str, Any] = {
        "generateName": "llama-predictor-00001-deployment-",
        "namespace": "serving",
        "labels": {"serving.kserve.io/inferenceservice": "llama", "component": "predictor"},
        "annotations": {
            "internal.serving.kserve.io/storage-initializer-sourceuri": uri,
            **(annotations or {}),
        },
    }
    body: dict[str, Any] = {
        "initContainers": [
            {"name": "storage-initializer", "args": [uri, "/mnt/models"]},
        ],
        "containers": [container(gpus, args=["--model", "/mnt/models", "--port", "8080"])],
        **spec,
    }
    if affinity is not None:
        body["affinity"] = affinity
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": body}


def llmisvc_pod(uri: str = LLAMA_70B, gpus: int = 4, script: str = "") -> dict[str, Any]:
    """An LLMInferenceService workload pod: labels, storage initializer, a ``bash -c`` script."""
    script = script or (
        "vllm serve /mnt/models --served-model-name meta-llama/Llama-3.1-70B-Instruct "
        f"--tensor-parallel-size {gpus} --port 8000"
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "llama-kserve-6d9f-abcde",
            "namespace": "serving",
            "labels": {
                "app.kubernetes.io/name": "llama",
                "app.kubernetes.io/part-of": "llminferenceservice",
                "app.kubernetes.io/component": "llminferenceservice-workload",
                "kserve.io/component": "workload",
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "llama-kserve-6d9f",
                    "uid": "rs-uid",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "initContainers": [{"name": "storage-initializer", "args": [uri, "/mnt/models"]}],
            "containers": [
                container(gpus, name="main", command=["/bin/bash", "-c"], args=[script])
            ],
        },
    }


def with_changes(pod: dict[str, Any], **annotations: str) -> dict[str, Any]:
    out = copy.deepcopy(pod)
    out["metadata"].setdefault("annotations", {}).update(annotations)
    return out
