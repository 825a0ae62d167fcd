"""The preempt verb over HTTP: which candidate nodes and victims come back, in Meta form."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from extender.state import PODS
from extender.wire import OfferedVictim, decode_preemption_args
from placement.annotation import encode_reservation
from placement.model import GIB, NodeState, PodMemory, Reservation, ReservationState
from placement.nodegpustate import format_time
from tests.extender.conftest import (
    A100,
    NOW,
    Extender,
    build_extender,
    gpu_node,
    pod_object,
    pod_of,
    synced_state,
)


def loaded(
    name: str, holders: Mapping[int, str], *, product: str = "", gib: int = 80, used: int = 40
) -> NodeState:
    """A node whose GPUs ``holders`` names are held by those pods, ``used`` GiB on each."""
    base = gpu_node(name, product=product or "NVIDIA-H100-80GB-HBM3", gib=gib)
    gpus = tuple(
        dataclasses.replace(
            g,
            holder_pod_uid=h,
            pod_memory=(PodMemory(h, used * GIB),),
            free_bytes=(gib - used) * GIB,
            used_bytes=used * GIB,
        )
        if (h := holders.get(g.index))
        else g
        for g in base.gpus
    )
    return dataclasses.replace(base, gpus=gpus)


def running(
    uid: str, node: str, *, priority: int = 0, started: float = NOW - 600
) -> dict[str, Any]:
    """A running GPU pod as the API server returns it, with its priority and start time."""
    pod = pod_object(uid, uid=uid, node_name=node, phase="Running", ready=True, vram="30Gi")
    pod["spec"]["priority"] = priority
    pod["status"]["startTime"] = format_time(started)
    return pod


def full(prefix: str) -> dict[int, str]:
    return {i: f"{prefix}{i}" for i in range(8)}


POOL = [
    loaded("h100-0", full("h0-")),
    loaded("h100-1", {i: f"h1-{i}" for i in range(7)}),  # GPU 7 free
    loaded("a100-0", full("a0-"), product=A100, gib=40, used=30),
]
PRIORITIES = {"h0-0": 5, "h0-1": 1, "h0-2": 3, "a0-0": 0}
PODS_RUNNING = [
    running(uid, node.name, priority=PRIORITIES.get(uid, 10))
    for node in POOL
    for uid in {g.holder_pod_uid for g in node.gpus} - {None}
    if uid is not None
]


@pytest.fixture
def ext() -> Extender:
    return build_extender(synced_state(POOL, pods=PODS_RUNNING))


def preemptor(gpus: int = 1, vram: str = "70Gi", *, group: bool = False) -> dict[str, Any]:
    """The high-priority pod; with ``group``, the leader of a two-pod LeaderWorkerSet group."""
    lws = "leaderworkerset.sigs.k8s.io"
    extra = {f"{lws}/size": "2"} if group else {}
    pod = pod_object("hi", uid="hi-uid", gpus=gpus, vram=vram, annotations=extra)
    pod["spec"]["priority"] = 1000
    if group:
        pod["metadata"]["labels"] = {
            f"{lws}/name": "big",
            f"{lws}/group-index": "0",
            f"{lws}/worker-index": "0",
        }
    return pod


def meta(victims: Mapping[str, tuple[list[str], int]]) -> dict[str, Any]:
    return {
        node: {"Pods": [{"UID": u} for u in uids], "NumPDBViolations": pdb}
        for node, (uids, pdb) in victims.items()
    }


def post(ext: Extender, body: Mapping[str, Any]) -> dict[str, Any]:
    resp = ext.client.post("/scheduler/preempt", data=orjson.dumps(body))
    assert resp.status_code == 200, resp.data
    result: dict[str, Any] = orjson.loads(resp.data)
    assert list(result) == ["NodeNameToMetaVictims"]
    return result["NodeNameToMetaVictims"]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Case:
    offered: dict[str, tuple[list[str], int]]
    expected: dict[str, tuple[list[str], int]]
    pod: dict[str, Any] = field(default_factory=preemptor)


CASES = {
    "a-40gb-node-is-dropped-an-80gb-node-kept": Case(
        {"a100-0": (["a0-0"], 0), "h100-0": (["h0-1"], 0)}, {"h100-0": (["h0-1"], 0)}
    ),
    "narrowed-to-the-lowest-priority-victim": Case(
        {"h100-0": (["h0-0", "h0-2", "h0-1"], 2)}, {"h100-0": (["h0-1"], 1)}
    ),
    "two-gpus-take-the-two-least-important": Case(
        {"h100-0": (["h0-0", "h0-2", "h0-1"], 0)},
        {"h100-0": (["h0-2", "h0-1"], 0)},
        pod=preemptor(gpus=2),
    ),
    "an-unchanged-set-keeps-its-pdb-count": Case(
        {"h100-0": (["h0-1"], 1)}, {"h100-0": (["h0-1"], 1)}
    ),
    "fits-already-keeps-the-offer": Case({"h100-1": (["h1-3"], 0)}, {"h100-1": (["h1-3"], 0)}),
    "a-node-without-a-report-is-dropped": Case({"cpu-0": (["w"], 0)}, {}),
    "a-node-offered-no-victims-is-dropped": Case({"h100-0": ([], 0)}, {}),
    "a-pod-without-gpus-gets-the-offer-back": Case(
        {"a100-0": (["a0-0"], 3)}, {"a100-0": (["a0-0"], 3)}, pod=preemptor(gpus=0)
    ),
    "a-group-member-gets-no-preemption": Case(
        {"h100-0": (["h0-1"], 0)},
        {},
        pod=preemptor(group=True),
    ),
    "an-unreadable-pod-gets-no-preemption": Case(
        {"h100-0": (["h0-1"], 0)}, {}, pod=preemptor(vram="seventy")
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_preempt(ext: Extender, case: Case) -> None:
    got = post(ext, {"Pod": case.pod, "NodeNameToMetaVictims": meta(case.offered)})
    assert got == meta(case.expected)


def test_whole_pods_are_answered_in_meta_form_with_their_own_priorities(ext: Extender) -> None:
    # The request's priorities win over the watch's: here h0-0 is the least important.
    pods = [running("h0-0", "h100-0", priority=0), running("h0-1", "h100-0", priority=9)]
    body = {"Pod": preemptor(), "NodeNameToVictims": {"h100-0": {"Pods": pods}}}
    assert post(ext, body) == meta({"h100-0": (["h0-0"], 0)})


def test_no_preemption_while_the_view_is_not_current() -> None:
    state = synced_state(POOL, pods=PODS_RUNNING)
    state.mark_lost(PODS)
    ext = build_extender(state)
    body = {"Pod": preemptor(), "NodeNameToMetaVictims": meta({"h100-0": (["h0-1"], 0)})}
    assert post(ext, body) == {}
    text = ext.client.get("/metrics").data.decode()
    assert (
        'vramfit_extender_decisions_total{outcome="error",reason="not-ready",verb="preempt"}'
        in text
    )


def test_dropped_nodes_are_counted_by_class_and_logged(
    ext: Extender, caplog: pytest.LogCaptureFixture
) -> None:
    offered = {"a100-0": (["a0-0"], 0), "h100-0": (["h0-0", "h0-1"], 0), "cpu-0": (["w"], 0)}
    with caplog.at_level(logging.INFO, logger="extender.preempt"):
        post(ext, {"Pod": preemptor(), "NodeNameToMetaVictims": meta(offered)})
    text = ext.client.get("/metrics").data.decode()
    for outcome, reason in (
        ("dropped", "gpu-too-small"),
        ("dropped", "no-report"),
        ("narrowed", ""),
    ):
        line = (
            f'vramfit_extender_preemption_nodes_total{{outcome="{outcome}",reason="{reason}"}} 1.0'
        )
        assert line in text
    assert "node a100-0 dropped (gpu-too-small): needs 1 GPU(s) with at least 70 GiB" in caplog.text
    assert "node cpu-0 dropped (no-report)" in caplog.text


def test_the_kept_nodes_gpus_are_proposed_for_the_nomination(ext: Extender) -> None:
    post(ext, {"Pod": preemptor(), "NodeNameToMetaVictims": meta({"h100-0": (["h0-1"], 0)})})
    assert ext.state.nominations.sizes()["proposals"] == 1
    nominated = preemptor()
    nominated["status"]["nominatedNodeName"] = "h100-0"
    ext.state.apply_pod("MODIFIED", pod_of(nominated))
    with ext.state.locked_view(NOW) as view:
        room = view.fleet.claims.get("hi-uid")
    assert room is not None
    assert (room.node, room.gpu_uuids) == ("h100-0", ("GPU-h100-0-1",))


DECODED = {
    "meta-form": (
        {"Pod": preemptor(), "NodeNameToMetaVictims": {"n": {"Pods": [{"UID": "a"}]}}},
        {"n": ((OfferedVictim("a"),), 0)},
    ),
    "keys-in-any-casing": (
        {
            "pod": preemptor(),
            "nodenametometavictims": {"n": {"pods": [{"uid": "a"}], "numpdbviolations": 2}},
        },
        {"n": ((OfferedVictim("a"),), 2)},
    ),
    "null-pods-is-none": (
        {"Pod": preemptor(), "NodeNameToMetaVictims": {"n": {"Pods": None}}},
        {"n": ((), 0)},
    ),
    "a-uid-twice-once": (
        {
            "Pod": preemptor(),
            "NodeNameToMetaVictims": {"n": {"Pods": [{"UID": "a"}, {"UID": "b"}, {"UID": "a"}]}},
        },
        {"n": ((OfferedVictim("a"), OfferedVictim("b")), 0)},
    ),
    "whole-pods": (
        {
            "Pod": preemptor(),
            "NodeNameToMetaVictims": None,
            "NodeNameToVictims": {"n": {"Pods": [running("a", "n", priority=7, started=NOW)]}},
        },
        {"n": ((OfferedVictim("a", 7, NOW),), 0)},
    ),
}


@pytest.mark.parametrize(("body", "expected"), DECODED.values(), ids=DECODED.keys())
def test_decode_preemption_args(
    body: dict[str, Any], expected: dict[str, tuple[tuple[OfferedVictim, ...], int]]
) -> None:
    args = decode_preemption_args(orjson.dumps(body))
    assert args.ref.uid == "hi-uid"
    assert {n: (v.victims, v.num_pdb_violations) for n, v in args.nodes.items()} == expected


@pytest.mark.parametrize(
    ("gpus", "expected"),
    [
        pytest.param(1, {}, id="the-leaving-victim-makes-room-wait"),
        pytest.param(2, meta({"h100-1": (["h1-0"], 0)}), id="not-enough-leaving-preempt-again"),
    ],
)
def test_no_new_preemption_while_the_victims_leave_the_nominated_node(
    ext: Extender, gpus: int, expected: dict[str, Any]
) -> None:
    # h0-1 was evicted: gone from the API, its GPU still held in h100-0's last report.
    ext.state.apply_pod("DELETED", pod_of(running("h0-1", "h100-0", priority=1)))
    assert ext.state.leaving("h100-0") == {"h0-1"}
    pod = preemptor(gpus=gpus)
    pod["status"]["nominatedNodeName"] = "h100-0"
    body = {"Pod": pod, "NodeNameToMetaVictims": meta({"h100-1": (["h1-0"], 0)})}
    assert post(ext, body) == expected
    waiting = 'vramfit_extender_decisions_total{outcome="waiting",reason="victims-leaving"'
    assert (waiting in ext.client.get("/metrics").data.decode()) is (not expected)


def loading_pool() -> Extender:
    """h100-0 and h100-2 full of priority-1 pods; on h100-0, "loader" (GPU 7) still loads:
    bound by vramfit (its reservation annotation), not Ready."""
    pool = [loaded("h100-0", {**full("h0-"), 7: "loader"}), loaded("h100-2", full("h2-"))]
    pods = [
        running(uid, n.name, priority=1)
        for n in pool
        for g in n.gpus
        if (uid := g.holder_pod_uid) and uid != "loader"
    ]
    note = encode_reservation(
        Reservation(
            pod_uid="",
            pod_key="",
            node="h100-0",
            gpu_uuids=("GPU-h100-0-7",),
            bytes_per_gpu=40 * GIB,
            state=ReservationState.BOUND,
            created_at=NOW - 5,
        )
    )
    loader = pod_object(
        "loader",
        uid="loader",
        node_name="h100-0",
        phase="Running",
        vram="40Gi",
        annotations={"vramfit.io/reservation": note},
    )
    return build_extender(synced_state(pool, pods=[*pods, loader]))


ACROSS = {
    "the-node-still-loading-is-dropped-for-an-idle-one": (
        {"h100-0": (["h0-1"], 0), "h100-2": (["h2-1"], 0)},
        {"h100-2": (["h2-1"], 0)},
    ),
    "kept-where-the-idle-node-breaks-a-budget": (
        {"h100-0": (["h0-1"], 0), "h100-2": (["h2-1"], 1)},
        {"h100-0": (["h0-1"], 0), "h100-2": (["h2-1"], 1)},
    ),
    "one-node-is-kept-though-it-loads": (
        {"h100-0": (["h0-1"], 0)},
        {"h100-0": (["h0-1"], 0)},
    ),
}


@pytest.mark.parametrize(("offered", "expected"), ACROSS.values(), ids=ACROSS.keys())
def test_across_nodes_the_pods_load_decides_among_equally_disruptive_ones(
    offered: dict[str, tuple[list[str], int]], expected: dict[str, tuple[list[str], int]]
) -> None:
    ext = loading_pool()
    got = post(ext, {"Pod": preemptor(), "NodeNameToMetaVictims": meta(offered)})
    assert got == meta(expected)


def test_kept_where_the_idle_node_evicts_a_more_important_pod() -> None:
    ext = loading_pool()
    pods = {"h100-0": running("h0-1", "h100-0", priority=1), "h100-2": running("h2-1", "h100-2")}
    pods["h100-2"]["spec"]["priority"] = 2
    body = {
        "Pod": preemptor(),
        "NodeNameToVictims": {n: {"Pods": [p], "NumPDBViolations": 0} for n, p in pods.items()},
    }
    assert post(ext, body) == meta({"h100-0": (["h0-1"], 0), "h100-2": (["h2-1"], 0)})


def test_a_node_dropped_for_a_better_load_is_counted_logged_and_not_proposed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ext = loading_pool()
    offered = {"h100-0": (["h0-1"], 0), "h100-2": (["h2-1"], 0)}
    with caplog.at_level(logging.INFO, logger="extender.preempt"):
        post(ext, {"Pod": preemptor(), "NodeNameToMetaVictims": meta(offered)})
    text = ext.client.get("/metrics").data.decode()
    for outcome, reason in (("dropped", "load-elsewhere"), ("kept", "")):
        line = (
            f'vramfit_extender_preemption_nodes_total{{outcome="{outcome}",reason="{reason}"}} 1.0'
        )
        assert line in text
    assert "node h100-0 dropped (load-elsewhere)" in caplog.text
    # Nominated to the dropped node all the same (another extender's answer): no room proposed
    # there, so the room falls back to the node's GPUs in index order.
    nominated = preemptor()
    nominated["status"]["nominatedNodeName"] = "h100-2"
    ext.state.apply_pod("MODIFIED", pod_of(nominated))
    with ext.state.locked_view(NOW) as view:
        room = view.fleet.claims.get("hi-uid")
    assert room is not None
    assert room.gpu_uuids == ("GPU-h100-2-1",)
