"""Model sizing (catalog lookup, quantisation suffixes, annotation overrides, vLLM headroom)
and the decision frame's recommendation against the cold-start budget."""

from __future__ import annotations

import pytest

from placement.fields import InputError, Problem
from placement.model import GIB
from placement.models import Headroom, ModelCatalog, lookup, size_model, vram_per_gpu
from planner.frame import Recommendation, ServiceFrame, frame_service
from planner.inputs.catalog import Catalog
from planner.inputs.kserve import LocalModelCache, parse_inference_service
from planner.inputs.traffic import Traffic, parse_duration, parse_traffic
from planner.packing.solve import SolveOptions
from planner.packing.units import DemandSettings, component_demand
from planner.plan import Plan

LOOKUPS = [
    pytest.param(
        "hf://meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct", "bf16", id="hf"
    ),
    pytest.param(
        "hf://meta-llama/Llama-3.1-8B-Instruct:main",
        "meta-llama/Llama-3.1-8B-Instruct",
        "bf16",
        id="hf-revision",
    ),
    pytest.param(
        "s3://bucket/models/Qwen2.5-72B-Instruct-AWQ/",
        "Qwen/Qwen2.5-72B-Instruct",
        "int4",
        id="s3-awq",
    ),
    pytest.param(
        "pvc://store/mistralai/Mixtral-8x7B-Instruct-v0.1",
        "mistralai/Mixtral-8x7B-Instruct-v0.1",
        "bf16",
        id="pvc-org-name",
    ),
    pytest.param(
        "gs://b/deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-R1", "fp8", id="deepseek-fp8"
    ),
    pytest.param(
        "hf://meta-llama/Llama-3.1-70B-Instruct-FP8",
        "meta-llama/Llama-3.1-70B-Instruct",
        "fp8",
        id="fp8-suffix",
    ),
    pytest.param("google/gemma-3-27b-it", "google/gemma-3-27b-it", "bf16", id="plain-id"),
    pytest.param("microsoft/phi-4", "microsoft/phi-4", "bf16", id="phi"),
]


@pytest.mark.parametrize(("text", "model_id", "dtype"), LOOKUPS)
def test_lookup(models: ModelCatalog, text: str, model_id: str, dtype: str) -> None:
    info = lookup(models, text)
    assert info is not None
    assert (info.model_id, info.dtype) == (model_id, dtype)


@pytest.mark.parametrize(
    "text",
    ["s3://bucket/run-17/", "oci://registry/acme/ranker:v3", "hf://meta-llama/Llama-2-7b-chat-hf"],
)
def test_unknown_models_are_not_guessed(models: ModelCatalog, text: str) -> None:
    assert lookup(models, text) is None
    sizing = size_model({}, text, 1, Headroom(), models)
    assert sizing.vram_per_gpu is None and sizing.weights_bytes is None
    assert "unknown model" in sizing.source


def test_vllm_headroom_arithmetic() -> None:
    # 140 GiB over 4 GPUs: 35 + 3.5 KV + 2 runtime = 40.5 GiB, / 0.9 = 45 GiB.
    assert vram_per_gpu(140 * GIB, 4, Headroom()) == 45 * GIB
    # Small models keep at least 1 GiB of KV cache.
    assert vram_per_gpu(2 * GIB, 1, Headroom(gpu_memory_utilization=1.0)) == 5 * GIB


def test_annotation_overrides_win(models: ModelCatalog) -> None:
    uri = "hf://meta-llama/Llama-3.1-8B-Instruct"
    by_vram = size_model({"vramfit.io/vram-per-gpu": "30Gi"}, uri, 1, Headroom(), models)
    assert by_vram.vram_per_gpu == 30 * GIB and by_vram.weights_bytes is not None
    by_size = size_model({"vramfit.io/model-size": "9Gi"}, uri, 1, Headroom(), models)
    assert by_size.weights_bytes == 9 * GIB
    assert by_size.vram_per_gpu == vram_per_gpu(9 * GIB, 1, Headroom())
    with pytest.raises(ValueError, match=r"annotation vramfit\.io/model-size"):
        size_model({"vramfit.io/model-size": "lots"}, uri, 1, Headroom(), models)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90.0), ("2m", 120.0), ("1h", 3600.0), (45, 45.0), ("1.5m", 90.0), ("250ms", 0.25)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text, "x") == seconds


@pytest.mark.parametrize("text", ["soon", "-5s", True, "5 days", float("nan"), float("inf")])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match=r"^x: "):
        parse_duration(text, "x")


def test_traffic_file_errors_name_each_field_once(traffic: Traffic) -> None:
    raw = {
        "defaults": {"coldStartBudget": "zz"},
        "storage": {"s3": "abc"},
        "services": {"a/b": {"idleFraction": 3}},
    }
    with pytest.raises(InputError) as err:
        parse_traffic(raw, "f.yaml", traffic)
    assert err.value.source == "f.yaml"
    assert [str(p) for p in err.value.problems] == [
        "defaults.coldStartBudget: expected a finite duration such as 90s, 15m, 1h30m or a "
        "number of seconds, got 'zz'",
        "storage.s3: 'abc' is not a valid quantity (expected a Kubernetes quantity such "
        "as 70Gi, 80G or 1.5e9)",
        "services[a/b].idleFraction: expected a number >= 0 and <= 1, got 3",
    ]


def _frame(
    *,
    uri: str,
    min_replicas: int,
    profile: dict[str, object],
    catalog: Catalog,
    models: ModelCatalog,
    traffic: Traffic,
) -> ServiceFrame:
    doc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "svc", "namespace": "ns"},
        "spec": {
            "predictor": {
                "minReplicas": min_replicas,
                "maxReplicas": 2,
                "model": {
                    "modelFormat": {"name": "huggingface"},
                    "storageUri": uri,
                    "resources": {"limits": {"nvidia.com/gpu": "1", "cpu": "4", "memory": "16Gi"}},
                },
            }
        },
    }
    problems: list[Problem] = []
    isvc = parse_inference_service(doc, "t", problems)
    assert isvc is not None
    tr = parse_traffic({"services": {"ns/svc": profile}}, "t", traffic)
    d = component_demand(
        isvc,
        isvc.components[0],
        catalog=catalog,
        models=models,
        traffic=tr,
        settings=DemandSettings(),
        problems=problems,
    )
    assert d is not None and not problems
    plan = Plan({}, (d,), catalog, SolveOptions())
    caches = (LocalModelCache("c", "hf://Qwen/Qwen3-8B", 0, ()),)
    return frame_service("ns/svc", [d], plan, tr, caches)


FRAMES = [
    # Qwen3-8B is cached locally: ~36 s cold start.
    pytest.param(
        "hf://Qwen/Qwen3-8B",
        1,
        {"idleFraction": 0.5, "coldStartBudget": "60s"},
        Recommendation.SCALE_TO_ZERO,
        "set minReplicas: 0",
        id="cached-idle-within-budget",
    ),
    pytest.param(
        "hf://Qwen/Qwen3-8B",
        0,
        {"idleFraction": 0.0, "coldStartBudget": "60s"},
        Recommendation.KEEP_WARM,
        "set minReplicas: 1",
        id="never-idle",
    ),
    pytest.param(
        "hf://Qwen/Qwen3-8B",
        0,
        {"idleFraction": 0.5, "coldStartBudget": "10s"},
        Recommendation.KEEP_WARM,
        "set minReplicas: 1",
        id="budget-too-tight",
    ),
    # From the hub at 60 MB/s: ~5 min, but ~36 s once cached.
    pytest.param(
        "hf://Qwen/Qwen2.5-7B-Instruct",
        1,
        {"idleFraction": 0.5, "coldStartBudget": "60s"},
        Recommendation.CACHE_THEN_SCALE_TO_ZERO,
        "add a LocalModelCache",
        id="cache-first",
    ),
    pytest.param(
        "hf://Qwen/Qwen2.5-7B-Instruct",
        1,
        {"idleFraction": 0.5, "coldStartBudget": "10m"},
        Recommendation.SCALE_TO_ZERO,
        "set minReplicas: 0",
        id="slow-but-within-budget",
    ),
    pytest.param(
        "s3://b/own-model/",
        1,
        {"idleFraction": 0.5},
        Recommendation.SIZE_UNKNOWN,
        "vramfit.io/model-size",
        id="unknown-size",
    ),
]


@pytest.mark.parametrize(("uri", "min_replicas", "profile", "expected", "action"), FRAMES)
def test_recommendation(
    *,
    uri: str,
    min_replicas: int,
    profile: dict[str, object],
    expected: Recommendation,
    action: str,
    catalog: Catalog,
    models: ModelCatalog,
    traffic: Traffic,
) -> None:
    f = _frame(
        uri=uri,
        min_replicas=min_replicas,
        profile=profile,
        catalog=catalog,
        models=models,
        traffic=traffic,
    )
    assert f.recommendation is expected
    assert action in f.action
    if f.idle_fraction and f.price_per_gpu_hour:
        assert f.scale_to_zero_savings_per_day == pytest.approx(
            24 * f.idle_fraction * f.price_per_gpu_hour * max(1, min_replicas)
        )
