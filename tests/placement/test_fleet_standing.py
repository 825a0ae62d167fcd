"""The answers a fleet keeps per demand shape equal a fresh evaluation after any history.

``placement.fleet.standing`` keeps each shape's lean codes, picks and scores across requests
and redoes only the rows whose report or reservations moved; the rules that read the clock or
the Lease are applied afresh. Here a fleet lives through random sequences of reports, Lease
renewals, removals, reservations put and taken back, and time passing, with requests of a few
shapes in between; after each step the kept answer must equal ``evaluate_rows(lean=True)`` on
the fleet as it is, and the choice must equal ``decide()``'s.
"""

from __future__ import annotations

import dataclasses
import gc
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from placement.fleet import Fleet, Query, decide_fleet, evaluate, score_nodes
from placement.fleet.evaluation import CODE_OK, evaluate_rows, leanable
from placement.fleet.scores import row_scores
from placement.fleet.standing import MAX_PROFILES, MAX_SHAPES, standing_evaluation
from placement.model import GIB, Demand, FitSettings, Reservation, ReservationState
from placement.policies import resolve_profile
from placement.reference import decide
from tests.builders import NOW, node
from tests.placement.conftest import LOAD_SIZES, MODELS, PODS, demands, node_states

SLOW = settings(deadline=None, max_examples=200)

NAMES = [f"node-{i}" for i in range(6)]
OPERATIONS = ("report", "report", "renew", "reobserve", "remove", "reserve", "release", "time")


def lean_demands() -> st.SearchStrategy[Demand]:
    """Demands as most pods ask: GPUs of any product through the device plugin."""
    return demands().map(lambda d: dataclasses.replace(d, products=frozenset()))


def fit_settings() -> st.SearchStrategy[FitSettings]:
    return st.builds(
        FitSettings,
        max_report_age_s=st.sampled_from([120.0, 60.0]),
        nvlink_best_effort=st.booleans(),
        load_budget_s=st.sampled_from([None, 60.0, 200.0]),
    )


@st.composite
def reservations(draw: st.DrawFn, fleet: Fleet, now: float) -> Reservation:
    name = draw(st.sampled_from([*fleet.names(), "elsewhere"]))
    uuids = [g.uuid for g in fleet.node(name).gpus] if name in fleet else ["GPU-x"]
    return Reservation(
        pod_uid=draw(st.sampled_from([*PODS[:-1], "pod-d", "pod-e"])),
        pod_key="ns/pod",
        node=name,
        gpu_uuids=tuple(draw(st.lists(st.sampled_from(uuids), unique=True, max_size=3)))
        if uuids
        else (),
        bytes_per_gpu=40 * GIB,
        state=draw(st.sampled_from(list(ReservationState))),
        created_at=now - 5,
        expires_at=draw(st.none() | st.sampled_from([now - 1, now + 2, now + 30])),
        model_id=draw(st.sampled_from(["", *MODELS])),
        load_bytes=draw(st.sampled_from(LOAD_SIZES)),
    )


def step(data: st.DataObject, fleet: Fleet, now: float) -> float:
    """One thing happening to the fleet; returns the time after it."""
    op = data.draw(st.sampled_from(OPERATIONS))
    names = fleet.names()
    if op == "report" or not names:
        fleet.replace(data.draw(node_states(data.draw(st.sampled_from(NAMES)))))
    elif op == "renew":
        name = data.draw(st.sampled_from(names))
        renewed = data.draw(st.none() | st.sampled_from([now, now - 45.0]))
        fleet.renew(name, renewed, 40.0)
    elif op == "reobserve":
        held = fleet.node(data.draw(st.sampled_from(names)))
        fleet.reobserve(dataclasses.replace(held, observed_at=now, lease_renewed_at=now))
    elif op == "remove":
        fleet.remove(data.draw(st.sampled_from(names)))
    elif op == "reserve":
        fleet.claims.put(data.draw(reservations(fleet, now)))
    elif op == "release":
        uids = sorted(r.pod_uid for r in fleet.claims)
        if uids:
            fleet.claims.pop(data.draw(st.sampled_from(uids)))
    else:
        now += data.draw(st.sampled_from([0.5, 3.0, 30.0, 90.0]))
    return now


def assert_standing_equals_fresh(fleet: Fleet, ask: Query) -> None:
    kept = standing_evaluation(fleet, ask)
    fresh = evaluate_rows(fleet, ask, lean=True)
    np.testing.assert_array_equal(kept.code, fresh.code)
    np.testing.assert_array_equal(kept.chosen, fresh.chosen)
    np.testing.assert_array_equal(kept.free_now, fresh.free_now)
    np.testing.assert_array_equal(kept.rows, fresh.rows)
    assert kept.names == fresh.names
    assert kept.lean is fresh.lean
    ok = fresh.code == CODE_OK
    np.testing.assert_array_equal(kept.same_island[ok], fresh.same_island[ok])
    if ask.demand.gpus == 1:
        np.testing.assert_array_equal(kept.slot[ok], fresh.slot[ok])
    for profile in {resolve_profile(ask.demand), resolve_profile(ask.demand, "spread")}:
        got = row_scores(fleet, kept, ask.demand, profile)[ok]
        np.testing.assert_array_equal(got, row_scores(fleet, fresh, ask.demand, profile)[ok])


@SLOW
@given(data=st.data())
def test_kept_answers_equal_a_fresh_evaluation_after_any_history(data: st.DataObject) -> None:
    now = NOW
    fleet = Fleet(
        [
            data.draw(node_states(n))
            for n in data.draw(st.lists(st.sampled_from(NAMES), unique=True))
        ],
        capacity=1,
        width=1,
    )
    shapes = data.draw(st.lists(st.tuples(lean_demands(), fit_settings()), min_size=1, max_size=3))
    for _ in range(data.draw(st.integers(1, 12))):
        now = step(data, fleet, now)
        demand, fit = data.draw(st.sampled_from(shapes))
        pod = data.draw(st.sampled_from([*PODS, "pod-d"]))
        every = fleet.every_name()
        ask = Query(every, demand, fleet.claims, now=now, settings=fit, pod_uid=pod)
        assert_standing_equals_fresh(fleet, ask)
        nodes = [fleet.node(n) for n in every]
        expected = decide(nodes, demand, list(fleet.claims), now=now, settings=fit, pod_uid=pod)
        lean = decide_fleet(fleet, ask, reasons=False, all_fits=False)
        assert lean.chosen == expected.chosen
        assert dict(lean.reject_counts) == dict(decide_fleet(fleet, ask).reject_counts)
        if expected.chosen is None:  # the kept reasons are the ones worded afresh
            _, rejects = evaluate(fleet, ask)
            assert lean.rejects == rejects
            assert list(lean.rejects) == list(every)
            assert lean.split_rejects() == (
                {n: r.reason for n, r in rejects.items() if r.resolvable},
                {n: r.reason for n, r in rejects.items() if not r.resolvable},
            )
        some = data.draw(st.permutations([*every, "node-unknown"]))
        some = some[: data.draw(st.integers(1, len(some)))]
        ask_some = dataclasses.replace(ask, names=some)
        held = [fleet.node(n) for n in some if n in fleet]
        chosen = decide(held, demand, list(fleet.claims), now=now, settings=fit, pod_uid=pod).chosen
        got_some = decide_fleet(fleet, ask_some, reasons=False, all_fits=False)
        assert got_some.chosen == chosen
        if chosen is None:  # worded over other names than the fleet's own list
            assert got_some.rejects == evaluate(fleet, ask_some)[1]
        scores = score_nodes(fleet, ask)
        assert {
            n: s for n, s in zip(every, scores.tolist(), strict=True) if not math.isnan(s)
        } == dict(expected.scores)


@SLOW
@given(data=st.data())
def test_room_for_waiting_pods_reads_the_kept_answers(data: st.DataObject) -> None:
    """The room kept for waiting demand is read from the kept answers of their shapes."""
    now = NOW
    fleet = Fleet([data.draw(node_states(n)) for n in NAMES[:4]], capacity=1, width=1)
    demand = data.draw(lean_demands())
    waiting = tuple(
        (w, data.draw(st.integers(1, 3))) for w in data.draw(st.lists(lean_demands(), max_size=2))
    )
    for _ in range(data.draw(st.integers(1, 8))):
        now = step(data, fleet, now)
        every = fleet.every_name()
        ask = Query(every, demand, fleet.claims, now=now, pod_uid="me", waiting=waiting)
        nodes = [fleet.node(n) for n in every]
        expected = decide(nodes, demand, list(fleet.claims), now=now, pod_uid="me", waiting=waiting)
        assert decide_fleet(fleet, ask).decision() == expected


def two_nodes() -> Fleet:
    return Fleet([node(2, name=f"n{i}") for i in range(2)])


def ask_for(fleet: Fleet, demand: Demand, **kwargs: object) -> Query:
    return Query(fleet.every_name(), demand, fleet.claims, now=NOW, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "asks", "kept"),
    [
        ("one shape is kept once", [Demand(gpus=1)] * 3, 1),
        (
            "each shape is kept",
            [Demand(gpus=1), Demand(gpus=2), Demand(gpus=1, vram_per_gpu=GIB)],
            3,
        ),
        (
            "too many shapes forget the rest",
            [Demand(gpus=1, vram_per_gpu=i) for i in range(MAX_SHAPES + 3)],
            3,
        ),
    ],
)
def test_the_shapes_kept_are_bounded(name: str, asks: list[Demand], kept: int) -> None:
    fleet = two_nodes()
    for demand in asks:
        standing_evaluation(fleet, ask_for(fleet, demand))
    assert len(fleet.standing_memo) == kept, name


def test_the_profiles_kept_per_shape_are_bounded() -> None:
    fleet = two_nodes()
    ev = standing_evaluation(fleet, ask_for(fleet, Demand(gpus=1)))
    base = resolve_profile(Demand(gpus=1))
    for i in range(MAX_PROFILES + 2):
        assert ev.scored is not None
        ev.scored(dataclasses.replace(base, name=f"p{i}"))
    (kept,) = fleet.standing_memo.values()
    assert 0 < len(kept.scores) <= MAX_PROFILES


@pytest.mark.parametrize(
    ("name", "change", "redone"),
    [
        ("nothing changed", lambda f: None, []),
        ("a report", lambda f: f.replace(f.node("n1")), [1]),
        ("a Lease renewal only", lambda f: f.renew("n0", NOW, 40.0), []),
        ("a reservation", lambda f: f.claims.put(reservation_on("n0")), [0]),
        ("a removal", lambda f: f.remove("n0"), [0]),
        ("the last row removed", lambda f: f.remove("n1"), []),
    ],
)
def test_only_the_rows_that_moved_are_redone(name: str, change: object, redone: list[int]) -> None:
    fleet = two_nodes()
    demand = Demand(gpus=1)
    standing_evaluation(fleet, ask_for(fleet, demand))
    (kept,) = fleet.standing_memo.values()
    before = kept.report.copy(), kept.claimed.copy()
    change(fleet)  # type: ignore[operator]
    ev = standing_evaluation(fleet, ask_for(fleet, demand))
    moved = np.flatnonzero((kept.report != before[0]) | (kept.claimed != before[1]))
    assert moved.tolist() == redone, name
    np.testing.assert_array_equal(
        ev.code, evaluate_rows(fleet, ask_for(fleet, demand), lean=True).code
    )


def reservation_on(name: str) -> Reservation:
    return Reservation(
        pod_uid="pod-x",
        pod_key="ns/x",
        node=name,
        gpu_uuids=(),
        bytes_per_gpu=GIB,
        state=ReservationState.ASSUMED,
        created_at=NOW,
    )


@pytest.mark.parametrize(
    ("name", "query"),
    [
        ("a list of reservations", lambda f: Query(f.every_name(), Demand(gpus=1), [], now=NOW)),
        ("a pod of one product", lambda f: ask_for(f, Demand(gpus=1, products=frozenset({"x"})))),
        ("a pod that asks for no GPU", lambda f: ask_for(f, Demand(gpus=0))),
    ],
)
def test_queries_that_cannot_be_lean_are_evaluated_afresh(name: str, query: object) -> None:
    fleet = two_nodes()
    ask = query(fleet)  # type: ignore[operator]
    ev = standing_evaluation(fleet, ask)
    assert not fleet.standing_memo, name
    assert ev.lean is (ask.demand.gpus > 0 and leanable(fleet, ask))


@pytest.mark.parametrize(
    ("name", "asks"),
    [
        ("its own pod, then another", [("pod-x", NOW), ("pod-y", NOW), ("pod-x", NOW)]),
        ("another pod, then its own", [("pod-y", NOW), ("pod-x", NOW), ("pod-y", NOW)]),
        (
            "before it expires, after, and again",
            [("pod-y", NOW), ("pod-y", NOW + 60), ("pod-y", NOW + 61)],
        ),
    ],
)
def test_a_reservation_left_out_for_one_request_counts_again_for_the_next(
    name: str, asks: list[tuple[str, float]]
) -> None:
    """The rows whose sums a request reads without some reservation (the pod's own, or one
    expired) are redone for that request only."""
    fleet = two_nodes()
    taken = tuple(g.uuid for g in fleet.node("n0").gpus)
    fleet.claims.put(
        dataclasses.replace(reservation_on("n0"), gpu_uuids=taken, expires_at=NOW + 30)
    )
    demand = Demand(gpus=2)
    for pod, now in asks:
        ask = Query(fleet.every_name(), demand, fleet.claims, now=now, pod_uid=pod)
        kept = standing_evaluation(fleet, ask)
        fresh = evaluate_rows(fleet, ask, lean=True)
        np.testing.assert_array_equal(kept.code, fresh.code, err_msg=name)
        np.testing.assert_array_equal(kept.chosen, fresh.chosen, err_msg=name)


def test_a_refused_pod_words_again_only_the_rows_that_moved() -> None:
    """A pod no node can take reads the reasons kept for its shape; a report rewords its own
    row, and a row that fails a live rule (its Lease expired) is worded afresh each time, as
    its reason quotes the Lease's age."""
    fleet = two_nodes()
    for name in ("n0", "n1"):  # every GPU promised to a pod that has not got it yet
        taken = tuple(g.uuid for g in fleet.node(name).gpus)
        fleet.claims.put(
            dataclasses.replace(reservation_on(name), pod_uid=f"pod-{name}", gpu_uuids=taken)
        )
    demand = Demand(gpus=1)
    first = decide_fleet(fleet, ask_for(fleet, demand), reasons=False, all_fits=False)
    assert first.chosen is None and dict(first.reject_counts) == {"gpus-busy": 2}
    (kept,) = fleet.standing_memo.values()
    worded = kept.text_report.copy()
    fleet.replace(fleet.node("n1"))
    second = decide_fleet(fleet, ask_for(fleet, demand), reasons=False, all_fits=False)
    assert second.rejects == first.rejects
    assert (kept.text_report != worded)[:2].tolist() == [False, True]
    fleet.renew("n0", NOW - 100.0, 40.0)
    texts = set()
    for later in (1.0, 2.0):
        refused = Query(fleet.every_name(), demand, fleet.claims, now=NOW + later)
        _, expected = evaluate(fleet, refused)
        got = decide_fleet(fleet, refused, reasons=False, all_fits=False)
        assert got.rejects == expected
        texts.add(got.rejects["n0"].reason)
    assert len(texts) == 2  # the Lease's age, worded each time


def test_reasons_made_without_expired_reservations_are_not_kept_for_later() -> None:
    """A row whose sums leave out reservations that expired is worded for that request only:
    later requests may leave out more of them."""
    fleet = Fleet([node(4, name=f"n{i}") for i in range(2)])
    gpus = {n: tuple(g.uuid for g in fleet.node(n).gpus) for n in ("n0", "n1")}
    for uid, name, taken, expires in [
        ("pod-1", "n0", gpus["n0"][:1], NOW + 10),
        ("pod-2", "n0", gpus["n0"][1:2], NOW + 20),
        ("pod-3", "n0", gpus["n0"][2:], None),
        ("pod-4", "n1", gpus["n1"], None),
    ]:
        fleet.claims.put(
            dataclasses.replace(
                reservation_on(name), pod_uid=uid, gpu_uuids=taken, expires_at=expires
            )
        )
    demand = Demand(gpus=3)
    seen = []
    for now in (NOW, NOW + 15, NOW + 25):  # within the Leases' 40 s
        ask = Query(fleet.every_name(), demand, fleet.claims, now=now, pod_uid="pod-y")
        got = decide_fleet(fleet, ask, reasons=False, all_fits=False)
        assert got.rejects == evaluate(fleet, ask)[1]
        seen.append(got.rejects["n0"].reason)
    assert len(set(seen)) == 3  # 0, 1 and 2 GPUs free now


def test_an_evaluation_keeps_its_answer_after_later_requests() -> None:
    """A whole-fleet decision's reject counts are settled after the reply, outside the lock:
    the evaluation they read must not change with the next request."""
    fleet = two_nodes()
    demand = Demand(gpus=1)
    first = standing_evaluation(fleet, ask_for(fleet, demand))
    code, slot = first.code.copy(), first.slot.copy()
    fleet.replace(node(2, name="n0", held=(0, 1)))  # n0 is busy now
    later = standing_evaluation(fleet, ask_for(fleet, demand))
    assert later.code.tolist() != code.tolist()
    np.testing.assert_array_equal(first.code, code)
    np.testing.assert_array_equal(first.slot, slot)


@pytest.mark.parametrize(
    ("name", "demand"),
    [("a pod that places", Demand(gpus=1)), ("a pod no node can take", Demand(gpus=8))],
)
def test_decisions_leave_no_reference_cycles(name: str, demand: Demand) -> None:
    """A decision's evaluation is freed when the request lets it go, not by the cyclic
    garbage collector: at thousands of nodes each collection of such garbage took
    milliseconds."""
    fleet = two_nodes()
    decide_fleet(fleet, ask_for(fleet, demand), reasons=False, all_fits=False)  # kept first
    gc.collect()
    debug = gc.get_debug()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for pod in ("a", "b", "c"):
            fleet.replace(node(2, name="n1", held=(0,)))
            ask = dataclasses.replace(ask_for(fleet, demand), pod_uid=pod)
            decide_fleet(fleet, ask, reasons=False, all_fits=False)
            decide_fleet(
                fleet, dataclasses.replace(ask, names=["n1", "n0"]), reasons=False, all_fits=False
            )
            score_nodes(fleet, ask)
        gc.collect()
        assert gc.garbage == [], name
    finally:
        gc.set_debug(debug)
        gc.garbage.clear()
