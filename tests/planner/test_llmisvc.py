"""Reading LLMInferenceServices as KServe runs them: pods per replica from the parallelism and
the worker (a LeaderWorkerSet of one leader and its workers), GPUs from the pods' resources,
decode and prefill apart, replicas or scaling, presets merged in order, KServe's validation,
and the demand the planner places."""

from __future__ import annotations

from typing import Any

import pytest

from placement.fields import Problem
from placement.model import GIB, NvlinkMode
from placement.models import ModelCatalog
from planner.frame import frame_service
from planner.inputs.catalog import Catalog
from planner.inputs.sources import Inputs, collect
from planner.inputs.traffic import Traffic, parse_traffic
from planner.packing.solve import SolveOptions
from planner.packing.units import ComponentDemand, DemandSettings, Scenario, component_demand
from planner.plan import Plan

API = "serving.kserve.io/v1alpha2"


def _pod(gpus: int | str | None = 1, **spec: Any) -> dict[str, Any]:
    limits = {} if gpus is None else {"nvidia.com/gpu": str(gpus)}
    return {"containers": [{"name": "main", "resources": {"limits": limits}}], **spec}


def _llm(name: str = "x", namespace: str = "llm", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": {"uri": "hf://Qwen/Qwen3-8B"}, "template": _pod(1)}
    body.update(spec)
    return {
        "apiVersion": API,
        "kind": "LLMInferenceService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


def _config(name: str, namespace: str = "llm", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "LLMInferenceServiceConfig",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _read(*docs: dict[str, Any]) -> Inputs:
    return collect([(f"doc{i}", d) for i, d in enumerate(docs)], "test")


# name: (spec fields, {component: (GPUs of the leader, of each worker, pods per replica, min,
# max)})
SHAPES: dict[str, tuple[dict[str, Any], dict[str, tuple[int, int, int, int, int]]]] = {
    "one-pod-defaults": ({}, {"workload": (1, 0, 1, 1, 1)}),
    "fixed-replicas": ({"replicas": 3}, {"workload": (1, 0, 1, 3, 3)}),
    "gpu-in-requests": (
        {"template": {"containers": [{"name": "main", "resources": {"requests": {"nvidia.com/gpu": 2}}}]}},
        {"workload": (2, 0, 1, 1, 1)},
    ),
    "data-parallel-16-over-8": (
        {"parallelism": {"data": 16, "dataLocal": 8}, "template": _pod(8), "worker": _pod(8)},
        {"workload": (8, 8, 2, 1, 1)},
    ),
    "data-parallel-one-pod": (
        {"parallelism": {"data": 8, "dataLocal": 8}, "template": _pod(8), "worker": _pod(8)},
        {"workload": (8, 8, 1, 1, 1)},
    ),
    "data-parallel-truncates": (
        {"parallelism": {"data": 12, "dataLocal": 8}, "template": _pod(8), "worker": _pod(8)},
        {"workload": (8, 8, 1, 1, 1)},
    ),
    "pipeline-4": (
        {"parallelism": {"pipeline": 4, "tensor": 4}, "template": _pod(4), "worker": _pod(4)},
        {"workload": (4, 4, 4, 1, 1)},
    ),
    "leader-from-worker-without-template": (
        {"parallelism": {"pipeline": 2, "tensor": 8}, "template": None, "worker": _pod(8)},
        {"workload": (8, 8, 2, 1, 1)},
    ),
    "leader-and-workers-differ": (
        {"parallelism": {"pipeline": 3}, "template": _pod(2), "worker": _pod(4)},
        {"workload": (2, 4, 3, 1, 1)},
    ),
    "prefill-and-decode": (
        {"replicas": 1, "prefill": {"replicas": 2, "template": _pod(2)}},
        {"decode": (1, 0, 1, 1, 1), "prefill": (2, 0, 1, 2, 2)},
    ),
    "multi-node-prefill": (
        {"prefill": {"parallelism": {"data": 16, "dataLocal": 8}, "template": _pod(8), "worker": _pod(8)}},
        {"decode": (1, 0, 1, 1, 1), "prefill": (8, 8, 2, 1, 1)},
    ),
    "scaling-hpa": ({"scaling": {"minReplicas": 2, "maxReplicas": 6, "wva": {"hpa": {}}}}, {"workload": (1, 0, 1, 2, 6)}),
    "scaling-min-defaults-to-1": ({"scaling": {"maxReplicas": 4, "keda": {"triggers": [{"type": "cpu"}]}}}, {"workload": (1, 0, 1, 1, 4)}),
    "keda-idle-zero-scales-to-zero": (
        {"scaling": {"minReplicas": 1, "maxReplicas": 4, "keda": {"idleReplicaCount": 0, "triggers": [{"type": "cpu"}]}}},
        {"workload": (1, 0, 1, 0, 4)},
    ),
    "wva-keda-idle-zero": (
        {"scaling": {"minReplicas": 2, "maxReplicas": 4, "wva": {"keda": {"idleReplicaCount": 0}}}},
        {"workload": (1, 0, 1, 0, 4)},
    ),
    "router-and-unknown-sections-ignored": (
        {"router": {"scheduler": {}, "route": {}, "gateway": {}}, "tracing": {}, "storageInitializer": {"enabled": False}},
        {"workload": (1, 0, 1, 1, 1)},
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(SHAPES), ids=list(SHAPES))
def test_workload_shapes(case: str) -> None:
    spec, expected = SHAPES[case]
    inputs = _read(_llm(**spec))
    assert inputs.broken == ()
    (svc,) = inputs.services
    assert svc.kind == "LLMInferenceService" and svc.deployment_mode == "Standard"
    got = {
        c.name: (
            c.gpus_per_pod,
            c.worker_gpus_per_pod,
            c.pods_per_replica,
            c.min_replicas,
            c.max_replicas,
        )
        for c in svc.components
    }
    assert got == expected


# name: (spec fields, the path and message of the one problem)
INVALID: dict[str, tuple[dict[str, Any], str, str]] = {
    "no-model-uri": ({"model": {"name": "n"}}, "spec.model.uri", "missing (required)"),
    "pipeline-and-data": (
        {"parallelism": {"pipeline": 2, "data": 4, "dataLocal": 2}, "worker": _pod(1)},
        "spec.parallelism",
        "cannot set both pipeline and data",
    ),
    "data-without-data-local": (
        {"parallelism": {"data": 4}, "worker": _pod(1)},
        "spec.parallelism.dataLocal",
        "data and dataLocal must be set together",
    ),
    "worker-without-parallelism": ({"worker": _pod(1)}, "spec.worker", "needs data or pipeline parallelism"),
    "replicas-and-scaling": (
        {"replicas": 2, "scaling": {"maxReplicas": 3, "wva": {"hpa": {}}}},
        "spec.scaling",
        "mutually exclusive",
    ),
    "min-above-max": ({"scaling": {"minReplicas": 5, "maxReplicas": 3, "wva": {"hpa": {}}}}, "spec.scaling.minReplicas", "exceeds maxReplicas 3"),
    "idle-not-below-min": (
        {"scaling": {"minReplicas": 1, "maxReplicas": 3, "keda": {"idleReplicaCount": 1}}},
        "spec.scaling.keda.idleReplicaCount",
        "must be below minReplicas 1",
    ),
    "negative-replicas": ({"replicas": -1}, "spec.replicas", "expected a whole number >= 0"),
    "tensor-zero": ({"parallelism": {"tensor": 0}}, "spec.parallelism.tensor", "expected a whole number >= 1"),
    "fractional-gpu": ({"template": _pod("1.5")}, "spec.template.containers[0]", "whole number"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
def test_invalid_services_are_listed_broken(case: str) -> None:
    spec, where, message = INVALID[case]
    inputs = _read(_llm(**spec), _llm("fine"))
    assert [s.key for s in inputs.services] == ["llm/fine"]
    (broken,) = inputs.broken
    assert broken.object == "LLMInferenceService llm/x"
    (problem,) = broken.problems
    assert problem.where == f"doc0: LLMInferenceService llm/x: {where}"
    assert message in problem.message


def test_presets_merge_in_kserve_order() -> None:
    inputs = _read(
        # A well-known preset in KServe's namespace: it comes first.
        _config("kserve-config-llm-template", "kserve", template={"nodeSelector": {"pool": "a"}}),
        # The same name in the service's namespace wins over KServe's.
        _config("gpu-8", "kserve", template=_pod(1)),
        _config("gpu-8", "llm", template=_pod(8), replicas=2),
        _config("spread", "llm", replicas=4, template={"nodeSelector": {"pool": "b"}}),
        _llm(baseRefs=[{"name": "gpu-8"}, {"name": "spread"}], template=None, replicas=5),
    )
    assert inputs.broken == ()
    (svc,) = [s for s in inputs.services]
    (comp,) = svc.components
    assert comp.gpus_per_pod == 8
    assert comp.min_replicas == comp.max_replicas == 5
    assert comp.placement.node_selector == (("pool", "b"),)
    assert svc.notes[0] == (
        "spec merged over the LLMInferenceServiceConfigs kserve-config-llm-template, gpu-8, "
        "spread, in that order"
    )
    assert inputs.llm_configs == 4


def test_a_missing_base_ref_is_a_note() -> None:
    inputs = _read(_llm(baseRefs=[{"name": "nowhere"}]))
    (svc,) = inputs.services
    assert any(n.startswith("baseRef nowhere: no LLMInferenceServiceConfig") for n in svc.notes)


def test_a_broken_preset_breaks_the_services_using_it() -> None:
    inputs = _read(_config("bad", replicas=-2), _llm(baseRefs=[{"name": "bad"}]), _llm("own"))
    assert [s.key for s in inputs.services] == ["llm/own"]
    assert [b.object for b in inputs.broken] == [
        "LLMInferenceServiceConfig llm/bad",
        "LLMInferenceService llm/x",
    ]
    assert [str(p) for p in inputs.broken[1].problems] == [
        "doc1: LLMInferenceService llm/x (merged with bad): spec.replicas: expected a whole "
        "number >= 0, got -2"
    ]


def test_a_preset_may_name_the_model() -> None:
    preset = _config("qwen", model={"uri": "hf://Qwen/Qwen3-8B"}, template=_pod(1))
    inputs = _read(preset, _llm(model=None, template=None, baseRefs=[{"name": "qwen"}]))
    (svc,) = inputs.services
    assert svc.components[0].storage_uri == "hf://Qwen/Qwen3-8B"
    assert _read(_llm(model=None)).broken[0].problems[0].message == "missing (required)"


def test_unknown_fields_are_notes_of_their_own_object() -> None:
    notes: list[Problem] = []
    inputs = _read(
        _config("preset", template=_pod(1), futurePreset=True),
        _llm(baseRefs=[{"name": "preset"}], futureField={"a": 1}, template=_pod(1, futurePod=1)),
    )
    notes = list(inputs.notes)
    assert [str(n) for n in notes] == [
        "doc0: LLMInferenceServiceConfig llm/preset: spec.futurePreset: unknown field, ignored",
        "doc1: LLMInferenceService llm/x: spec.futureField: unknown field, ignored",
        "doc1: LLMInferenceService llm/x: spec.template.futurePod: unknown field, ignored",
    ]


def test_both_served_versions_are_read() -> None:
    old = {**_llm("old"), "apiVersion": "serving.kserve.io/v1alpha1"}
    old["spec"]["model"]["criticality"] = "Critical"
    inputs = _read(old, _llm("new"))
    assert [s.key for s in inputs.services] == ["llm/old", "llm/new"]
    assert inputs.notes == ()


def test_a_name_shared_with_an_inference_service_is_told_apart() -> None:
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "x", "namespace": "llm"},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "huggingface"}}}},
    }
    inputs = _read(_llm(), isvc)
    assert sorted(s.key for s in inputs.services) == ["llm/x", "llm/x (LLMInferenceService)"]


def test_gpu_count_and_memory_share_from_the_pod() -> None:
    main = {
        "name": "main",
        "env": [{"name": "VLLM_ADDITIONAL_ARGS", "value": "--gpu-memory-utilization 0.95"}],
        "resources": {"limits": {"nvidia.com/gpu": "8"}},
    }
    inputs = _read(_llm(parallelism={"tensor": 4}, template={"containers": [main]}))
    (svc,) = inputs.services
    (comp,) = svc.components
    assert comp.gpu_memory_utilization == 0.95
    assert svc.notes == (
        "workload pods ask for 8 GPUs; its parallelism runs 4 vLLM ranks per pod (tensor 4): "
        "planned with 8",
    )


def _demand(
    doc: dict[str, Any], catalog: Catalog, models: ModelCatalog, traffic: Traffic
) -> ComponentDemand:
    (svc,) = _read(doc).services
    problems: list[Problem] = []
    d = component_demand(
        svc,
        svc.components[0],
        catalog=catalog,
        models=models,
        traffic=traffic,
        settings=DemandSettings(),
        problems=problems,
    )
    assert problems == [] and d is not None
    return d


def test_a_data_parallel_expert_replica_is_one_group(
    catalog: Catalog, models: ModelCatalog, traffic: Traffic
) -> None:
    doc = _llm(
        model={"uri": "hf://deepseek-ai/DeepSeek-R1"},
        parallelism={"data": 16, "dataLocal": 8, "expert": True, "tensor": 1},
        template=_pod(8),
        worker=_pod(8),
    )
    d = _demand(doc, catalog, models, traffic)
    assert (d.gpus_per_pod, d.pods_per_replica, d.gpus_per_replica) == (8, 2, 16)
    assert d.shape == "2 pods x 8 GPUs (one group)"
    # 671 GB of FP8 experts spread over 16 ranks: about 42 GB each, not 671.
    assert d.vram_per_gpu is not None and 40 * GIB < d.vram_per_gpu < 60 * GIB
    assert d.nvlink is NvlinkMode.PREFERRED


def test_keda_scales_a_multi_node_service_to_zero(
    catalog: Catalog, models: ModelCatalog, traffic: Traffic
) -> None:
    doc = _llm(
        parallelism={"pipeline": 2, "tensor": 8},
        template=_pod(8),
        worker=_pod(8),
        scaling={
            "minReplicas": 1,
            "maxReplicas": 3,
            "keda": {"idleReplicaCount": 0, "triggers": [{"type": "cpu"}]},
        },
    )
    d = _demand(doc, catalog, models, traffic)
    # Unlike a v1beta1 workerSpec group, a LeaderWorkerSet autoscales.
    assert d.scale_to_zero and d.replicas[Scenario.MIN] == 0
    assert d.replicas[Scenario.PEAK] == 3 and d.replicas[Scenario.COLD_BURST] == 1
    assert d.nvlink is NvlinkMode.REQUIRED


# name: (scaling, idle share of the day, the action's start)
ADVICE = {
    "idle-and-fast": ({"minReplicas": 1, "maxReplicas": 2, "wva": {"hpa": {}}}, 0.5, "set scaling.keda.idleReplicaCount: 0"),
    "already-zero": (
        {"minReplicas": 1, "maxReplicas": 2, "keda": {"idleReplicaCount": 0, "triggers": [{"type": "cpu"}]}},
        0.5,
        "keep scaling.keda.idleReplicaCount: 0",
    ),
    "busy-but-zero": (
        {"minReplicas": 1, "maxReplicas": 2, "keda": {"idleReplicaCount": 0, "triggers": [{"type": "cpu"}]}},
        0.0,
        "busy every hour: keep at least one replica (remove idleReplicaCount: 0)",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(ADVICE), ids=list(ADVICE))
def test_the_advice_names_the_knob_an_llm_service_has(
    case: str, catalog: Catalog, models: ModelCatalog, traffic: Traffic
) -> None:
    scaling, idle, action = ADVICE[case]
    tr = parse_traffic(
        {"services": {"llm/x": {"idleFraction": idle, "coldStartBudget": "1h"}}}, "t", traffic
    )
    d = _demand(_llm(scaling=scaling), catalog, models, tr)
    frame = frame_service("llm/x", [d], Plan({}, (d,), catalog, SolveOptions()), tr, ())
    assert frame.kind == "LLMInferenceService"
    assert frame.action.startswith(action)
