"""The extender's view: reservations rebuilt from pods and ended by pods and reports, Leases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from extender.decisions import recheck
from extender.state import LEASES, PODS, REPORTS, ClusterState
from placement.annotation import encode_reservation
from placement.lifecycle import assume
from placement.model import GIB, Demand, Fit, FitSettings, Reject, Reservation, ReservationState
from placement.policies import loads_in_flight
from tests.extender.conftest import (
    NOW,
    gpu_node,
    lease_object,
    lease_of,
    pod_object,
    pod_of,
    report_object,
    report_of,
    synced_state,
)

GPUS = ("GPU-n0-0", "GPU-n0-1")


def annotated(
    name: str,
    *,
    node: str = "n0",
    gpus: tuple[str, ...] = GPUS,
    at: float = NOW - 5,
    bound_to: str | None = "n0",
    **kw: Any,
) -> dict[str, Any]:
    value = encode_reservation(
        Reservation(
            pod_uid="",
            pod_key="",
            node=node,
            gpu_uuids=gpus,
            bytes_per_gpu=70 * GIB,
            state=ReservationState.BOUND,
            created_at=at,
        )
    )
    return pod_object(
        name,
        gpus=len(gpus),
        uid=name,
        node_name=bound_to or "",
        annotations={"vramfit.io/reservation": value},
        **kw,
    )


def states(state: ClusterState) -> dict[str, str]:
    with state.locked_view(NOW) as view:
        return {r.pod_uid: r.state.value for r in view.fleet.claims}


@dataclass(frozen=True)
class LifeCase:
    pods: list[dict[str, Any]]
    expect: dict[str, str]
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


LIFE_CASES: dict[str, Callable[[], LifeCase]] = {
    "bound-pod-is-rebuilt-as-bound": lambda: LifeCase([annotated("a")], {"a": "bound"}),
    "terminating-pod-still-holds-its-gpus": lambda: LifeCase(
        [annotated("a", deleting=True, phase="Running")], {"a": "bound"}
    ),
    "ready-pod-is-no-longer-loading-but-holds": lambda: LifeCase(
        [annotated("a", ready=True, phase="Running")], {"a": "ready"}
    ),
    "failed-pod-holds-nothing": lambda: LifeCase([annotated("a", phase="Failed")], {}),
    "succeeded-pod-holds-nothing": lambda: LifeCase([annotated("a", phase="Succeeded")], {}),
    # A pod gone while still loading may have memory the last report does not show: held
    # until a newer report shows none (tests/extender/test_nominations.py).
    "deleted-loading-pod-holds-until-its-memory-is-back": lambda: LifeCase(
        [annotated("a")], {"a": "bound"}, events=[("DELETED", annotated("a"))]
    ),
    "pod-failing-while-loading-holds-until-its-memory-is-back": lambda: LifeCase(
        [annotated("a")], {"a": "bound"}, events=[("MODIFIED", annotated("a", phase="Failed"))]
    ),
    "deleted-pod-assumed-only-releases": lambda: LifeCase(
        [annotated("a", bound_to=None)], {}, events=[("DELETED", annotated("a", bound_to=None))]
    ),
    "unbound-annotated-pod-is-held-as-assumed": lambda: LifeCase(
        [annotated("a", bound_to=None)], {"a": "assumed"}
    ),
    "unbound-annotated-pod-past-its-ttl-holds-nothing": lambda: LifeCase(
        [annotated("a", bound_to=None, at=NOW - 120)], {}
    ),
    "annotation-for-another-node-is-ignored": lambda: LifeCase(
        [annotated("a", bound_to="elsewhere")], {}
    ),
    "malformed-annotation-is-ignored": lambda: LifeCase(
        [
            pod_object(
                "a",
                uid="a",
                node_name="n0",
                annotations={"vramfit.io/reservation": "{not json"},
            )
        ],
        {},
    ),
    "pod-without-gpus-or-annotation-is-not-tracked": lambda: LifeCase(
        [pod_object("web", gpus=0, uid="web", node_name="n0")], {}
    ),
    "ready-later-moves-to-ready": lambda: LifeCase(
        [annotated("a")], {"a": "ready"}, events=[("MODIFIED", annotated("a", ready=True))]
    ),
    "ready-then-not-ready-is-loading-again": lambda: LifeCase(
        [annotated("a", ready=True, phase="Running")],
        {"a": "bound"},
        events=[("MODIFIED", annotated("a", ready=False, phase="Running"))],
    ),
    "terminating-ready-pod-holds-until-gone": lambda: LifeCase(
        [annotated("a", ready=True, phase="Running")],
        {"a": "ready"},
        events=[("MODIFIED", annotated("a", ready=True, phase="Running", deleting=True))],
    ),
}


@pytest.mark.parametrize("make", LIFE_CASES.values(), ids=LIFE_CASES.keys())
def test_reservation_life(make: Callable[[], LifeCase]) -> None:
    case = make()
    state = synced_state([gpu_node("n0")], pods=case.pods)
    for event, raw in case.events:
        state.apply_pod(event, pod_of(raw))
    assert states(state) == case.expect


def test_agent_report_of_the_load_ends_the_reservation_for_good() -> None:
    state = synced_state([gpu_node("n0")], pods=[annotated("a", ready=True, phase="Running")])
    assert states(state) == {"a": "ready"}
    state.apply_report("MODIFIED", report_of(report_object(gpu_node("n0", held={0: "a", 1: "a"}))))
    assert states(state) == {}
    state.apply_pod("MODIFIED", pod_of(annotated("a", ready=True, phase="Running")))
    assert states(state) == {}, "a later pod event must not bring the reservation back"


def test_load_already_visible_at_rebuild_holds_nothing_extra() -> None:
    state = synced_state(
        [gpu_node("n0", held={0: "a", 1: "a"})],
        pods=[annotated("a", phase="Running", ready=True)],
    )
    assert states(state) == {}


def test_gpus_handed_to_a_loading_pod_keep_it_in_flight_until_ready() -> None:
    state = synced_state([gpu_node("n0")], pods=[annotated("a", phase="Running")])
    state.apply_report("MODIFIED", report_of(report_object(gpu_node("n0", held={0: "a", 1: "a"}))))
    assert states(state) == {"a": "bound"}
    state.apply_pod("MODIFIED", pod_of(annotated("a", phase="Running", ready=True)))
    assert states(state) == {}


def test_a_ready_pod_is_no_load_in_flight() -> None:
    state = synced_state([gpu_node("n0")], pods=[annotated("a", phase="Running")])
    with state.locked_view(NOW) as view:
        assert loads_in_flight("n0", view.fleet.claims, NOW) == 1
    state.apply_pod("MODIFIED", pod_of(annotated("a", phase="Running", ready=True)))
    with state.locked_view(NOW) as view:
        assert loads_in_flight("n0", view.fleet.claims, NOW) == 0
        assert [r.pod_uid for r in view.fleet.claims] == ["a"]  # its GPUs are still held


def test_assumed_reservation_follows_the_same_rule_once_its_pod_is_bound() -> None:
    state = synced_state([gpu_node("n0")])
    mine = assume(
        Fit("n0", GPUS, True), Demand(gpus=2), pod_uid="a", pod_key="ns/a", now=NOW, ttl_s=30
    )
    state.assume(mine)
    bound = pod_object("a", gpus=2, uid="a", node_name="n0", phase="Running")
    state.apply_pod("MODIFIED", pod_of(bound))
    assert states(state) == {"a": "assumed"}
    state.apply_pod(
        "MODIFIED", pod_of(pod_object("a", gpus=2, uid="a", node_name="n0", ready=True))
    )
    assert states(state) == {"a": "ready"}
    state.apply_pod("MODIFIED", pod_of(bound))
    assert states(state) == {"a": "bound"}, "not Ready any more: loading again"
    state.apply_report("MODIFIED", report_of(report_object(gpu_node("n0", held={0: "a", 1: "a"}))))
    assert states(state) == {"a": "bound"}, "held but not Ready: still in flight"
    state.apply_pod(
        "MODIFIED", pod_of(pod_object("a", gpus=2, uid="a", node_name="n0", ready=True))
    )
    assert states(state) == {}


def test_a_reservation_takes_the_gpus_the_kubelet_gave_its_pod() -> None:
    # vramfit predicted GPUs 0 and 1; the kubelet gave the pod 5 and 6.
    state = synced_state([gpu_node("n0")], pods=[annotated("a", phase="Running")])
    state.apply_report("MODIFIED", report_of(report_object(gpu_node("n0", held={5: "a", 6: "a"}))))
    with state.locked_view(NOW) as view:
        got = view.fleet.claims.get("a")
        assert got is not None and got.gpu_uuids == ("GPU-n0-5", "GPU-n0-6")
        sums = view.fleet.claims_of(view.fleet.claims, NOW, "b")
        assert not sums.hidden.any() and int(sums.pending.sum()) == 0
    state.apply_pod("MODIFIED", pod_of(annotated("a", phase="Running")))
    with state.locked_view(NOW) as view:
        got = view.fleet.claims.get("a")
        assert got is not None and got.gpu_uuids == ("GPU-n0-5", "GPU-n0-6")


def test_reservation_hides_gpus_until_visible() -> None:
    state = synced_state([gpu_node("n0", gpus=2)], pods=[annotated("a")])
    demand = Demand(gpus=1, vram_per_gpu=GIB)
    with state.locked_view(NOW) as view:
        other = recheck("n0", demand, view, pod_uid="b", now=NOW, settings=FitSettings())
        own = recheck("n0", demand, view, pod_uid="a", now=NOW, settings=FitSettings())
    assert isinstance(other, Reject) and "2 reserved" in other.reason
    assert not isinstance(own, Reject)


def test_relist_rebuilds_but_keeps_fresh_assumptions() -> None:
    state = synced_state([gpu_node("n0")], pods=[annotated("old")])
    fresh = assume(
        Fit("n0", ("GPU-n0-5",), True),
        Demand(gpus=1),
        pod_uid="fresh",
        pod_key="ns/fresh",
        now=NOW,
        ttl_s=30,
    )
    state.assume(fresh)
    state.replace_pods([], listed_at=NOW - 1)
    assert states(state) == {"fresh": "assumed"}
    state.replace_pods([], listed_at=NOW + 1)
    assert states(state) == {}


def test_released_bind_is_not_resurrected_by_its_annotation_event() -> None:
    state = synced_state([gpu_node("n0")])
    state.release("a")
    state.apply_pod("MODIFIED", pod_of(annotated("a", bound_to=None)))
    assert states(state) == {}


def test_readiness_waits_for_every_first_list() -> None:
    state = ClusterState(assumed_ttl_s=30)
    assert state.unsynced() == [PODS, REPORTS, LEASES]
    state.mark_synced(REPORTS)
    state.mark_synced(LEASES)
    assert not state.ready()
    state.mark_synced(PODS)
    assert state.ready()


def test_lease_events_move_the_node_in_and_out() -> None:
    state = synced_state([gpu_node("n0")], lease_at=NOW - 100)
    with state.locked_view(NOW) as view:
        assert view.fleet.node("n0").lease_renewed_at == NOW - 100
    state.apply_lease("MODIFIED", lease_of(lease_object("n0", NOW)))
    with state.locked_view(NOW) as view:
        assert view.fleet.node("n0").lease_renewed_at == NOW
    state.apply_lease("DELETED", lease_of(lease_object("n0", NOW)))
    with state.locked_view(NOW) as view:
        assert view.fleet.node("n0").lease_renewed_at is None
    state.apply_lease("ADDED", lease_of(lease_object("n1", NOW)))
    with state.locked_view(NOW) as view:  # a Lease of a node without a report adds no node
        assert view.fleet.names() == ["n0"]
        assert view.fleet.node("n0").lease_renewed_at is None


def test_report_deleted_and_relisted() -> None:
    state = synced_state([gpu_node("n0"), gpu_node("n1")])
    state.apply_report("DELETED", report_of(report_object(gpu_node("n0"))))
    assert state.node_count() == (1, 0)
    state.replace_reports([report_of(report_object(gpu_node("n2")))])
    with state.locked_view(NOW) as view:
        assert view.fleet.names() == ["n2"]


def test_report_without_status_is_a_reason() -> None:
    state = synced_state([])
    state.apply_report("ADDED", report_of({"metadata": {"name": "new"}}))
    with state.locked_view(NOW) as view:
        assert "no status yet" in view.invalid["new"]
