"""Bad requests get 400/404/405/413 with a message that names what and where; never a 500."""

from __future__ import annotations

import io
import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.extender.conftest import Extender, build_extender, gpu_node, pod_object, synced_state

LIMIT = 64 * 1024


@pytest.fixture
def ext() -> Extender:
    return build_extender(synced_state([gpu_node("n0")]), max_body_bytes=LIMIT)


def good_pod() -> dict[str, Any]:
    return pod_object("p", uid="u-1")


def with_pod(**changes: Any) -> dict[str, Any]:
    pod = good_pod()
    for path, value in changes.items():
        target: Any = pod
        keys = path.split("__")
        for k in keys[:-1]:
            target = target[int(k)] if isinstance(target, list) else target[k]
        last = keys[-1]
        if value is ...:
            del target[last]
        else:
            target[last] = value
    return {"Pod": pod, "NodeNames": ["n0"]}


def body(value: Any) -> bytes:
    return value if isinstance(value, bytes) else orjson.dumps(value)


BAD = {
    "malformed-json": ("filter", b'{"Pod": {', "not valid JSON"),
    "empty-body": ("filter", b"", "empty request body"),
    "not-utf8": ("filter", b'{"Pod": "\xff\xfe"}', "not valid JSON"),
    "nan-literal": ("filter", b'{"Pod": NaN}', "not valid JSON"),
    "too-deep": ("filter", b"[" * 2000 + b"]" * 2000, "not valid JSON"),
    "array-body": ("filter", [], "request body: expected an object, got array"),
    "pod-missing": ("filter", {"NodeNames": ["n0"]}, "Pod: missing"),
    "pod-null": ("filter", {"Pod": None, "NodeNames": ["n0"]}, "Pod: missing"),
    "pod-wrong-type": ("filter", {"Pod": "p", "NodeNames": ["n0"]}, "Pod: expected an object"),
    "node-names-wrong-type": (
        "filter",
        {"Pod": good_pod(), "NodeNames": "n0"},
        "NodeNames: expected an array, got string",
    ),
    "node-name-not-a-string": (
        "filter",
        {"Pod": good_pod(), "NodeNames": ["n0", 7]},
        "NodeNames[1]: expected a string, got number",
    ),
    "no-candidates-at-all": ("filter", {"Pod": good_pod()}, "neither NodeNames nor Nodes"),
    "same-key-twice-in-two-casings": (
        "filter",
        b'{"Pod": {}, "pod": {}, "NodeNames": []}',
        "keys 'Pod' and 'pod' name the same field",
    ),
    "pod-uid-missing": ("filter", with_pod(metadata__uid=...), "Pod.metadata.uid: expected"),
    "pod-name-empty": ("filter", with_pod(metadata__name=""), "Pod.metadata.name: must not"),
    "pod-metadata-wrong-type": ("filter", with_pod(metadata=[]), "Pod.metadata: expected an"),
    "annotation-not-a-string": (
        "filter",
        with_pod(metadata__annotations={"vramfit.io/vram-per-gpu": 70}),
        "Pod.metadata.annotations['vramfit.io/vram-per-gpu']: expected a string",
    ),
    "containers-not-an-array": (
        "filter",
        with_pod(spec__containers={}),
        "Pod.spec.containers: expected an array, got object",
    ),
    "limits-not-an-object": (
        "filter",
        with_pod(spec__containers__0__resources__limits=["nvidia.com/gpu"]),
        "Pod.spec.containers[0].resources.limits: expected an object",
    ),
    "nodes-items-wrong-type": (
        "filter",
        {"Pod": good_pod(), "Nodes": {"items": {}}},
        "Nodes.items: expected an array",
    ),
    "node-object-without-name": (
        "filter",
        {"Pod": good_pod(), "Nodes": {"items": [{"metadata": {}}]}},
        "Nodes.items[0].metadata.name",
    ),
    "preempt-malformed": ("preempt", b"{", "not valid JSON"),
    "preempt-missing-pod": (
        "preempt",
        {"NodeNameToMetaVictims": {"n0": {"Pods": [{"UID": "v"}]}}},
        "Pod: missing",
    ),
    "preempt-no-victims-at-all": (
        "preempt",
        {"Pod": good_pod()},
        "neither NodeNameToMetaVictims nor NodeNameToVictims",
    ),
    "preempt-both-forms": (
        "preempt",
        {"Pod": good_pod(), "NodeNameToMetaVictims": {}, "NodeNameToVictims": {}},
        "both NodeNameToMetaVictims and NodeNameToVictims given",
    ),
    "preempt-victims-map-wrong-type": (
        "preempt",
        {"Pod": good_pod(), "NodeNameToMetaVictims": []},
        "NodeNameToMetaVictims: expected an object, got array",
    ),
    "preempt-node-entry-null": (
        "preempt",
        {"Pod": good_pod(), "NodeNameToMetaVictims": {"n0": None}},
        "NodeNameToMetaVictims['n0']: expected an object, got null",
    ),
    "preempt-pods-wrong-type": (
        "preempt",
        {"Pod": good_pod(), "NodeNameToMetaVictims": {"n0": {"Pods": {}}}},
        "NodeNameToMetaVictims['n0'].Pods: expected an array, got object",
    ),
    "preempt-uid-missing": (
        "preempt",
        {"Pod": good_pod(), "NodeNameToMetaVictims": {"n0": {"Pods": [{}]}}},
        "NodeNameToMetaVictims['n0'].Pods[0].UID: expected a string, got null",
    ),
    "preempt-uid-too-long": (
        "preempt",
        {"Pod": good_pod(), "NodeNameToMetaVictims": {"n0": {"Pods": [{"UID": "u" * 37}]}}},
        "UID: longer than 36 characters",
    ),
    "preempt-pdb-count-negative": (
        "preempt",
        {
            "Pod": good_pod(),
            "NodeNameToMetaVictims": {"n0": {"Pods": [{"UID": "v"}], "NumPDBViolations": -1}},
        },
        "NumPDBViolations: expected a count",
    ),
    "preempt-pdb-count-a-string": (
        "preempt",
        {
            "Pod": good_pod(),
            "NodeNameToMetaVictims": {"n0": {"Pods": [{"UID": "v"}], "NumPDBViolations": "1"}},
        },
        "NumPDBViolations: expected a count, got string",
    ),
    "preempt-node-name-too-long": (
        "preempt",
        {"Pod": good_pod(), "NodeNameToMetaVictims": {"n" * 254: {"Pods": [{"UID": "v"}]}}},
        "node name: longer than 253 characters",
    ),
    "preempt-whole-victim-without-uid": (
        "preempt",
        {"Pod": good_pod(), "NodeNameToVictims": {"n0": {"Pods": [{"metadata": {}}]}}},
        "NodeNameToVictims['n0'].Pods[0].metadata.uid: expected a string",
    ),
    "preempt-whole-victim-priority-not-a-number": (
        "preempt",
        {
            "Pod": good_pod(),
            "NodeNameToVictims": {
                "n0": {"Pods": [{"metadata": {"uid": "v"}, "spec": {"priority": "high"}}]}
            },
        },
        "spec.priority: expected an int32, got string",
    ),
    "preempt-whole-victim-bad-start": (
        "preempt",
        {
            "Pod": good_pod(),
            "NodeNameToVictims": {
                "n0": {"Pods": [{"metadata": {"uid": "v"}, "status": {"startTime": "noon"}}]}
            },
        },
        "status.startTime: not an RFC 3339 time",
    ),
    "prioritize-malformed": ("prioritize", b"nope", "not valid JSON"),
    "prioritize-missing-pod": ("prioritize", {"NodeNames": []}, "Pod: missing"),
    "bind-missing-uid": (
        "bind",
        {"PodName": "p", "PodNamespace": "ns", "Node": "n0"},
        "PodUID: missing",
    ),
    "bind-wrong-type": (
        "bind",
        {"PodName": 3, "PodNamespace": "ns", "PodUID": "u", "Node": "n0"},
        "PodName: expected a string, got number",
    ),
    "bind-empty-node": (
        "bind",
        {"PodName": "p", "PodNamespace": "ns", "PodUID": "u", "Node": ""},
        "Node: must not be empty",
    ),
}


@pytest.mark.parametrize(("verb", "payload", "message"), BAD.values(), ids=BAD.keys())
def test_bad_request_is_400_with_a_message(
    ext: Extender, verb: str, payload: Any, message: str
) -> None:
    resp = ext.client.post(f"/scheduler/{verb}", data=body(payload))
    assert resp.status_code == 400, resp.data
    error = resp.get_json()["error"]
    assert message in error
    assert error.startswith(f"{verb}: ")


def test_unknown_verb_is_404(ext: Extender) -> None:
    resp = ext.client.post("/scheduler/evict", data=b"{}")
    assert resp.status_code == 404
    assert "unknown verb 'evict'" in resp.get_json()["error"]


def test_unknown_path_is_404(ext: Extender) -> None:
    assert ext.client.get("/nope").status_code == 404


def test_get_on_a_verb_is_405(ext: Extender) -> None:
    resp = ext.client.get("/scheduler/filter")
    assert resp.status_code == 405
    assert resp.is_json


def test_huge_body_is_413(ext: Extender) -> None:
    huge = orjson.dumps({"Pod": good_pod(), "NodeNames": [f"node-{i:08d}" for i in range(8000)]})
    assert len(huge) > LIMIT
    resp = ext.client.post("/scheduler/filter", data=huge)
    assert resp.status_code == 413
    assert f"larger than {LIMIT} bytes" in resp.get_json()["error"]


def test_huge_body_without_a_length_is_413(ext: Extender) -> None:
    stream = io.BytesIO(b'{"Pod": "' + b"x" * (LIMIT * 2) + b'"}')
    resp = ext.client.post(
        "/scheduler/filter",
        input_stream=stream,
        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        environ_overrides={"wsgi.input_terminated": True},  # what gunicorn sets for chunked
    )
    assert resp.status_code == 413


def test_bad_requests_are_counted(ext: Extender) -> None:
    ext.client.post("/scheduler/filter", data=b"{")
    ext.client.post("/scheduler/nope", data=b"{}")
    text = ext.client.get("/metrics").data.decode()
    assert 'vramfit_extender_bad_requests_total{status="400"} 1.0' in text
    assert 'vramfit_extender_bad_requests_total{status="404"} 1.0' in text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
shaped = st.fixed_dictionaries(
    {},
    optional={
        "Pod": json_values | st.just(good_pod()),
        "NodeNames": json_values | st.just(["n0"]),
        "Nodes": json_values,
        "PodName": json_values | st.just("p"),
        "PodNamespace": json_values | st.just("ns"),
        "PodUID": json_values | st.just("u"),
        "Node": json_values | st.just("n0"),
        "NodeNameToMetaVictims": json_values | st.just({"n0": {"Pods": [{"UID": "v"}]}}),
        "NodeNameToVictims": json_values,
    },
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    verb=st.sampled_from(["filter", "prioritize", "bind", "preempt"]), payload=json_values | shaped
)
def test_any_json_gets_an_answer_never_a_500(ext: Extender, verb: str, payload: Any) -> None:
    resp = ext.client.post(f"/scheduler/{verb}", data=json.dumps(payload))
    assert resp.status_code in (200, 400), resp.data
    assert resp.is_json
