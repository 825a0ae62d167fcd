"""A folder of manifests as KServe's documentation writes them (``fixtures/kserve-docs``), each
file a named case: both kinds of service, old and new fields, presets, kinds and versions
vramfit does not read, a duplicate and a broken object. The folder is read and planned whole:
every object that can be read is planned, the rest listed, and no group is ever split."""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from planner.cli import EXIT_OK, main
from planner.inputs.sources import Inputs, read_files

DOCS = Path(__file__).parent / "fixtures" / "kserve-docs"
ARGS = ["--time-limit", "2", "--workers", "1"]


@pytest.fixture(scope="module")
def inputs() -> Inputs:
    return read_files([DOCS])


@pytest.fixture(scope="module")
def plan() -> tuple[int, dict[str, Any], str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["--from", str(DOCS), "-o", "json", *ARGS])
    report: dict[str, Any] = json.loads(out.getvalue())
    return rc, report, err.getvalue()


# file: (kind, service, {component: (GPUs of the head pod, pods per replica, min, max)})
PLANNED: dict[str, tuple[str, str, dict[str, tuple[int, int | None, int | None, int]]]] = {
    "isvc-tensorflow-gpu.yaml": ("InferenceService", "default/tensorflow-gpu", {"predictor": (2, None, None, 0)}),
    "isvc-torchserve-bert-gpu.yaml": ("InferenceService", "default/torchserve-bert-v2", {"predictor": (1, None, None, 0)}),
    "isvc-sklearn-legacy.yaml": ("InferenceService", "default/sklearn-irisv2", {"predictor": (0, None, None, 0)}),
    "isvc-sklearn-storage-spec.yaml": ("InferenceService", "default/example-sklearn-isvc", {"predictor": (0, None, None, 0)}),
    "isvc-hf-new-fields.yaml": ("InferenceService", "default/huggingface-qwen3", {"predictor": (1, None, 1, 3)}),
    "isvc-scale-to-zero.yaml": ("InferenceService", "default/llama-3-8b-zero", {"predictor": (1, None, 0, 2)}),
    "isvc-workerspec-multinode.yaml": (
        "InferenceService", "default/huggingface-llama3-70b-tp8pp2", {"predictor": (8, None, None, 0)}
    ),
    "llmisvc-qwen-single-gpu.yaml": ("LLMInferenceService", "default/qwen2-7b-instruct-single", {"workload": (1, 1, 3, 3)}),
    "llmisvc-qwen-prefill-decode.yaml": (
        "LLMInferenceService", "default/qwen2-7b-instruct-pd", {"decode": (1, 1, 1, 1), "prefill": (1, 1, 2, 2)}
    ),
    "llmisvc-deepseek-dp-ep.yaml": ("LLMInferenceService", "default/deepseek-coder-v2", {"workload": (8, 2, 1, 1)}),
    "llmisvc-gpt-oss-baserefs.yaml": ("LLMInferenceService", "default/gpt-oss-20b", {"workload": (1, 1, 2, 2)}),
    "llmisvc-v1alpha1-pipeline.yaml": ("LLMInferenceService", "llm/llama-405b-pp2", {"workload": (8, 2, 1, 1)}),
    "llmisvc-keda-scale-to-zero.yaml": ("LLMInferenceService", "llm/mistral-7b-keda", {"workload": (1, 1, 0, 4)}),
}  # fmt: skip


@pytest.mark.parametrize("case", list(PLANNED), ids=list(PLANNED))
def test_each_manifest_is_read(case: str, inputs: Inputs) -> None:
    kind, key, components = PLANNED[case]
    (svc,) = [s for s in inputs.services if s.key == key]
    assert svc.kind == kind
    got = {
        c.name: (c.gpus_per_pod, c.pods_per_replica, c.min_replicas, c.max_replicas)
        for c in svc.components
    }
    assert got == components


# file: what the run says about it, on stderr and in the report's inputs
SAID = {
    "isvc-hf-new-fields.yaml": "InferenceService default/huggingface-qwen3: spec.predictor.someNewField: unknown field, ignored",
    "unread-versions.yaml": "InferenceService default/flowers-kfserving: apiVersion 'serving.kubeflow.org/v1beta1' is not read",
    "zz-tensorflow-gpu-again.yaml": "InferenceService default/tensorflow-gpu: also defined in",
    "unread-kinds.yaml": "skipped objects vramfit does not read: 1 gateway.networking.k8s.io/v1 Gateway, 1 v1 Secret",
    "llmisvc-broken.yaml": "LLMInferenceService llm/half-data-parallel: spec.parallelism.dataLocal: data and dataLocal must be set together",
    "llmisvc-gpt-oss-baserefs.yaml": "default/gpt-oss-20b workload: model id guessed from spec.model.name RedHatAI/gpt-oss-20b",
}  # fmt: skip


@pytest.mark.parametrize("case", list(SAID), ids=list(SAID))
def test_what_the_run_says_about_each_file(
    case: str, plan: tuple[int, dict[str, Any], str]
) -> None:
    _, report, err = plan
    said = [line for line in err.splitlines() if SAID[case] in line]
    reported = [*report["inputs"]["notes"], *report["warnings"]]
    reported += [p for b in report["inputs"]["broken"] for p in b["problems"]]
    assert len(said) == 1, said
    assert any(SAID[case] in r for r in reported)


def test_a_hugging_face_cache_folder_names_the_model_outright(
    plan: tuple[int, dict[str, Any], str],
) -> None:
    _, report, err = plan
    (svc,) = [s for s in report["services"] if s["name"] == "default/llama-3-8b-zero"]
    assert svc["model_id"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert svc["recommendation"] != "size-unknown"
    assert "llama-3-8b-zero" not in err


def test_the_folder_plans_with_the_broken_object_listed(
    plan: tuple[int, dict[str, Any], str],
) -> None:
    rc, report, err = plan
    assert rc == EXIT_OK
    assert report["inputs"]["inference_services"] == 7
    assert report["inputs"]["llm_inference_services"] == 6
    assert report["inputs"]["llm_inference_service_configs"] == 1
    assert [b["object"] for b in report["inputs"]["broken"]] == [
        "LLMInferenceService llm/half-data-parallel"
    ]
    assert "error: " in err and "half-data-parallel" in err and "(not planned)" in err
    assert report["unplaceable"] == []


def test_no_group_is_split_and_every_group_is_listed(
    plan: tuple[int, dict[str, Any], str],
) -> None:
    _, report, _ = plan
    for name, sc in report["scenarios"].items():
        pools: dict[str, set[str]] = {}
        pods: Counter[str] = Counter()
        for p in sc["placements"]:
            replica = f"{p['inference_service']}/{p['component']}/{p['replica']}/{p['canary']}"
            pools.setdefault(replica, set()).add(p["pool"])
            pods[replica] += 1
        assert all(len(ps) == 1 for ps in pools.values()), name
        groups = {
            f"{g['inference_service']}/{g['component']}/{g['replica']}/{g['canary']}": g
            for g in sc["groups"]
        }
        assert {r for r, n in pods.items() if n > 1} == set(groups), name
        for replica, g in groups.items():
            assert g["pods"] == pods[replica] == 2 and g["gpus_per_pod"] == [8, 8]
            assert len(g["nodes"]) == 2 and g["pool"] in pools[replica]
    shapes = {s["name"]: s["replica_shape"] for s in report["services"]}
    assert shapes["default/deepseek-coder-v2"] == "2 pods x 8 GPUs (one group)"
    assert shapes["default/qwen2-7b-instruct-pd"] == "decode: 1 pod x 1 GPU; prefill: 1 pod x 1 GPU"
