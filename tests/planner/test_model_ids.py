"""Model ids from the URIs people write: read outright (hf://, the Hugging Face cache folders
org--name and models--org--name) or guessed, and a guess always says what it came from."""

from __future__ import annotations

import pytest

from placement.demand import A_MODEL, A_MODEL_SIZE
from placement.model import GIB
from placement.models import Headroom, ModelCatalog
from planner.inputs.model_ids import identify, model_id_in_uri, size

# name: (URI, the id it names outright, or None)
IN_URI = {
    "hf": ("hf://meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"),
    "hf-revision": ("hf://Qwen/Qwen3-8B:9c925d64d72725edaf899c6cb9c377fd0709d9c5", "Qwen/Qwen3-8B"),
    "hf-at-revision": ("hf://Qwen/Qwen3-8B@main", "Qwen/Qwen3-8B"),
    "hf-upper-scheme": ("HF://google/gemma-3-27b-it", "google/gemma-3-27b-it"),
    "hf-no-name": ("hf://meta-llama", None),
    "s3-org--name": ("s3://models/meta-llama--Llama-3.1-70B-Instruct/", "meta-llama/Llama-3.1-70B-Instruct"),
    "gs-hf-cache": ("gs://b/hub/models--Qwen--Qwen3-8B", "Qwen/Qwen3-8B"),
    "pvc-hf-cache-snapshot": (
        "pvc://cache/hub/models--mistralai--Mistral-7B-Instruct-v0.3/snapshots/e0bc86c2",
        "mistralai/Mistral-7B-Instruct-v0.3",
    ),
    "https-org--name": ("https://models.acme.io/files/google--gemma-3-27b-it", "google/gemma-3-27b-it"),
    "plain-path": ("s3://bucket/models/Qwen2.5-72B-Instruct-AWQ/", None),
    "org-slash-name-in-path": ("pvc://store/mistralai/Mixtral-8x7B-Instruct-v0.1", None),
    "three-dashes-parts": ("s3://b/a--b--c", None),
    "empty-half": ("s3://b/--name", None),
    "oci": ("oci://registry.acme.io/models/ranker:v3", None),
}  # fmt: skip


@pytest.mark.parametrize("case", list(IN_URI), ids=list(IN_URI))
def test_model_id_in_uri(case: str) -> None:
    uri, model_id = IN_URI[case]
    assert model_id_in_uri(uri) == model_id


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
