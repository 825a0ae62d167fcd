"""Model ids from the URIs people write: read outright (hf://, the Hugging Face cache folders
org--name and models--org--name) or guessed, and a guess always says what it came from."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from placement.demand import A_MODEL, A_MODEL_SIZE
from placement.model import GIB
from placement.model_ids import model_id_for_uri
from placement.models import Headroom, ModelCatalog
from planner.inputs.model_ids import identify, size

# name: (annotations, URI, served name, model id, catalog dtype or None, guessed from)
IDENTIFY = {
    "hf-exact": ({}, "hf://meta-llama/Llama-3.1-8B-Instruct", "", "meta-llama/Llama-3.1-8B-Instruct", "bf16", ""),
    "case-insensitive": ({}, "hf://META-LLAMA/llama-3.1-8b-instruct", "", "meta-llama/Llama-3.1-8B-Instruct", "bf16", ""),
    "quantised-suffix": ({}, "hf://meta-llama/Llama-3.1-70B-Instruct-FP8", "", "meta-llama/Llama-3.1-70B-Instruct", "fp8", ""),
    "hf-cache-folder": ({}, "pvc://c/models--Qwen--Qwen3-8B/snapshots/abc", "", "Qwen/Qwen3-8B", "bf16", ""),
    "org--name-folder": ({}, "s3://m/deepseek-ai--DeepSeek-R1", "", "deepseek-ai/DeepSeek-R1", "fp8", ""),
    # An id read outright but unknown stays itself: never sized as a look-alike of another org.
    "exact-but-unknown": ({}, "hf://acme/Llama-3.1-8B-Instruct", "", "acme/Llama-3.1-8B-Instruct", None, ""),
    "annotation-wins": ({A_MODEL: "Qwen/Qwen3-8B"}, "hf://meta-llama/Llama-3.1-8B-Instruct", "", "Qwen/Qwen3-8B", "bf16", ""),
    "annotation-unknown": ({A_MODEL: "acme/ranker"}, "hf://Qwen/Qwen3-8B", "", "acme/ranker", None, ""),
    "path-guess": ({}, "s3://bucket/models/Qwen2.5-72B-Instruct-AWQ/", "", "Qwen/Qwen2.5-72B-Instruct", "int4", "s3://bucket/models/Qwen2.5-72B-Instruct-AWQ/"),
    "org-name-in-path-is-a-guess": ({}, "pvc://store/mistralai/Mixtral-8x7B-Instruct-v0.1", "", "mistralai/Mixtral-8x7B-Instruct-v0.1", "bf16", "pvc://store/mistralai/Mixtral-8x7B-Instruct-v0.1"),
    "served-name-known": ({}, "pvc://llm-pvc", "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "bf16", "spec.model.name Qwen/Qwen2.5-7B-Instruct"),
    "served-name-unknown": ({}, "pvc://gpt-oss-20b-pvc", "RedHatAI/gpt-oss-20b", "RedHatAI/gpt-oss-20b", None, "spec.model.name RedHatAI/gpt-oss-20b"),
    "path-itself": ({}, "gs://kfserving-examples/models/tensorflow/flowers", "", "models/tensorflow/flowers", None, "gs://kfserving-examples/models/tensorflow/flowers"),
    "nothing": ({}, "", "", "", None, ""),
}  # fmt: skip


@pytest.mark.parametrize("case", list(IDENTIFY), ids=list(IDENTIFY))
def test_identify(case: str, models: ModelCatalog) -> None:
    annotations, uri, served, model_id, dtype, guessed = IDENTIFY[case]
    ref = identify(models, annotations, uri, served)
    assert ref.model_id == model_id
    assert (ref.info.dtype if ref.info else None) == dtype
    assert ref.guessed_from == guessed


@pytest.mark.parametrize(
    ("annotations", "uri", "weights", "source"),
    [
        pytest.param({}, "hf://meta-llama/Llama-3.1-8B-Instruct", 16_060_000_000, "catalog", id="catalog"),
        pytest.param({A_MODEL_SIZE: "40Gi"}, "hf://acme/custom", 40 * GIB, "annotation", id="annotation"),
        pytest.param({}, "hf://acme/custom", None, "unknown model", id="unknown"),
    ],
)  # fmt: skip
def test_size_keeps_the_identified_id(
    annotations: dict[str, str], uri: str, weights: int | None, source: str, models: ModelCatalog
) -> None:
    ref = identify(models, annotations, uri)
    sizing = size(annotations, ref, 1, Headroom(), models)
    assert sizing.model_id == ref.model_id
    assert sizing.weights_bytes == weights
    assert sizing.source.startswith(source)


_SEGMENTS = st.sampled_from(
    [
        "meta-llama",
        "Llama-3.1-8B-Instruct",
        "llama-3.1-70b-instruct-fp8",
        "models--Qwen--Qwen3-8B",
        "deepseek-ai--DeepSeek-R1",
        "snapshots",
        "abc123",
        "acme",
        "ranker:v3",
        "--",
        "",
    ]
)


@given(
    scheme=st.sampled_from(["hf://", "s3://", "gs://", "pvc://", "HF://", ""]),
    segments=st.lists(_SEGMENTS, max_size=5),
)
def test_a_uri_alone_is_identified_as_the_core_identifies_it(
    scheme: str, segments: list[str], models: ModelCatalog
) -> None:
    """The node agent publishes a LocalModelCache's weights under ``model_id_for_uri``: the
    planner, given the same URI and nothing else, recommends the same ``vramfit.io/model``."""
    uri = scheme + "/".join(segments)
    ref = identify(models, {}, uri)
    model_id, read = model_id_for_uri(models, uri)
    assert ref.model_id == model_id
    if model_id:
        assert read == (not ref.guessed_from)
