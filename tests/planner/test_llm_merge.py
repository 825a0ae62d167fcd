"""KServe's strategic merge of LLMInferenceService specs and its choice of well-known presets."""

from __future__ import annotations

from typing import Any

import pytest

from planner.inputs.llm_merge import merge, merge_all, preset_names


def _main(**container: Any) -> dict[str, Any]:
    return {"template": {"containers": [{"name": "main", **container}]}}


# name: (base, override, merged)
MERGES: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "scalars-replaced": ({"replicas": 1, "model": {"uri": "a"}}, {"replicas": 3}, {"replicas": 3, "model": {"uri": "a"}}),
    "maps-merge-key-by-key": (
        _main(resources={"limits": {"cpu": "4", "nvidia.com/gpu": "1"}}),
        _main(resources={"limits": {"nvidia.com/gpu": "8"}}),
        _main(resources={"limits": {"cpu": "4", "nvidia.com/gpu": "8"}}),
    ),
    "containers-merge-by-name": (
        {"template": {"containers": [{"name": "main", "image": "vllm"}, {"name": "sidecar", "image": "s"}]}},
        {"template": {"containers": [{"name": "main", "args": ["--x"]}, {"name": "extra", "image": "e"}]}},
        {"template": {"containers": [
            {"name": "main", "image": "vllm", "args": ["--x"]},
            {"name": "sidecar", "image": "s"},
            {"name": "extra", "image": "e"},
        ]}},
    ),
    "env-merges-by-name": (
        _main(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
        _main(env=[{"name": "B", "value": "3"}]),
        _main(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]),
    ),
    "volume-mounts-merge-by-path": (
        _main(volumeMounts=[{"mountPath": "/m", "name": "a"}]),
        _main(volumeMounts=[{"mountPath": "/m", "name": "b"}, {"mountPath": "/n", "name": "c"}]),
        _main(volumeMounts=[{"mountPath": "/m", "name": "b"}, {"mountPath": "/n", "name": "c"}]),
    ),
    "other-lists-replaced": (
        {"template": {"tolerations": [{"key": "a"}], "containers": [{"name": "main", "args": ["x", "y"]}]}},
        {"template": {"tolerations": [{"key": "b"}], "containers": [{"name": "main", "args": ["z"]}]}},
        {"template": {"tolerations": [{"key": "b"}], "containers": [{"name": "main", "args": ["z"]}]}},
    ),
    "absent-null-empty-keep-the-base": (
        {"replicas": 2, "template": {"containers": [{"name": "main", "image": "v"}]}, "baseRefs": [{"name": "a"}]},
        {"replicas": None, "template": {"containers": []}, "baseRefs": [], "model": {"name": ""}},
        {"replicas": 2, "template": {"containers": [{"name": "main", "image": "v"}]}, "baseRefs": [{"name": "a"}], "model": {}},
    ),
    "false-and-zero-are-kept": (
        {"parallelism": {"expert": True}, "replicas": 2},
        {"parallelism": {"expert": False}, "replicas": 0},
        {"parallelism": {"expert": False}, "replicas": 0},
    ),
    "patch-directives-ignored": ({"replicas": 1}, {"$patch": "replace", "replicas": 2}, {"replicas": 2}),
    "new-sections-added": ({}, {"worker": {"containers": [{"name": "main"}]}}, {"worker": {"containers": [{"name": "main"}]}}),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MERGES), ids=list(MERGES))
def test_merge(case: str) -> None:
    base, override, merged = MERGES[case]
    before = repr(base), repr(override)
    assert merge(base, override) == merged
    assert (repr(base), repr(override)) == before  # neither input is changed


def test_later_specs_win_in_order() -> None:
    specs: list[dict[str, Any]] = [
        {"replicas": 1, "model": {"uri": "a"}},
        {"replicas": 2},
        {"replicas": 3, "model": {"name": "n"}},
    ]
    assert merge_all(specs) == {"replicas": 3, "model": {"uri": "a", "name": "n"}}


WORKER = {"containers": [{"name": "main"}]}

# name: (merged spec, status annotations, the presets KServe puts first)
PRESETS: dict[str, tuple[dict[str, Any], dict[str, str], list[str]]] = {
    "single-node": ({}, {}, ["kserve-config-llm-template"]),
    "data-parallel": (
        {"worker": WORKER, "parallelism": {"data": 16, "dataLocal": 8}},
        {},
        ["kserve-config-llm-worker-data-parallel"],
    ),
    "pipeline-parallel": (
        {"worker": WORKER, "parallelism": {"pipeline": 2}},
        {},
        ["kserve-config-llm-worker-pipeline-parallel"],
    ),
    "prefill-decode": ({"prefill": {"replicas": 2}}, {}, ["kserve-config-llm-prefill-template", "kserve-config-llm-decode-template"]),
    "prefill-decode-data-parallel": (
        {"prefill": {"worker": WORKER, "parallelism": {"data": 8, "dataLocal": 8}}, "worker": WORKER, "parallelism": {"data": 16, "dataLocal": 8}},
        {},
        ["kserve-config-llm-prefill-worker-data-parallel", "kserve-config-llm-decode-worker-data-parallel"],
    ),
    "worker-without-parallelism": ({"worker": WORKER}, {}, []),
    "pinned-by-status": (
        {},
        {"serving.kserve.io/config-llm-template": "v0-19-0-config-llm-template"},
        ["v0-19-0-config-llm-template"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(PRESETS), ids=list(PRESETS))
def test_preset_names(case: str) -> None:
    spec, pinned, names = PRESETS[case]
    assert preset_names(spec, pinned) == names
