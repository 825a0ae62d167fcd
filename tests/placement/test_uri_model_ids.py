"""The model id a storage URI names, read outright or guessed, and written as the catalog
writes it: the one rule the planner and the node agent share."""

from __future__ import annotations

from importlib import resources

import pytest

from documents import parse_document
from placement.model_ids import (
    BUILTIN_CATALOG,
    ModelCatalog,
    model_id_for_uri,
    model_id_in_uri,
    parse_model_catalog,
)


@pytest.fixture(scope="module")
def catalog() -> ModelCatalog:
    """The shipped catalog, read as every component reads it."""
    text = resources.files("placement").joinpath(BUILTIN_CATALOG).read_text(encoding="utf-8")
    return parse_model_catalog(parse_document(text, "catalog"), "catalog")


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


# name: (URI, model id, read from the URI rather than guessed)
FOR_URI = {
    "hf-exact": ("hf://meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct", True),
    "hf-any-case-is-written-as-the-catalog-writes-it": ("hf://META-LLAMA/llama-3.1-8b-instruct", "meta-llama/Llama-3.1-8B-Instruct", True),
    "hf-unknown-stays-as-written": ("hf://acme/Llama-3.1-8B-Instruct", "acme/Llama-3.1-8B-Instruct", True),
    "hf-quantised-suffix-is-the-base-model": ("hf://meta-llama/Llama-3.1-70B-Instruct-FP8", "meta-llama/Llama-3.1-70B-Instruct", True),
    "hub-cache-folder": ("pvc://c/models--Qwen--Qwen3-8B/snapshots/abc", "Qwen/Qwen3-8B", True),
    "org--name-folder": ("s3://m/deepseek-ai--DeepSeek-R1", "deepseek-ai/DeepSeek-R1", True),
    "catalog-model-in-path-is-a-guess": ("s3://bucket/models/Qwen2.5-72B-Instruct-AWQ/", "Qwen/Qwen2.5-72B-Instruct", False),
    "unknown-path-is-the-path": ("gs://kfserving-examples/models/tensorflow/flowers", "models/tensorflow/flowers", False),
    "empty": ("", "", False),
}  # fmt: skip


@pytest.mark.parametrize("case", list(FOR_URI), ids=list(FOR_URI))
def test_model_id_for_uri(case: str, catalog: ModelCatalog) -> None:
    uri, model_id, read = FOR_URI[case]
    assert model_id_for_uri(catalog, uri) == (model_id, read)
