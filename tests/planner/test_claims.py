"""GPUs an InferenceService's or LLMInferenceService's pods claim through DRA: from the
ResourceClaimTemplates their pods name, and from KServe's managed-DRA annotations, counted
as GPUs per pod beside any nvidia.com/gpu; what cannot be counted is noted."""

from __future__ import annotations

from typing import Any

import pytest

from planner.inputs.sources import collect

GPU = "gpu.nvidia.com"


def template(name: str, *requests: tuple[str, int | None], namespace: str = "ml") -> dict[str, Any]:
    reqs = []
    for i, (cls, count) in enumerate(requests):
        exactly: dict[str, Any] = {"deviceClassName": cls}
        if count is not None:
            exactly["count"] = count
        reqs.append({"name": f"r{i}", "exactly": exactly})
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"spec": {"devices": {"requests": reqs}}},
    }


def claims_of(*entries: dict[str, str]) -> dict[str, Any]:
    return {"resourceClaims": list(entries)}


def isvc(predictor: dict[str, Any], gpus: int = 0) -> dict[str, Any]:
    limits = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "llama", "namespace": "ml"},
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "huggingface"},
                    "storageUri": "hf://meta-llama/Llama-3.1-8B-Instruct",
                    "resources": {"limits": limits},
                },
                **predictor,
            }
        },
    }


def llm(annotations: dict[str, str], **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"uri": "hf://Qwen/Qwen3-8B"},
        "template": {"containers": [{"name": "main"}]},
    }
    body.update(spec)
    return {
        "apiVersion": "serving.kserve.io/v1alpha2",
        "kind": "LLMInferenceService",
        "metadata": {"name": "qwen", "namespace": "ml", "annotations": annotations},
        "spec": body,
    }


def gpus_of(*docs: dict[str, Any]) -> tuple[dict[str, tuple[int, int]], tuple[str, ...]]:
    inputs = collect([(f"doc{i}", d) for i, d in enumerate(docs)], "test")
    assert inputs.broken == ()
    (svc,) = inputs.services
    per = {c.name: (c.gpus_per_pod, c.worker_gpus_per_pod) for c in svc.components}
    return per, svc.notes


CASES: dict[str, tuple[list[dict[str, Any]], dict[str, tuple[int, int]], str]] = {
    "isvc-template": (
        [template("two", (GPU, 2)), isvc(claims_of({"name": "g", "resourceClaimTemplateName": "two"}))],
        {"predictor": (2, 0)},
        "2 GPU(s) per pod claimed",
    ),
    "isvc-template-count-defaults-to-one": (
        [template("one", (GPU, None)), isvc(claims_of({"name": "g", "resourceClaimTemplateName": "one"}))],
        {"predictor": (1, 0)},
        "claimed through DRA",
    ),
    "isvc-claims-beside-nvidia-gpu": (
        [template("two", (GPU, 2)), isvc(claims_of({"name": "g", "resourceClaimTemplateName": "two"}), gpus=1)],
        {"predictor": (3, 0)},
        "claimed through DRA",
    ),
    "isvc-other-classes-are-not-gpus": (
        [template("nic", ("nic.example.com", 1), ("mig.nvidia.com", 2)), isvc(claims_of({"name": "n", "resourceClaimTemplateName": "nic"}))],
        {"predictor": (0, 0)},
        "",
    ),
    "isvc-template-elsewhere-noted": (
        [template("two", (GPU, 2), namespace="other"), isvc(claims_of({"name": "g", "resourceClaimTemplateName": "two"}))],
        {"predictor": (0, 0)},
        "ResourceClaimTemplate ml/two is not in the inputs",
    ),
    "isvc-shared-claim-noted": (
        [isvc(claims_of({"name": "g", "resourceClaimName": "shared"}))],
        {"predictor": (0, 0)},
        "not made per pod",
    ),
    "llm-managed-dra-annotation": (
        [llm({"serving.kserve.io/exp-dra-device-class": GPU, "serving.kserve.io/exp-dra-device-count": "4"})],
        {"workload": (4, 0)},
        "4 GPU(s) per pod claimed",
    ),
    "llm-managed-dra-count-defaults-to-one": (
        [llm({"serving.kserve.io/exp-dra-device-class": GPU})],
        {"workload": (1, 0)},
        "claimed through DRA",
    ),
    "llm-managed-dra-other-class": (
        [llm({"serving.kserve.io/exp-dra-device-class": "mig.nvidia.com"})],
        {"workload": (0, 0)},
        "",
    ),
    "llm-managed-dra-every-pod-of-a-group": (
        [
            llm(
                {"serving.kserve.io/exp-dra-device-class": GPU, "serving.kserve.io/exp-dra-device-count": "8"},
                parallelism={"data": 16, "dataLocal": 8},
                worker={"containers": [{"name": "main"}]},
            )
        ],
        {"workload": (8, 8)},
        "and 8 per worker pod",
    ),
    "llm-template-in-prefill": (
        [
            template("two", (GPU, 2)),
            llm({}, prefill={"template": {"containers": [{"name": "main"}], **claims_of({"name": "g", "resourceClaimTemplateName": "two"})}}),
        ],
        {"decode": (0, 0), "prefill": (2, 0)},
        "prefill: 2 GPU(s) per pod",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_claimed_gpus_per_pod(case: str) -> None:
    docs, expected, note = CASES[case]
    per, notes = gpus_of(*docs)
    assert per == expected
    if note:
        assert any(note in n for n in notes), notes
    else:
        assert not any("DRA" in n or "ResourceClaim" in n for n in notes), notes
