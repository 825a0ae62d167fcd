"""What the webhook derives for a KServe pod: the model read from the pod, the annotations it
fills, the affinity it adds, and the pods it leaves alone (with a reason)."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest

from documents import parse_document
from placement.affinity import GFD_MEMORY, GFD_PRODUCT, REQUIRED
from placement.derive import (
    A_DERIVED,
    R_INVALID_AFFINITY,
    R_INVALID_POD,
    R_NO_MODEL,
    R_UNKNOWN_MODEL,
    Outcome,
    derive,
)
from placement.kserve_pod import kserve_ref
from placement.model import GIB
from placement.models import (
    BUILTIN_CATALOG,
    Headroom,
    ModelCatalog,
    lookup,
    parse_model_catalog,
    vram_per_gpu,
)
from placement.shape import MIB
from tests.placement.kserve_pods import (
    LLAMA_8B,
    LLAMA_70B,
    container,
    isvc_pod,
    llmisvc_pod,
    with_changes,
)

HEADROOM = Headroom()


@pytest.fixture(scope="module")
def model_catalog() -> ModelCatalog:
    """The shipped catalog, read as every component reads it."""
    text = resources.files("placement").joinpath(BUILTIN_CATALOG).read_text(encoding="utf-8")
    return parse_model_catalog(parse_document(text, "catalog"), "catalog")


def _mib(n: int) -> int:
    return -(-n // MIB)


@pytest.mark.parametrize(
    ("pod", "kind", "uri", "names", "shards"),
    [
        pytest.param(isvc_pod(), "InferenceService", LLAMA_70B, (), 2, id="isvc-annotation-uri"),
        pytest.param(
            llmisvc_pod(gpus=4),
            "LLMInferenceService",
            LLAMA_70B,
            ("meta-llama/Llama-3.1-70B-Instruct",),
            4,
            id="llmisvc-bash-script-tp",
        ),
        pytest.param(
            llmisvc_pod(
                gpus=8,
                script="vllm serve /mnt/models --tensor-parallel-size=8 --pipeline-parallel-size=2",
            ),
            "LLMInferenceService",
            LLAMA_70B,
            (),
            16,
            id="llmisvc-multi-node-tp-times-pp",
        ),
        pytest.param(
            {
                "metadata": {"labels": {"serving.kserve.io/inferenceservice": "q"}},
                "spec": {
                    "containers": [
                        container(
                            1, env=[{"name": "STORAGE_URI", "value": "gs://bucket/Qwen/Qwen2.5-7B"}]
                        )
                    ]
                },
            },
            "InferenceService",
            "gs://bucket/Qwen/Qwen2.5-7B",
            (),
            1,
            id="custom-container-storage-uri-env",
        ),
        pytest.param(
            {"spec": {"containers": [container(1, args=["--model_id=Qwen/Qwen2.5-7B-Instruct"])]}},
            "",
            "",
            ("Qwen/Qwen2.5-7B-Instruct",),
            1,
            id="plain-pod-model-flag",
        ),
        pytest.param(
            {"spec": {"containers": [container(1, args=["bash -c 'unbalanced"])]}},
            "",
            "",
            (),
            1,
            id="unparseable-script-is-words",
        ),
        pytest.param({"spec": "nonsense"}, "", "", (), None, id="garbage-spec-reads-nothing"),
    ],
)
def test_kserve_ref(
    pod: dict[str, Any], kind: str, uri: str, names: tuple[str, ...], shards: int | None
) -> None:
    gpus = 0 if not isinstance(pod.get("spec"), dict) else 1
    for c in pod["spec"].get("containers", []) if isinstance(pod.get("spec"), dict) else []:
        gpus = int(((c.get("resources") or {}).get("limits") or {}).get("nvidia.com/gpu", gpus))
    ref = kserve_ref(pod, gpus)
    assert (ref.kind, ref.storage_uri, ref.model_names, ref.shards) == (kind, uri, names, shards)


def _vram(uri: str, shards: int, catalog: ModelCatalog) -> int:
    info = lookup(catalog, uri)
    assert info is not None
    return vram_per_gpu(info.weights_bytes, shards, HEADROOM)


def test_isvc_pod_gets_every_annotation_and_affinity(model_catalog: ModelCatalog) -> None:
    d = derive(isvc_pod(LLAMA_8B, gpus=1), model_catalog, HEADROOM)
    info = lookup(model_catalog, LLAMA_8B)
    assert info is not None
    need = _vram(LLAMA_8B, 1, model_catalog)
    assert d.outcome is Outcome.MUTATED
    assert d.annotations == {
        "vramfit.io/vram-per-gpu": f"{_mib(need)}Mi",
        "vramfit.io/model": "meta-llama/Llama-3.1-8B-Instruct",
        "vramfit.io/model-size": f"{_mib(info.weights_bytes)}Mi",
        A_DERIVED: "model,model-size,vram-per-gpu",
    }
    assert d.required == {
        "nodeSelectorTerms": [
            {
                "matchExpressions": [
                    {"key": GFD_MEMORY, "operator": "Gt", "values": [str(_mib(need) - 1)]}
                ]
            }
        ]
    }


@pytest.mark.parametrize(
    ("pod", "annotations", "memory_mib"),
    [
        pytest.param(
            with_changes(isvc_pod(), **{"vramfit.io/vram-per-gpu": "70Gi"}),
            {"vramfit.io/model": "meta-llama/Llama-3.1-70B-Instruct", A_DERIVED: "model"},
            70 * 1024,
            id="hand-written-need-only-model-derived",
        ),
        pytest.param(
            with_changes(
                isvc_pod(),
                **{"vramfit.io/vram-per-gpu": "70Gi", "vramfit.io/model": "llama-prod"},
            ),
            {},
            70 * 1024,
            id="everything-written-only-affinity",
        ),
        pytest.param(
            with_changes(isvc_pod("s3://models/custom/v7"), **{"vramfit.io/model-size": "60Gi"}),
            {
                "vramfit.io/vram-per-gpu": f"{_mib(vram_per_gpu(60 * GIB, 2, HEADROOM))}Mi",
                "vramfit.io/model": "custom/v7",
                A_DERIVED: "model,vram-per-gpu",
            },
            _mib(vram_per_gpu(60 * GIB, 2, HEADROOM)),
            id="model-size-written-need-derived",
        ),
    ],
)
def test_written_values_are_kept(
    pod: dict[str, Any], annotations: dict[str, str], memory_mib: int, model_catalog: ModelCatalog
) -> None:
    d = derive(pod, model_catalog, HEADROOM)
    assert d.outcome is Outcome.MUTATED
    assert d.annotations == annotations
    assert d.required is not None
    (term,) = d.required["nodeSelectorTerms"]
    assert term["matchExpressions"] == [
        {"key": GFD_MEMORY, "operator": "Gt", "values": [str(memory_mib - 1)]}
    ]


def test_products_become_a_product_requirement(model_catalog: ModelCatalog) -> None:
    pod = with_changes(
        isvc_pod(),
        **{"vramfit.io/vram-per-gpu": "70Gi", "vramfit.io/gpu-product": "NVIDIA H100 80GB HBM3"},
    )
    d = derive(pod, model_catalog, HEADROOM)
    assert d.required is not None
    assert {
        "key": GFD_PRODUCT,
        "operator": "In",
        "values": ["NVIDIA-H100-80GB-HBM3"],
    } in d.required["nodeSelectorTerms"][0]["matchExpressions"]


def test_applying_twice_changes_nothing(model_catalog: ModelCatalog) -> None:
    pod = isvc_pod()
    first = derive(pod, model_catalog, HEADROOM)
    pod = with_changes(pod, **first.annotations)
    pod["spec"]["affinity"] = {"nodeAffinity": {REQUIRED: first.required}}
    assert derive(pod, model_catalog, HEADROOM).outcome is Outcome.COMPLETE


@pytest.mark.parametrize(
    ("pod", "reason", "says"),
    [
        pytest.param(
            isvc_pod("s3://bucket/our-secret-model"),
            R_UNKNOWN_MODEL,
            "'s3://bucket/our-secret-model' is not in the model catalog",
            id="unknown-model",
        ),
        pytest.param(
            {"metadata": {"name": "p", "namespace": "n"}, "spec": {"containers": [container(1)]}},
            R_NO_MODEL,
            "names no model",
            id="no-model",
        ),
        pytest.param(
            with_changes(isvc_pod(), **{"vramfit.io/vram-per-gpu": "lots"}),
            R_INVALID_POD,
            "vramfit.io/vram-per-gpu",
            id="bad-annotation",
        ),
        pytest.param(
            isvc_pod(affinity={"nodeAffinity": {REQUIRED: {"nodeSelectorTerms": "all"}}}),
            R_INVALID_AFFINITY,
            "nodeSelectorTerms",
            id="bad-affinity",
        ),
    ],
)
def test_pods_it_cannot_size_are_left_unchanged_with_a_reason(
    pod: dict[str, Any], reason: str, says: str, model_catalog: ModelCatalog
) -> None:
    d = derive(pod, model_catalog, HEADROOM)
    assert d.outcome is Outcome.NOT_DERIVED
    assert d.reason == reason
    assert says in d.message
    assert "admitted pod" in d.message and "unchanged" in d.message
    assert d.annotations == {} and d.required is None


def test_a_pod_without_gpus_is_not_touched(model_catalog: ModelCatalog) -> None:
    pod = {"metadata": {"name": "web"}, "spec": {"containers": [container(None)]}}
    assert derive(pod, model_catalog, HEADROOM).outcome is Outcome.NOT_GPU
