"""The extender over HTTP (Flask's test client): golden kube-scheduler payloads, verbs, probes.

Each ``golden/<case>.request.json`` is a body shaped as kube-scheduler 1.37 sends it (Go field
names, the whole v1.Pod, ``"Nodes": null`` beside ``NodeNames``); ``<case>.response.json`` is
the exact reply expected from the extender over ``golden_pool``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from extender.decisions import Mode
from extender.state import ClusterState
from placement.annotation import decode_reservation
from placement.model import NodeState
from tests.extender.conftest import (
    A100,
    NOW,
    Extender,
    build_extender,
    gpu_node,
    pod_object,
    synced_state,
)

GOLDEN = Path(__file__).parent / "golden"
LLAMA_70B = "meta-llama/Llama-3.1-70B-Instruct"
GOLDEN_POD = "serving/llama-70b-predictor-00001-deployment-7d9c5b8f6d-x2k9p"


def golden_pool() -> list[NodeState]:
    """The cluster the golden replies were computed over: h100-1 has the 70B weights cached."""
    return [
        gpu_node("a100-0", product=A100, gib=40),
        gpu_node("a100-1", product=A100, gib=40),
        gpu_node("h100-0"),
        gpu_node("h100-1", cached=(LLAMA_70B,)),
    ]


def load(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text())


def post(ext: Extender, verb: str, body: Any) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    resp = ext.client.post(
        f"/scheduler/{verb}", data=data, headers={"Content-Type": "application/json"}
    )
    return resp.status_code, resp.get_json()


GOLDEN_CASES = {
    "filter-70b": "filter",
    "filter-70b-nothing-fits": "filter",
    "filter-no-gpu": "filter",
    "filter-nodelist": "filter",
    "filter-lowercase-keys": "filter",
    "prioritize-70b": "prioritize",
}


@pytest.mark.parametrize(("case", "verb"), GOLDEN_CASES.items(), ids=GOLDEN_CASES.keys())
def test_golden(case: str, verb: str) -> None:
    ext = build_extender(synced_state(golden_pool()))
    status, body = post(ext, verb, load(f"{case}.request.json"))
    assert status == 200
    assert body == load(f"{case}.response.json")


def test_golden_filter_then_bind_writes_the_reservation_and_binds() -> None:
    ext = build_extender(synced_state(golden_pool()))
    request = load("filter-70b.request.json")
    ext.api.add(request["Pod"])
    status, body = post(ext, "filter", request)
    assert status == 200 and body["NodeNames"] == ["h100-1"]
    binding = load("bind.request.json") | {"Node": "h100-1"}
    status, body = post(ext, "bind", binding)
    assert (status, body) == (200, {"Error": ""})
    pod = ext.api.pods[GOLDEN_POD]
    assert pod["spec"]["nodeName"] == "h100-1"
    r = decode_reservation(
        pod["metadata"]["annotations"]["vramfit.io/reservation"], pod_uid="u", pod_key="k"
    )
    assert r.node == "h100-1" and len(r.gpu_uuids) == 2
    assert ext.api.calls == [
        f"bind {binding['PodName']} h100-1",
    ], "bind writes the annotation with the Binding, and does not read the pod filter saw"
    assert ext.state.reservations_by_state(NOW)["bound"] == 1


def test_go_style_null_node_names_is_an_explicit_empty_list_when_none_pass() -> None:
    ext = build_extender(synced_state([gpu_node("small", product=A100, gib=40)]))
    status, body = post(
        ext, "filter", {"Pod": pod_object("p"), "Nodes": None, "NodeNames": ["small"]}
    )
    assert status == 200
    assert body["NodeNames"] == []
    assert "at least 70 GiB" in body["FailedAndUnresolvableNodes"]["small"]
    assert body["Error"] == ""


def test_all_feasible_mode_returns_every_fit_and_assumes_nothing() -> None:
    ext = build_extender(synced_state(golden_pool()), mode=Mode.ALL_FEASIBLE)
    status, body = post(ext, "filter", load("filter-70b.request.json"))
    assert status == 200 and body["NodeNames"] == ["h100-0", "h100-1"]
    assert ext.state.reservations_by_state(NOW)["assumed"] == 0


def test_per_pod_policy_annotation_overrides_the_default() -> None:
    half_full = gpu_node("half", free_gib=80, held={i: f"other-{i}" for i in range(4)})
    nodes = [gpu_node("empty"), half_full]
    names = ["empty", "half"]
    binpack = build_extender(synced_state(nodes))
    _, body = post(binpack, "filter", {"Pod": pod_object("a"), "NodeNames": names})
    assert body["NodeNames"] == ["half"]
    spread = build_extender(synced_state(nodes))
    pod = pod_object("b", annotations={"vramfit.io/policy": "spread"})
    _, body = post(spread, "filter", {"Pod": pod, "NodeNames": names})
    assert body["NodeNames"] == ["empty"]


def test_filter_before_the_first_lists_is_an_error_not_a_guess() -> None:
    ext = build_extender(ClusterState(assumed_ttl_s=30))
    status, body = post(ext, "filter", {"Pod": pod_object("p"), "NodeNames": ["a"]})
    assert status == 200
    assert body["NodeNames"] == []
    assert "reservations are not rebuilt" in body["Error"]
    assert ext.client.get("/readyz").status_code == 503
    status, body = post(ext, "bind", load("bind.request.json"))
    assert "starting" in body["Error"]


def test_probes() -> None:
    ext = build_extender(synced_state([]))
    assert ext.client.get("/healthz").status_code == 200
    ready = ext.client.get("/readyz")
    assert ready.status_code == 200 and ready.data == b"ok\n"


def test_prioritize_for_a_pod_without_gpus_is_all_zero() -> None:
    ext = build_extender(synced_state(golden_pool()))
    status, body = post(ext, "prioritize", load("filter-no-gpu.request.json"))
    assert status == 200
    assert body == [{"Host": n, "Score": 0} for n in ("a100-0", "a100-1", "h100-0", "h100-1")]
