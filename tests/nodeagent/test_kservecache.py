"""KServe's LocalModelCache folders named by their caches' source URIs, as the planner names them.

The folder names (KServe's storage key, or the cache's name up to v0.17) and states come from
kserve/kserve ``pkg/controller/v1alpha1/localmodelnode/controller.go`` and
``pkg/apis/serving/v1alpha1/local_model_*.go``; the storage keys below were computed with
``printf %s <uri> | sha256sum``, not with the code under test.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from documents import parse_document
from nodeagent.kservecache import kserve_folders, storage_key
from nodeagent.modelcache import KServeFolder, ModelCacheScanner, scan_models
from placement.model_ids import BUILTIN_CATALOG, ModelCatalog, parse_model_catalog

NODE = "gpu-7"
LLAMA_URI = "hf://meta-llama/Llama-3.1-8B-Instruct"
LLAMA_KEY = "3cfbba481b7486c1"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture(scope="module")
def catalog() -> ModelCatalog:
    text = resources.files("placement").joinpath(BUILTIN_CATALOG).read_text(encoding="utf-8")
    return parse_model_catalog(parse_document(text, "catalog"), "catalog")


@pytest.mark.parametrize(
    ("uri", "key"),
    [
        pytest.param("hf://meta-llama/meta-llama-3-8b-instruct", "c277d78a31bc6624", id="kserve-test-uri"),
        pytest.param(LLAMA_URI, LLAMA_KEY, id="hf"),
        pytest.param("gs://bucket/model", "a4db08f99421c836", id="gs"),
    ],
)  # fmt: skip
def test_storage_key_is_kserves(uri: str, key: str) -> None:
    assert storage_key(uri) == key


def cache(name: str, uri: str, **node_status: str) -> dict[str, Any]:
    """A LocalModelCache as the API server returns it in a list."""
    return {
        "metadata": {"name": name},
        "spec": {"sourceModelUri": uri, "modelSize": "16Gi", "nodeGroups": ["nvme"]},
        "status": {"nodeStatus": node_status},
    }


def local_node(models: list[dict[str, str]], status: dict[str, str]) -> dict[str, Any]:
    """This node's LocalModelNode."""
    return {
        "metadata": {"name": NODE},
        "spec": {"localModels": models},
        "status": {"modelStatus": status},
    }


def entry(name: str, uri: str, namespace: str = "") -> dict[str, str]:
    e = {"modelName": name, "sourceModelUri": uri}
    if namespace:
        e["namespace"] = namespace
    return e


QWEN_URI = "s3://models/Qwen--Qwen3-8B"
QWEN_KEY = storage_key(QWEN_URI)

# name: (LocalModelCaches, LocalModelNode or None, {folder: (model id, downloaded)})
FOLDERS: dict[str, tuple[list[Any], Any, dict[str, tuple[str, bool]]]] = {
    "downloaded-by-the-node-status": (
        [cache("llama", LLAMA_URI)],
        local_node([entry("llama", LLAMA_URI)], {"llama": "ModelDownloaded"}),
        {LLAMA_KEY: (LLAMA, True), "llama": (LLAMA, True)},
    ),
    "downloading-is-not-published": (
        [cache("llama", LLAMA_URI)],
        local_node([entry("llama", LLAMA_URI)], {"llama": "ModelDownloading"}),
        {LLAMA_KEY: (LLAMA, False), "llama": (LLAMA, False)},
    ),
    "the-node-status-wins-over-the-caches": (
        [cache("llama", LLAMA_URI, **{NODE: "NodeDownloaded"})],
        local_node([entry("llama", LLAMA_URI)], {"llama": "ModelDownloadError"}),
        {LLAMA_KEY: (LLAMA, False), "llama": (LLAMA, False)},
    ),
    "the-caches-status-without-a-local-model-node": (
        [cache("llama", LLAMA_URI, **{NODE: "NodeDownloaded", "gpu-8": "NodeDownloading"})],
        None,
        {LLAMA_KEY: (LLAMA, True), "llama": (LLAMA, True)},
    ),
    "another-nodes-status-says-nothing-here": (
        [cache("llama", LLAMA_URI, **{"gpu-8": "NodeDownloaded"})],
        None,
        {LLAMA_KEY: (LLAMA, False), "llama": (LLAMA, False)},
    ),
    "namespaced-cache-by-storage-key-only": (
        [],
        local_node([entry("qwen", QWEN_URI, "team-a")], {"team-a/qwen": "ModelDownloaded"}),
        {QWEN_KEY: ("Qwen/Qwen3-8B", True)},
    ),
    "the-id-is-written-as-the-catalog-writes-it": (
        [cache("llama", "hf://META-LLAMA/llama-3.1-8b-instruct", **{NODE: "NodeDownloaded"})],
        None,
        {
            storage_key("hf://META-LLAMA/llama-3.1-8b-instruct"): (LLAMA, True),
            "llama": (LLAMA, True),
        },
    ),
    "a-catalog-model-in-the-path": (
        [cache("l70", "s3://bucket/llama-3.1-70b-instruct/", **{NODE: "NodeDownloaded"})],
        None,
        {
            storage_key("s3://bucket/llama-3.1-70b-instruct/"): ("meta-llama/Llama-3.1-70B-Instruct", True),
            "l70": ("meta-llama/Llama-3.1-70B-Instruct", True),
        },
    ),
    "two-caches-of-one-uri-share-the-folder": (
        [cache("a", LLAMA_URI), cache("b", LLAMA_URI)],
        local_node([entry("a", LLAMA_URI), entry("b", LLAMA_URI)], {"a": "ModelDownloading", "b": "ModelDownloaded"}),
        {LLAMA_KEY: (LLAMA, True), "a": (LLAMA, False), "b": (LLAMA, True)},
    ),
    "malformed-entries-are-skipped": (
        ["not-a-cache", {"metadata": {"name": "x"}}, {"spec": {"sourceModelUri": LLAMA_URI}}],
        {"spec": {"localModels": [{"modelName": "y"}, "z"]}, "status": "broken"},
        {},
    ),
    "nothing-cached": ([], None, {}),
}  # fmt: skip


@pytest.mark.parametrize("case", list(FOLDERS), ids=list(FOLDERS))
def test_kserve_folders(case: str, catalog: ModelCatalog) -> None:
    caches, node, want = FOLDERS[case]
    got = kserve_folders(caches, node, NODE, catalog)
    assert {k: (v.model_id, v.downloaded) for k, v in got.items()} == want


def put(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)


def test_kserve_folders_are_published_under_their_model_ids(tmp_path: Path) -> None:
    models = tmp_path / "models"
    put(models / LLAMA_KEY / "config.json", 10)
    put(models / LLAMA_KEY / "model.safetensors", 990)
    put(models / "mistral" / "weights" / "model.safetensors", 500)  # v0.17: the cache's name
    put(models / QWEN_KEY / "model-00001.safetensors", 300)  # still downloading
    put(models / "0123456789abcdef" / "config.json", 7)  # a key no object names
    put(models / "my-own-model" / "config.json", 20)  # not KServe's: read as before
    put(tmp_path / "models--Qwen--Qwen3-8B" / "blobs" / "a", 40)
    named = {
        LLAMA_KEY: KServeFolder(LLAMA, True, "llama"),
        "mistral": KServeFolder("mistralai/Mistral-7B-Instruct-v0.3", True, "mistral"),
        QWEN_KEY: KServeFolder("Qwen/Qwen3-8B", False, "qwen"),
    }
    got = {m.model_id: m.bytes for m in scan_models(tmp_path, named)}
    assert got == {
        LLAMA: 1000,
        "mistralai/Mistral-7B-Instruct-v0.3": 500,
        "models/my-own-model": 20,
        "Qwen/Qwen3-8B": 40,  # the hub cache, not the download in progress
    }
    # Without KServe's objects no storage-key folder is published: its name is no model id.
    assert {m.model_id for m in scan_models(tmp_path)} == {"models/my-own-model", "Qwen/Qwen3-8B"}


def test_a_change_in_kserves_objects_rescans_at_once(tmp_path: Path) -> None:
    put(tmp_path / "models" / LLAMA_KEY / "model.safetensors", 100)
    named: dict[str, KServeFolder] = {LLAMA_KEY: KServeFolder(LLAMA, False, "llama")}
    scanner = ModelCacheScanner([tmp_path], rescan_s=60.0, kserve=lambda: named)
    assert scanner.models(0.0) == ()
    named[LLAMA_KEY] = KServeFolder(LLAMA, True, "llama")
    assert scanner.models(1.0) == ()  # the last scan is served until it is due ...
    scanner.invalidate()
    assert [(m.model_id, m.bytes) for m in scanner.models(2.0)] == [(LLAMA, 100)]  # ... or stale
