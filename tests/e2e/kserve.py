"""The Deployment KServe makes for an InferenceService in RawDeployment (Standard) mode.

End-to-end bursts scale these, so the pods vramfit schedules come from the real ReplicaSet
controller in the shape KServe gives them (kserve/kserve ``pkg/controller/v1beta1/
inferenceservice/components/predictor.go`` and ``reconcilers/raw``, the storage-initializer
injector ``pkg/webhook/admission/pod/storage_initializer_injector.go``):

- the Deployment ``<isvc>-predictor``, selected by ``app: isvc.<isvc>-predictor``, labelled
  ``serving.kserve.io/inferenceservice``, ``component: predictor`` and the deployment mode;
- the model server in the container ``kserve-container`` with ``nvidia.com/gpu`` limits (the
  request follows the limit), ``STORAGE_URI`` rewritten to ``/mnt/models``;
- the ``storage-initializer`` init container with args ``[<storageUri>, /mnt/models]`` and the
  source URI in ``internal.serving.kserve.io/storage-initializer-sourceuri``;
- ``schedulerName`` and the ``vramfit.io/*`` annotations copied from the InferenceService's
  predictor (KServe passes both through to the pod template).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

ISVC_LABEL: Final = "serving.kserve.io/inferenceservice"
MODE_ANNOTATION: Final = "serving.kserve.io/deploymentMode"
SOURCE_URI_ANNOTATION: Final = "internal.serving.kserve.io/storage-initializer-sourceuri"
MODEL_MOUNT: Final = "/mnt/models"
SERVER_IMAGE: Final = "kserve/huggingfaceserver:v0.15.0-gpu"
INITIALIZER_IMAGE: Final = "kserve/storage-initializer:v0.15.0"


def predictor_name(isvc: str) -> str:
    return f"{isvc}-predictor"


def selector(isvc: str) -> dict[str, str]:
    """Pure: the label KServe selects a RawDeployment predictor's pods by."""
    return {"app": f"isvc.{predictor_name(isvc)}"}


def predictor_deployment(
    isvc: str,
    replicas: int,
    *,
    gpus: int = 2,
    vram_per_gpu: str = "70Gi",
    model: str = "",
    model_size: str = "141Gi",
    storage_uri: str = "hf://meta-llama/Llama-3.1-70B-Instruct",
    scheduler: str = "vramfit",
    node_selector: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Pure: the predictor Deployment of InferenceService ``isvc`` with ``replicas`` replicas."""
    labels = {
        ISVC_LABEL: isvc,
        "component": "predictor",
        **selector(isvc),
    }
    annotations = {
        MODE_ANNOTATION: "RawDeployment",
        SOURCE_URI_ANNOTATION: storage_uri,
        "vramfit.io/vram-per-gpu": vram_per_gpu,
        "vramfit.io/model-size": model_size,
    }
    if model:
        annotations["vramfit.io/model"] = model
    mount = {"name": "kserve-provision-location", "mountPath": MODEL_MOUNT}
    gpu = {"nvidia.com/gpu": str(gpus)}
    pod_spec: dict[str, Any] = {
        "schedulerName": scheduler,
        # A stand-in kubelet finishes deletions at once; KServe leaves the default (30 s).
        "terminationGracePeriodSeconds": 0,
        "initContainers": [
            {
                "name": "storage-initializer",
                "image": INITIALIZER_IMAGE,
                "args": [storage_uri, MODEL_MOUNT],
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                "volumeMounts": [mount],
            }
        ],
        "containers": [
            {
                "name": "kserve-container",
                "image": SERVER_IMAGE,
                "args": [f"--model_name={isvc}", f"--model_dir={MODEL_MOUNT}"],
                "env": [{"name": "STORAGE_URI", "value": MODEL_MOUNT}],
                "resources": {
                    "limits": {"cpu": "8", "memory": "64Gi", **gpu},
                    "requests": {"cpu": "4", "memory": "32Gi", **gpu},
                },
                "volumeMounts": [{**mount, "readOnly": True}],
            }
        ],
        "volumes": [{"name": "kserve-provision-location", "emptyDir": {}}],
    }
    if node_selector:
        pod_spec["nodeSelector"] = dict(node_selector)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": predictor_name(isvc),
            "labels": {**labels, MODE_ANNOTATION: "RawDeployment"},
            "annotations": {MODE_ANNOTATION: "RawDeployment"},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector(isvc)},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": pod_spec,
            },
        },
    }
