"""Parsing real-world shaped InferenceServices: both predictor shapes, multi-node, canary,
transformers with GPUs, pinning; one clear error per problem in bad manifests, a note for
every unknown field, and a broken object or file listed without stopping the others."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from placement.fields import Problem
from placement.model import GIB, NvlinkMode
from placement.models import ModelCatalog
from planner.inputs.catalog import Catalog
from planner.inputs.kserve import parse_inference_service
from planner.inputs.sources import read_files
from planner.inputs.traffic import Traffic
from planner.packing.units import DemandSettings, Scenario, component_demand

FIXTURES = Path(__file__).parent / "fixtures"


def _demands(path: str, catalog: Catalog, models: ModelCatalog, traffic: Traffic) -> dict[str, Any]:
    inputs = read_files([FIXTURES / path])
    problems: list[Problem] = []
    out = {}
    for isvc in inputs.services:
        for comp in isvc.components:
            d = component_demand(
                isvc,
                comp,
                catalog=catalog,
                models=models,
                traffic=traffic,
                settings=DemandSettings(),
                problems=problems,
            )
            out[f"{isvc.key}/{comp.name}"] = d
    assert problems == []
    return out


def test_model_shape_hf(catalog: Catalog, models: ModelCatalog, traffic: Traffic) -> None:
    d = _demands("hf_isvc.yaml", catalog, models, traffic)["default/huggingface-llama2/predictor"]
    assert d is not None
    assert d.gpus_per_pod == 1 and d.pods_per_replica == 1
    assert d.cpu_milli == 6000 and d.memory_bytes == 24 * GIB
    # Llama-2-7b is not in the catalog: reported, not guessed.
    assert d.vram_per_gpu is None
    assert any("model size unknown" in n for n in d.notes)


def test_fluid_sample_pins_instance_type_and_scales_to_zero(
    catalog: Catalog, models: ModelCatalog, traffic: Traffic
) -> None:
    d = _demands("fluid_isvc.yaml", catalog, models, traffic)[
        "kserve-fluid-demo/fluid-llama-3-8b/predictor"
    ]
    assert d is not None
    assert d.scale_to_zero and d.replicas[Scenario.MIN] == 0
    assert d.replicas[Scenario.COLD_BURST] == 1
    # Sized from the catalog with the manifest's own --gpu-memory-utilization=0.95.
    assert d.sizing.model_id == "meta-llama/Llama-3.1-8B-Instruct"
    assert d.vram_per_gpu is not None and d.vram_per_gpu < 21 * GIB
    # g5.8xlarge is not in the default catalog: every pool is excluded by the nodeSelector.
    assert d.allowed == () and len(d.pinned_out) == len(catalog.pools)


def test_legacy_tensorflow_shape(catalog: Catalog, models: ModelCatalog, traffic: Traffic) -> None:
    inputs = read_files([FIXTURES / "autoscale_gpu.yaml"])
    (isvc,) = inputs.services
    (comp,) = isvc.components
    assert comp.shape == "tensorflow"
    assert comp.gpus_per_pod == 1
    assert comp.storage_uri == "gs://kfserving-examples/models/tensorflow/flowers"


def test_canary_adds_rollout_surge(
    catalog: Catalog, models: ModelCatalog, traffic: Traffic
) -> None:
    d = _demands("canary.yaml", catalog, models, traffic)["default/my-model/predictor"]
    assert d is not None
    assert d.replicas == {
        Scenario.MIN: 2,
        Scenario.PEAK: 4,
        Scenario.ROLLOUT: 5,
        Scenario.COLD_BURST: 2,
    }


def test_multinode_groups(catalog: Catalog, models: ModelCatalog, traffic: Traffic) -> None:
    ds = _demands("multinode.yaml", catalog, models, traffic)
    pp2 = ds["default/huggingface-llama3-8b-pp2/predictor"]
    assert pp2 is not None
    assert (pp2.gpus_per_pod, pp2.pods_per_replica, pp2.pipeline_parallel) == (1, 2, 2)
    tp16 = ds["default/huggingface-llama3-70b-tp16/predictor"]
    assert tp16 is not None
    # KServe rewrites TP=16 with 8 GPUs per pod into TP=8 x PP=2: two pods of 8 NVLinked GPUs.
    assert (tp16.tensor_parallel, tp16.pipeline_parallel) == (8, 2)
    assert (tp16.gpus_per_pod, tp16.pods_per_replica) == (8, 2)
    assert tp16.nvlink is NvlinkMode.REQUIRED
    assert tp16.deployment_mode == "Standard"
    assert tp16.sizing.model_id == "meta-llama/Llama-3.1-70B-Instruct"
    # 141 GB of weights over 16 GPUs.
    assert tp16.vram_per_gpu is not None and 10 * GIB < tp16.vram_per_gpu < 14 * GIB


def test_list_with_tp4_and_gpu_transformer(
    catalog: Catalog, models: ModelCatalog, traffic: Traffic
) -> None:
    ds = _demands("llama70b_tp4.yaml", catalog, models, traffic)
    pred = ds["llm/llama-70b/predictor"]
    assert pred is not None
    assert pred.tensor_parallel == 4 and pred.nvlink is NvlinkMode.REQUIRED
    # TP 4 needs NVLink: PCIe-only pools are ruled out, with a reason.
    assert "aws-g6e.12xlarge" not in pred.allowed
    assert dict(pred.rejected)["aws-g6e.12xlarge"].startswith("needs 4 GPUs on one NVLink island")
    assert "aws-p4de.24xlarge" in pred.allowed
    trans = ds["llm/llama-70b/transformer"]
    assert trans is not None and trans.gpus_per_pod == 1


def _isvc(**predictor: Any) -> dict[str, Any]:
    model = {
        "modelFormat": {"name": "huggingface"},
        "storageUri": "hf://Qwen/Qwen3-8B",
        "resources": {"limits": {"nvidia.com/gpu": "1"}},
    }
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "x", "namespace": "ns"},
        "spec": {"predictor": {"model": model, **predictor}},
    }


BAD = [
    pytest.param(
        _isvc(minReplicas=-1),
        "spec.predictor.minReplicas",
        "number >= 0, got -1",
        id="negative-min",
    ),
    pytest.param(
        _isvc(maxReplicas=-3),
        "spec.predictor.maxReplicas",
        "number >= 0, got -3",
        id="negative-max",
    ),
    pytest.param(
        _isvc(minReplicas=3, maxReplicas=2),
        "spec.predictor.maxReplicas",
        "below minReplicas",
        id="max-below-min",
    ),
    pytest.param(
        _isvc(canaryTrafficPercent=150),
        "canaryTrafficPercent",
        "number 0..100, got 150",
        id="canary-over-100",
    ),
    pytest.param(
        _isvc(minReplicas="two"),
        "spec.predictor.minReplicas",
        "expected a whole number, got 'two'",
        id="replicas-not-int",
    ),
    pytest.param(
        _isvc(
            model={
                "modelFormat": {"name": "x"},
                "storageUri": "s3://a/b",
                "resources": {"limits": {"nvidia.com/gpu": "1.5"}},
            }
        ),
        "nvidia.com/gpu",
        "whole number",
        id="fractional-gpu",
    ),
    pytest.param(
        _isvc(workerSpec={"tensorParallelSize": 0}),
        "workerSpec.tensorParallelSize",
        "number >= 1, got 0",
        id="tp-zero",
    ),
]


@pytest.mark.parametrize(("doc", "where", "message"), BAD)
def test_bad_manifest_gives_one_clear_error(doc: dict[str, Any], where: str, message: str) -> None:
    problems: list[Problem] = []
    assert parse_inference_service(doc, "test.yaml", problems) is None
    assert len(problems) == 1, problems
    text = str(problems[0])
    assert "test.yaml: InferenceService ns/x" in text
    assert where in text and message in text


# name: (the manifest, the path of the one unknown field it has)
UNKNOWN = [
    pytest.param(_isvc(replicas=2), "spec.predictor.replicas", id="unknown-component-field"),
    pytest.param(
        _isvc(
            model={
                "modelFormat": {"name": "x"},
                "storageUrl": "s3://a/b",
                "resources": {"limits": {"nvidia.com/gpu": "1"}},
            }
        ),
        "spec.predictor.model.storageUrl",
        id="typo-in-model",
    ),
    pytest.param(_isvc(someNewField={"a": 1}), "spec.predictor.someNewField", id="new-field"),
    pytest.param(
        {**_isvc(), "metadata": {"name": "x", "namespace": "ns", "newMeta": 1}},
        "metadata.newMeta",
        id="unknown-metadata",
    ),
]


@pytest.mark.parametrize(("doc", "where"), UNKNOWN)
def test_an_unknown_field_is_a_note_naming_its_path(doc: dict[str, Any], where: str) -> None:
    problems: list[Problem] = []
    notes: list[Problem] = []
    isvc = parse_inference_service(doc, "test.yaml", problems, notes)
    assert isvc is not None and problems == []
    assert [str(n) for n in notes] == [
        f"test.yaml: InferenceService ns/x: {where}: unknown field, ignored"
    ]


def test_a_broken_object_or_file_never_stops_the_others(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(_isvc(minReplicas=-1)))
    (tmp_path / "b.yaml").write_text("apiVersion: v1\nkind: [unclosed\n")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(_isvc(bogus=1)).replace("name: x", "name: y"))
    inputs = read_files([tmp_path])
    assert [s.key for s in inputs.services] == ["ns/y"]
    # Files that cannot be read come first, then every object's problems, one each.
    messages = [str(p) for p in inputs.problems()]
    assert len(messages) == 2, messages
    assert messages[0].startswith(f"{tmp_path / 'b.yaml'}: not valid YAML at line 3, column 1: ")
    assert "ns/x: spec.predictor.minReplicas" in messages[1]
    assert [b.object for b in inputs.broken] == ["", "InferenceService ns/x"]
    assert [str(n) for n in inputs.notes] == [
        f"{tmp_path / 'c.yaml'}: InferenceService ns/y: spec.predictor.bogus: unknown field, "
        "ignored"
    ]


def test_missing_path_is_named(tmp_path: Path) -> None:
    inputs = read_files([tmp_path / "nope"])
    assert inputs.services == ()
    assert [str(p) for p in inputs.problems()] == [f"{tmp_path / 'nope'}: no such file or folder"]


# name: (file name, text, services read or the problem named)
FILES: dict[str, tuple[str, str | bytes, list[str] | str]] = {
    "kubectl-json-list": (
        "list.json",
        json.dumps({"apiVersion": "v1", "kind": "List", "items": [_isvc()]}),
        ["ns/x"],
    ),
    "yaml-stream": ("two.yaml", yaml.safe_dump(_isvc()) + "---\n# empty\n", ["ns/x"]),
    "broken-json": ("bad.json", '{"kind": "List",\n "items": [}', "not valid JSON at line 2"),
    "not-utf8": ("bad.yaml", b"\xff\xfe kind: x", "not UTF-8"),
}


@pytest.mark.parametrize("case", list(FILES), ids=list(FILES))
def test_manifest_files_are_read_by_the_one_loader(case: str, tmp_path: Path) -> None:
    name, text, expected = FILES[case]
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    inputs = read_files([path])
    if isinstance(expected, list):
        assert [s.key for s in inputs.services] == expected
        return
    (problem,) = inputs.problems()
    assert problem.where == str(path) and expected in problem.message
