"""After a preemption: the nominated pod's room on its node, victims holding their GPUs until
they are gone, and a pod gone while loading holding them until its memory is back."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from extender import nominations
from extender.decisions import recheck
from extender.objects import read_pods, read_reports
from extender.state import ClusterState
from placement.annotation import encode_reservation
from placement.lifecycle import assume
from placement.model import GIB, Demand, Fit, FitSettings, NodeState, PodMemory, Reservation
from placement.model import ReservationState as S
from tests.extender.conftest import NOW, gpu_node, pod_object, pod_of, report_object, synced_state
from tests.extender.test_preempt import loaded

BIG = Demand(gpus=2, vram_per_gpu=70 * GIB)
SMALL = Demand(gpus=1, vram_per_gpu=30 * GIB)
# n0: GPUs 0-5 held by live pods, 6 by the victim "v", 7 free.
HOLDERS = {**{i: f"x{i}" for i in range(6)}, 6: "v"}


def node_n0(holders: dict[int, str] = HOLDERS, *, at: float = NOW) -> NodeState:
    return dataclasses.replace(loaded("n0", holders), observed_at=at)


def running(uid: str, *, deleting: bool = False) -> dict[str, Any]:
    return pod_object(uid, uid=uid, node_name="n0", phase="Running", ready=True, deleting=deleting)


def nominee(node: str = "n0", *, uid: str = "hi", deleting: bool = False) -> dict[str, Any]:
    pod = pod_object(uid, uid=uid, gpus=2, vram="70Gi", deleting=deleting)
    if node:
        pod["status"]["nominatedNodeName"] = node
    return pod


def world() -> ClusterState:
    pods = [running(f"x{i}") for i in range(6)] + [running("v")]
    return synced_state([node_n0(), gpu_node("n1")], pods=pods)


def fits(state: ClusterState, demand: Demand, uid: str, node: str = "n0") -> bool:
    with state.locked_view(NOW) as view:
        result = recheck(node, demand, view, pod_uid=uid, now=NOW, settings=FitSettings())
    return isinstance(result, Fit)


def report(state: ClusterState, node: NodeState) -> None:
    (r,) = read_reports([report_object(node)])
    state.apply_report("MODIFIED", r)


def room(state: ClusterState, uid: str = "hi") -> Reservation | None:
    with state.locked_view(NOW) as view:
        return view.fleet.claims.get(uid)


def test_without_a_nomination_the_free_gpu_is_anyones() -> None:
    state = world()
    state.apply_pod("ADDED", pod_of(nominee("")))
    assert fits(state, SMALL, "other")
    assert room(state) is None


def test_the_nominated_node_keeps_its_room_for_the_nominee_only() -> None:
    state = world()
    state.apply_pod("MODIFIED", pod_of(running("v", deleting=True)))  # evicted
    state.apply_pod("ADDED", pod_of(nominee()))
    r = room(state)
    assert r is not None and r.node == "n0"
    # No proposal was made: the GPUs no live pod holds, the victim's and the free one.
    assert r.gpu_uuids == ("GPU-n0-6", "GPU-n0-7")
    assert not fits(state, SMALL, "other")  # GPU 7 is the nominee's
    assert fits(state, SMALL, "other", node="n1")
    assert not fits(state, BIG, "hi")  # terminating: the victim holds GPU 6 until it is gone
    state.apply_pod("DELETED", pod_of(running("v", deleting=True)))
    assert not fits(state, BIG, "hi")  # the report still shows it holding GPU 6
    report(state, node_n0({i: f"x{i}" for i in range(6)}, at=NOW + 1))
    assert fits(state, BIG, "hi")
    assert not fits(state, SMALL, "other")  # two free, both the nominee's


def test_the_preempt_verbs_proposal_names_the_rooms_gpus() -> None:
    state = world()
    state.propose("hi", {"n0": ("GPU-n0-7", "GPU-n0-6"), "n1": ("GPU-n1-0", "GPU-n1-1")})
    state.apply_pod("ADDED", pod_of(nominee()))
    r = room(state)
    assert r is not None and r.gpu_uuids == ("GPU-n0-7", "GPU-n0-6")


ENDS: dict[str, Callable[[ClusterState], None]] = {
    "nomination-cleared": lambda s: s.apply_pod("MODIFIED", pod_of(nominee(""))),
    "nominee-deleted": lambda s: s.apply_pod("DELETED", pod_of(nominee())),
    "nominee-terminating": lambda s: s.apply_pod("MODIFIED", pod_of(nominee(deleting=True))),
}


@pytest.mark.parametrize("end", ENDS.values(), ids=ENDS.keys())
def test_the_room_ends_with_the_nomination(end: Callable[[ClusterState], None]) -> None:
    state = world()
    state.apply_pod("ADDED", pod_of(nominee()))
    assert not fits(state, SMALL, "other")
    end(state)
    assert room(state) is None
    assert fits(state, SMALL, "other")
    assert state.nominations.sizes()["nominated"] == 0


def test_a_new_nominated_node_moves_the_room() -> None:
    state = world()
    state.apply_pod("ADDED", pod_of(nominee()))
    state.apply_pod("MODIFIED", pod_of(nominee("n1")))
    r = room(state)
    assert r is not None and r.node == "n1"
    assert fits(state, SMALL, "other")


def test_a_decision_for_the_nominee_replaces_its_room_for_good() -> None:
    state = world()
    state.apply_pod("ADDED", pod_of(nominee()))
    chosen = Fit("n1", ("GPU-n1-0", "GPU-n1-1"), True)
    state.assume(assume(chosen, BIG, pod_uid="hi", pod_key="serving/hi", now=NOW, ttl_s=30))
    state.apply_pod("MODIFIED", pod_of(nominee()))  # still nominated to n0, not yet bound
    r = room(state)
    assert r is not None and (r.node, r.expires_at) == ("n1", NOW + 30)
    assert fits(state, SMALL, "other")


def loading(uid: str, **kw: Any) -> dict[str, Any]:
    """A pod bound to n0 with its reservation on GPU 7, still loading (not Ready)."""
    value = encode_reservation(
        Reservation(uid, "", "n0", ("GPU-n0-7",), 70 * GIB, S.BOUND, created_at=NOW - 5)
    )
    return pod_object(
        uid,
        uid=uid,
        node_name="n0",
        phase="Running",
        annotations={"vramfit.io/reservation": value},
        **kw,
    )


def test_a_pod_gone_while_loading_holds_its_gpus_until_its_memory_is_back() -> None:
    state = synced_state([node_n0()], pods=[running(f"x{i}") for i in range(6)] + [loading("w")])
    assert not fits(state, SMALL, "other")
    state.apply_pod("DELETED", pod_of(loading("w")))
    assert not fits(state, SMALL, "other")
    assert state.nominations.sizes()["releasing"] == 1
    report(state, node_n0())  # the same report again: not newer than the deletion
    assert not fits(state, SMALL, "other")
    still = node_n0(at=NOW + 1)
    gpus = list(still.gpus)
    gpus[7] = dataclasses.replace(
        gpus[7], pod_memory=(PodMemory("w", 20 * GIB),), free_bytes=60 * GIB, used_bytes=20 * GIB
    )
    report(state, dataclasses.replace(still, gpus=tuple(gpus)))  # its process is still exiting
    assert not fits(state, SMALL, "other")
    report(state, node_n0(at=NOW + 2))
    assert fits(state, SMALL, "other")
    assert state.nominations.sizes()["releasing"] == 0


def test_a_relist_keeps_a_gone_pods_gpus_until_its_memory_is_back() -> None:
    state = synced_state([node_n0()], pods=[running(f"x{i}") for i in range(6)] + [loading("w")])
    state.apply_pod("DELETED", pod_of(loading("w")))
    state.replace_pods(read_pods([running(f"x{i}") for i in range(6)], now=NOW), listed_at=NOW)
    assert not fits(state, SMALL, "other")
    report(state, node_n0(at=NOW + 1))
    assert fits(state, SMALL, "other")


def test_the_tables_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nominations, "MAX_PROPOSALS", 3)
    state = world()
    for i in range(10):
        state.propose(f"p{i}", {f"n{j}": ("g",) for j in range(5)})
    assert state.nominations.sizes()["proposals"] == 3
