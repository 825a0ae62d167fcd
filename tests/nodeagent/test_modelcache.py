"""Finding cached model weights on the node's disk."""

from __future__ import annotations

from pathlib import Path

from nodeagent.modelcache import ModelCacheScanner, scan_models


def put(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)


def test_layouts(tmp_path: Path) -> None:
    put(tmp_path / "models--meta-llama--Llama-3.1-8B" / "blobs" / "abc", 1000)
    snap = tmp_path / "models--meta-llama--Llama-3.1-8B" / "snapshots" / "r1"
    snap.mkdir(parents=True)
    (snap / "model.safetensors").symlink_to(
        tmp_path / "models--meta-llama--Llama-3.1-8B" / "blobs" / "abc"
    )
    put(tmp_path / "mistralai" / "Mistral-7B" / "config.json", 10)
    put(tmp_path / "mistralai" / "Mistral-7B" / "model-00001.safetensors", 500)
    put(tmp_path / "llama-70b-cache" / "weights.gguf", 300)
    put(tmp_path / "notes" / "readme.txt", 5)
    got = {m.model_id: m.bytes for m in scan_models(tmp_path)}
    assert got == {
        "meta-llama/Llama-3.1-8B": 1000,  # the link is not counted twice
        "mistralai/Mistral-7B": 510,
        "llama-70b-cache": 300,
    }


def test_missing_root_has_no_models(tmp_path: Path) -> None:
    assert scan_models(tmp_path / "absent") == []


def test_rescans_are_rate_limited(tmp_path: Path) -> None:
    scanner = ModelCacheScanner([tmp_path], rescan_s=60.0)
    assert scanner.models(0.0) == ()
    put(tmp_path / "m" / "config.json", 1)
    assert scanner.models(30.0) == ()
    assert [m.model_id for m in scanner.models(61.0)] == ["m"]
