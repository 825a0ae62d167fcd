"""The reservation end rule over named cases: ended or not, why, GPUs held, load in flight;
and a reservation reconciled with the GPUs its pod got."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from placement.lifecycle import (
    GONE,
    Ended,
    EndRule,
    PodFacts,
    Standing,
    reconcile,
    settle,
    shows_load,
    standing,
)
from placement.model import NodeState, Reservation, ReservationState
from tests.builders import node, reservation, uuids

# Pod p's reservation of GPUs 0 and 1, and one of no GPU (a pod that asked for none).
R = reservation("p", (0, 1), state=ReservationState.BOUND)
NO_GPU = reservation("p", (), state=ReservationState.BOUND)

RUNNING = PodFacts(phase="Running")
READY = PodFacts(phase="Running", ready=True)
HOLDS = Standing(Ended.NO, holds_gpus=True, in_flight=False)
LOADING = Standing(Ended.NO, holds_gpus=True, in_flight=True)
VISIBLE = Standing(Ended.LOAD_VISIBLE, holds_gpus=False, in_flight=False)
BOTH = {0: "p", 1: "p"}

CASES = {
    "pending-pod-holds-and-counts-as-a-load": (PodFacts(), node(), EndRule.HELD, LOADING),
    "running-not-ready-is-loading": (RUNNING, node(), EndRule.HELD, LOADING),
    "gpus-handed-out-but-not-ready-is-still-loading": (
        RUNNING,
        node(held=BOTH, held_gib=40),
        EndRule.HELD,
        LOADING,
    ),
    "ready-but-not-visible-holds-without-a-load": (READY, node(), EndRule.HELD, HOLDS),
    "ready-and-only-one-of-two-gpus-visible-holds": (
        READY,
        node(held={0: "p"}),
        EndRule.HELD,
        HOLDS,
    ),
    "ready-and-its-gpus-visible-ends": (READY, node(held=BOTH), EndRule.HELD, VISIBLE),
    "gpus-held-by-another-pod-are-not-its-load": (
        READY,
        node(held={0: "q", 1: "q"}),
        EndRule.HELD,
        HOLDS,
    ),
    "no-report-of-the-node-ends-nothing": (READY, None, EndRule.HELD, HOLDS),
    "loaded-rule-waits-for-the-memory": (
        READY,
        node(held=BOTH, held_gib=10),
        EndRule.LOADED,
        HOLDS,
    ),
    "loaded-rule-ends-once-the-memory-is-in-use": (
        READY,
        node(held=BOTH, held_gib=40),
        EndRule.LOADED,
        VISIBLE,
    ),
    "terminating-pod-keeps-its-gpus": (
        PodFacts(phase="Running", terminating=True),
        node(),
        EndRule.HELD,
        LOADING,
    ),
    "terminating-ready-pod-keeps-its-gpus-until-visible": (
        PodFacts(phase="Running", ready=True, terminating=True),
        node(),
        EndRule.HELD,
        HOLDS,
    ),
    "deleted-pod-ends": (GONE, node(), EndRule.HELD, Standing(Ended.POD_GONE, False, False)),
    "failed-pod-ends": (
        PodFacts(phase="Failed"),
        node(held=BOTH),
        EndRule.HELD,
        Standing(Ended.POD_FINISHED, False, False),
    ),
    "succeeded-pod-ends-even-if-it-says-ready": (
        PodFacts(phase="Succeeded", ready=True),
        None,
        EndRule.HELD,
        Standing(Ended.POD_FINISHED, False, False),
    ),
}


@pytest.mark.parametrize(("pod", "state", "rule", "expected"), CASES.values(), ids=CASES.keys())
def test_standing(
    pod: PodFacts, state: NodeState | None, rule: EndRule, expected: Standing
) -> None:
    assert standing(R, pod, state, rule) == expected


SHOWS = {
    "nothing-held": (R, node(), EndRule.HELD, False),
    "all-reserved-gpus-held": (R, node(held=BOTH), EndRule.HELD, True),
    "held-on-other-gpus-counts": (R, node(held={2: "p", 3: "p"}), EndRule.HELD, True),
    "a-reservation-of-no-gpu-needs-one-held": (NO_GPU, node(), EndRule.HELD, False),
    "a-reservation-of-no-gpu-once-one-is-held": (
        NO_GPU,
        node(held={3: "p"}),
        EndRule.HELD,
        True,
    ),
    "loaded-needs-the-bytes-on-each": (R, node(held=BOTH, held_gib=39.9), EndRule.LOADED, False),
    "loaded-with-the-bytes": (R, node(held=BOTH, held_gib=40), EndRule.LOADED, True),
}


@pytest.mark.parametrize(("r", "state", "rule", "expected"), SHOWS.values(), ids=SHOWS.keys())
def test_shows_load(r: Reservation, state: NodeState, rule: EndRule, expected: bool) -> None:
    assert shows_load(state, r, rule) is expected


SETTLE = {
    "assumed-pending-stays-assumed": (ReservationState.ASSUMED, PodFacts(), node(), "assumed"),
    "bound-loading-stays-bound": (ReservationState.BOUND, RUNNING, node(), "bound"),
    "bound-ready-becomes-ready": (ReservationState.BOUND, READY, node(), "ready"),
    "assumed-ready-becomes-ready": (ReservationState.ASSUMED, READY, node(), "ready"),
    "ready-not-ready-again-is-bound": (ReservationState.READY, RUNNING, node(), "bound"),
    "ready-and-visible-ends": (ReservationState.READY, READY, node(held=BOTH), None),
    "gone-ends": (ReservationState.ASSUMED, GONE, None, None),
}


@pytest.mark.parametrize(("before", "pod", "state", "after"), SETTLE.values(), ids=SETTLE.keys())
def test_settle(
    before: ReservationState, pod: PodFacts, state: NodeState | None, after: str | None
) -> None:
    r = dataclasses.replace(R, state=before)
    settled = settle(r, pod, state)
    if after is None:
        assert settled is None
        return
    assert settled is not None
    assert settled.state.value == after
    assert settled == dataclasses.replace(r, state=settled.state)  # nothing else changes
    assert settled.in_flight() is standing(r, pod, state).in_flight
    if settled.state is before:
        assert settled is r


@given(
    exists=st.booleans(),
    phase=st.sampled_from(["", "Pending", "Running", "Succeeded", "Failed", "Unknown"]),
    ready=st.booleans(),
    terminating=st.booleans(),
    held=st.sets(st.integers(0, 3), max_size=4),
    used=st.sampled_from([0, 20, 40, 80]),
    rule=st.sampled_from(list(EndRule)),
    before=st.sampled_from(list(ReservationState)),
)
def test_the_rule_is_consistent(
    *,
    exists: bool,
    phase: str,
    ready: bool,
    terminating: bool,
    held: set[int],
    used: float,
    rule: EndRule,
    before: ReservationState,
) -> None:
    pod = PodFacts(exists=exists, phase=phase, ready=ready, terminating=terminating)
    state = node(held=dict.fromkeys(held, "p"), held_gib=used)
    s = standing(dataclasses.replace(R, state=before), pod, state, rule)
    assert s.holds_gpus is (s.ended is Ended.NO)  # a reservation holds exactly while it stands
    assert not (s.in_flight and not s.holds_gpus)  # an ended reservation is no load
    if s.holds_gpus:
        assert s.in_flight is not ready  # Ready pods are never in flight, others always
    if ready and exists and phase not in ("Succeeded", "Failed"):
        assert (s.ended is Ended.LOAD_VISIBLE) is shows_load(state, R, rule)
    settled = settle(dataclasses.replace(R, state=before), pod, state, rule)
    assert (settled is None) is (s.ended is not Ended.NO)
    if settled is not None:
        assert settled.in_flight() is s.in_flight


RECONCILE = {
    "no-report-keeps-the-prediction": (R, None, R.gpu_uuids),
    "nothing-held-yet-keeps-the-prediction": (R, node(), R.gpu_uuids),
    "the-gpus-the-pod-got-replace-the-prediction": (
        R,
        node(held={3: "p", 2: "p", 0: "q"}),
        uuids(2, 3),
    ),
    "as-predicted-is-the-same-reservation": (R, node(held=BOTH), R.gpu_uuids),
    "a-report-of-another-node-says-nothing": (R, node(name="n2", held={2: "p"}), R.gpu_uuids),
}


@pytest.mark.parametrize(("r", "state", "gpus"), RECONCILE.values(), ids=RECONCILE.keys())
def test_reconcile(r: Reservation, state: NodeState | None, gpus: tuple[str, ...]) -> None:
    got = reconcile(r, state)
    assert got == dataclasses.replace(r, gpu_uuids=gpus)
    if gpus == r.gpu_uuids:
        assert got is r


def test_settle_reconciles_a_standing_reservation() -> None:
    state = node(held={4: "p", 5: "p"})
    settled = settle(R, RUNNING, state)
    assert settled == dataclasses.replace(R, gpu_uuids=uuids(4, 5))
