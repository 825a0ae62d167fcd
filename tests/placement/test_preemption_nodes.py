"""The preempt verb's comparison across candidate nodes (``placement.preemption.preferred``):
named cases, and invariants on random candidates (the answer is a subset of the offer, never
empty when the offer is not, drops a node only for one that disrupts no more and scores
higher, and leaves kube-scheduler's pick as disruptive as it was)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from placement.model import GIB, Demand, Reservation, ReservationState
from placement.policies import PROFILES
from placement.preemption import (
    Candidate,
    Chosen,
    Victim,
    choose_victims,
    disruption,
    load_score,
    preferred,
)
from tests.builders import NOW, node, reservation

MODEL = "meta-llama/Llama-3.1-70B-Instruct"
DEMAND = Demand(gpus=1, vram_per_gpu=70 * GIB, model_id=MODEL, model_bytes=131 * GIB)
BINPACK = PROFILES["binpack"]


@dataclass(frozen=True)
class Spec:
    """One candidate node: eight 80 GiB GPUs, each held by a pod using 40 GiB; the victim
    holds GPU 0 (``victims`` of them hold GPUs 0.. when more). ``loading`` other pods there
    still load (bound reservations), ``victim_loading`` the victim does too; ``room`` the
    preemptor's own room is there; ``cached`` the pod's weights are on the node's disk."""

    name: str
    priority: int = 0
    victims: int = 1
    pdb: int = 0
    loading: int = 0
    victim_loading: bool = False
    room: bool = False
    cached: bool = False


def candidate(s: Spec) -> Candidate:
    holders = {i: f"{s.name}-p{i}" for i in range(8)}
    state = node(8, name=s.name, held=holders, held_gib=40, models=[MODEL] if s.cached else [])
    victims = tuple(Victim(holders[i], s.priority, NOW - 100 * i) for i in range(s.victims))
    rs: list[Reservation] = [
        reservation(holders[7 - i], (7 - i,), node=s.name, state=ReservationState.BOUND)
        for i in range(s.loading)
    ]
    if s.victim_loading:
        rs.append(reservation(holders[0], (0,), node=s.name, state=ReservationState.BOUND))
    if s.room:
        rs.append(reservation("me", (0,), node=s.name))
    got = choose_victims(state, DEMAND, victims, rs, now=NOW, pod_uid="me")
    assert isinstance(got, Chosen), got
    return Candidate(state, tuple(rs), got, victims, s.pdb)


@dataclass(frozen=True)
class Case:
    specs: list[Spec]
    kept: tuple[str, ...]
    profile: str = "binpack"


CASES = {
    "a-node-loading-loses-to-an-idle-one": Case([Spec("a", loading=1), Spec("b")], ("b",)),
    "fewer-loads-in-flight-win": Case(
        [Spec("a", loading=2), Spec("b", loading=1), Spec("c", loading=3)], ("b",)
    ),
    "equal-nodes-are-all-kept": Case([Spec("a"), Spec("b"), Spec("c")], ("a", "b", "c")),
    "cached-weights-win": Case([Spec("a"), Spec("b", cached=True)], ("b",)),
    "a-victim-still-loading-is-no-load-once-gone": Case(
        [Spec("a", victim_loading=True), Spec("b")], ("a", "b")
    ),
    "the-pods-own-room-is-no-load-of-another": Case([Spec("a", room=True), Spec("b")], ("a", "b")),
    "a-more-important-victim-keeps-the-less-disruptive-node": Case(
        [Spec("a", loading=1), Spec("b", priority=5)], ("a", "b")
    ),
    "a-less-important-victim-elsewhere-does-not-save-a-worse-node": Case(
        [Spec("a", loading=1, priority=5), Spec("b")], ("b",)
    ),
    "more-budget-violations-keep-the-node-with-fewer": Case(
        [Spec("a", loading=1), Spec("b", pdb=1)], ("a", "b")
    ),
    "more-victims-keep-the-node-with-fewer": Case(
        [Spec("a", loading=1), Spec("b", victims=2)], ("a", "b")
    ),
    "under-spread-too": Case([Spec("a", loading=1), Spec("b")], ("b",), profile="spread"),
    "one-candidate-is-kept": Case([Spec("a", loading=3)], ("a",)),
    "no-candidate-none-kept": Case([], ()),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_preferred(case: Case) -> None:
    got = preferred(
        [candidate(s) for s in case.specs],
        DEMAND,
        now=NOW,
        profile=PROFILES[case.profile],
        pod_uid="me",
    )
    assert got == case.kept


def test_disruption_is_the_schedulers_first_three_criteria() -> None:
    c = candidate(Spec("a", priority=3, victims=2, pdb=1))
    assert disruption(c) == (1, 3, 2 * (3 + 2**31))


def test_the_score_is_the_filters_on_the_node_without_its_victims() -> None:
    # The victim's GPU is free once it is gone: the pod takes it, and nothing else is free.
    idle, loading = candidate(Spec("a")), candidate(Spec("b", loading=1))
    assert idle.chosen.fit.gpu_uuids == ("a/GPU-0",)
    # binpack: (10 full x 2 + in-flight 10 or 5 x 3 + no cache 0 x 3 + one GPU 10 x 2) / 10
    assert load_score(idle, DEMAND, now=NOW, profile=BINPACK, pod_uid="me") == 7.0
    assert load_score(loading, DEMAND, now=NOW, profile=BINPACK, pod_uid="me") == 5.5


@st.composite
def offers(draw: st.DrawFn) -> list[Candidate]:
    names = draw(st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=6))
    return [
        candidate(
            Spec(
                name,
                priority=draw(st.integers(0, 2)),
                victims=draw(st.integers(1, 2)),
                pdb=draw(st.integers(0, 1)),
                loading=draw(st.integers(0, 3)),
                victim_loading=draw(st.booleans()),
                room=draw(st.booleans()),
                cached=draw(st.booleans()),
            )
        )
        for name in names
    ]


def _scores(cs: Sequence[Candidate], profile: str) -> dict[str, float]:
    return {
        c.node.name: load_score(c, DEMAND, now=NOW, profile=PROFILES[profile], pod_uid="me")
        for c in cs
    }


@settings(max_examples=200, deadline=None)
@given(cs=offers(), profile=st.sampled_from(sorted(PROFILES)))
def test_the_answer_narrows_and_never_makes_the_pick_more_disruptive(
    cs: list[Candidate], profile: str
) -> None:
    got = preferred(cs, DEMAND, now=NOW, profile=PROFILES[profile], pod_uid="me")
    names = [c.node.name for c in cs]
    assert list(got) == [n for n in names if n in got]  # a subset, in the offer's order
    assert bool(got) == bool(cs)
    score = _scores(cs, profile)
    rank = {c.node.name: disruption(c) for c in cs}
    for n in names:
        beaten = any(rank[m] <= rank[n] and score[m] > score[n] for m in names)
        assert (n not in got) == beaten
    if cs:
        # kube-scheduler picks by these criteria first: its pick is as disruptive as before.
        assert min(rank[n] for n in got) == min(rank.values())


@pytest.mark.parametrize(
    "worse",
    [
        pytest.param(Spec("a", loading=1), id="a-load-in-flight"),
        pytest.param(Spec("a", loading=1, victim_loading=True), id="a-load-besides-the-victim"),
    ],
)
def test_the_worse_node_is_dropped_whatever_the_offer_order(worse: Spec) -> None:
    a, b = candidate(worse), candidate(Spec("b"))
    for cs in ([a, b], [b, a]):
        assert preferred(cs, DEMAND, now=NOW, profile=BINPACK, pod_uid="me") == ("b",)
