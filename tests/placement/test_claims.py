"""A fleet's own ``claims`` give the same sums as the plain loop over a list.

The sums (hidden GPUs, GPUs promised per node and their counts, loads, cold loads and the
bytes they have left) are kept by puts, pops, reports and removals in any order; a request
subtracts the pod's own reservation and those expired. The hypothesis test runs random sequences
of all of these against the loop (the rules of ``fit.hidden_gpus``, ``fit.pending_counts``,
``policies.loads_in_flight`` and ``loadbudget.cold_in_flight``) and against
``decide_fleet`` given the same reservations as a list. A reservation whose pod the node shows
holding GPUs is reconciled to those.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from placement.claims import sizes_of
from placement.fleet import Fleet, Query, decide_fleet
from placement.model import GIB, Demand, NodeState, Reservation, ReservationState
from tests.builders import NOW, node, reservation, uuid, uuids
from tests.placement.conftest import LOAD_SIZES, MODELS, PODS, demands, node_states

SLOW = settings(deadline=None, max_examples=300)
NAMES = ("node-0", "node-1", "node-2")


def assert_same(fleet: Fleet, now: float, pod_uid: str) -> None:
    sums = fleet.claims_of(fleet.claims, now, pod_uid)
    plain = fleet.claims_of(list(fleet.claims), now, pod_uid)
    for got, expected in zip(sums, plain, strict=True):
        np.testing.assert_array_equal(got, expected)


Step = Callable[[Fleet], object]

Slots = dict[str, tuple[int, ...]]
CASES: dict[str, tuple[list[Step], float, str, Slots, dict[str, int], Slots]] = {
    # name: steps, now, pod asking, hidden slots by node, loads by node, promised counts by node
    "one-reservation": (
        [lambda f: f.claims.put(reservation("a", (0, 1), node="node-0"))],
        NOW,
        "me",
        {"node-0": (0, 1)},
        {"node-0": 1},
        {"node-0": (2,)},
    ),
    "own-reservation-does-not-count": (
        [lambda f: f.claims.put(reservation("me", (0, 1), node="node-0"))],
        NOW,
        "me",
        {},
        {},
        {},
    ),
    "expired-does-not-count": (
        [lambda f: f.claims.put(reservation("a", (2,), node="node-0", expires_at=NOW))],
        NOW,
        "me",
        {},
        {},
        {},
    ),
    "ready-hides-but-is-not-loading": (
        [
            lambda f: f.claims.put(
                reservation("a", (3,), node="node-1", state=ReservationState.READY)
            )
        ],
        NOW,
        "me",
        {"node-1": (3,)},
        {},
        {"node-1": (1,)},
    ),
    "a-pod-the-node-shows-holding-a-gpu-hides-none": (
        [
            lambda f: f.claims.put(reservation("a", (0, 1), node="node-0")),
            lambda f: f.replace(node(4, name="node-0", held={2: "a"})),
        ],
        NOW,
        "me",
        {},
        {"node-0": 1},
        {},
    ),
    "replacing-a-pods-reservation-moves-it": (
        [
            lambda f: f.claims.put(reservation("a", (0,), node="node-0")),
            lambda f: f.claims.put(reservation("a", (1,), node="node-1")),
        ],
        NOW,
        "me",
        {"node-1": (1,)},
        {"node-1": 1},
        {"node-1": (1,)},
    ),
    "a-node-reported-after-its-reservation": (
        [
            lambda f: f.remove("node-2"),
            lambda f: f.claims.put(reservation("a", (0,), node="node-2")),
            lambda f: f.replace(node(4, name="node-2")),
        ],
        NOW,
        "me",
        {"node-2": (0,)},
        {"node-2": 1},
        {"node-2": (1,)},
    ),
    "a-removed-node-hides-nothing": (
        [
            lambda f: f.claims.put(reservation("a", (0,), node="node-2")),
            lambda f: f.remove("node-2"),
        ],
        NOW,
        "me",
        {},
        {},
        {},
    ),
    "popped-and-cleared": (
        [
            lambda f: f.claims.put(reservation("a", (0,), node="node-0")),
            lambda f: f.claims.put(reservation("b", (0,), node="node-1")),
            lambda f: f.claims.pop("a"),
        ],
        NOW,
        "me",
        {"node-1": (0,)},
        {"node-1": 1},
        {"node-1": (1,)},
    ),
    "wider-node-grows-the-sums": (
        [
            lambda f: f.claims.put(reservation("a", (0,), node="node-0")),
            lambda f: f.replace(node(16, name="node-3")),
            lambda f: f.claims.put(reservation("b", (12, 15), node="node-3")),
        ],
        NOW,
        "me",
        {"node-0": (0,), "node-3": (12, 15)},
        {"node-0": 1, "node-3": 1},
        {"node-0": (1,), "node-3": (2,)},
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_named_cases(case: str) -> None:
    steps, now, pod_uid, hidden_slots, loads_by_node, promised = CASES[case]
    fleet = Fleet([node(4, name=n) for n in NAMES], capacity=2, width=4)
    for step in steps:
        step(fleet)
    sums = fleet.claims_of(fleet.claims, now, pod_uid)
    for name in fleet.names():
        r = fleet.row_at(name)
        assert r is not None
        assert tuple(np.flatnonzero(sums.hidden[:, r]).tolist()) == hidden_slots.get(name, ())
        assert int(sums.loads[r]) == loads_by_node.get(name, 0)
        assert sizes_of(int(sums.sizes[r])) == promised.get(name, ())
        assert int(sums.pending[r]) == sum(promised.get(name, ()))
    assert_same(fleet, now, pod_uid)


def test_a_reservation_takes_the_gpus_its_pod_got() -> None:
    fleet = Fleet([node(4, name=n) for n in NAMES])
    fleet.claims.put(reservation("a", (0, 1), node="node-0"))
    assert fleet.claims.get("a") == reservation("a", (0, 1), node="node-0")
    fleet.replace(node(4, name="node-0", held={3: "a", 2: "a"}))
    got = fleet.claims.get("a")
    assert got is not None and got.gpu_uuids == uuids(2, 3, node="node-0")
    assert list(fleet.claims) == [got]


def test_the_mapping_reads_back_what_was_put() -> None:
    fleet = Fleet([node(4, name=n) for n in NAMES])
    a, b = (
        reservation("a", (0,), node="node-0"),
        reservation("b", (1,), node="node-0", expires_at=NOW - 1),
    )
    fleet.claims.put(a)
    fleet.claims.put(b)
    assert fleet.claims.get("a") == a and "b" in fleet.claims and len(fleet.claims) == 2
    assert sorted(r.pod_uid for r in fleet.claims.on_node("node-0")) == ["a", "b"]
    assert fleet.claims.expired(NOW) == ["b"]
    assert fleet.claims.pop("b") == b and fleet.claims.pop("b") is None
    fleet.claims.clear()
    assert len(fleet.claims) == 0 and fleet.claims.on_node("node-0") == []


def test_rows_of_follows_nodes_added_and_removed() -> None:
    fleet = Fleet([node(4, name=n) for n in NAMES])
    names = ("node-2", "node-0", "node-9")
    first = fleet.rows_of(names).tolist()
    assert first[2] == -1
    fleet.replace(node(4, name="node-9"))
    assert fleet.rows_of(names).tolist()[2] == fleet.row_at("node-9")
    fleet.remove("node-0")
    assert fleet.rows_of(list(names)).tolist()[1] == -1
    with pytest.raises(ValueError):
        fleet.rows_of(names)[0] = 5  # shared between requests: read-only


@st.composite
def steps(draw: st.DrawFn) -> list[tuple[str, object]]:
    """A random sequence of reports, removals, puts and pops over three node names."""
    out: list[tuple[str, object]] = []
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["report", "report", "remove", "put", "put", "put", "pop"]))
        if kind == "report":
            out.append((kind, draw(node_states(draw(st.sampled_from(NAMES))))))
        elif kind == "remove":
            out.append((kind, draw(st.sampled_from(NAMES))))
        elif kind == "pop":
            out.append((kind, draw(st.sampled_from(PODS))))
        else:
            name = draw(st.sampled_from([*NAMES, "elsewhere"]))
            tags = draw(st.lists(st.integers(0, 8), unique=True, max_size=3))
            out.append(
                (
                    kind,
                    Reservation(
                        pod_uid=draw(st.sampled_from(PODS)),
                        pod_key="ns/pod",
                        node=name,
                        gpu_uuids=tuple(uuid(t, name) for t in tags),
                        bytes_per_gpu=40 * GIB,
                        state=draw(st.sampled_from(list(ReservationState))),
                        created_at=NOW - 5,
                        expires_at=draw(
                            st.none() | st.sampled_from([NOW - 1, NOW, NOW + 0.5, NOW + 30])
                        ),
                        model_id=draw(st.sampled_from(["", *MODELS])),
                        load_bytes=draw(st.sampled_from(LOAD_SIZES)),
                    ),
                )
            )
    return out


@SLOW
@given(sequence=steps(), demand=demands(), data=st.data())
def test_claims_equal_the_plain_loop_after_any_sequence(
    sequence: list[tuple[str, object]], demand: Demand, data: st.DataObject
) -> None:
    fleet = Fleet(capacity=1, width=1)  # grows as nodes arrive
    for kind, value in sequence:
        if kind == "report":
            assert isinstance(value, NodeState)
            fleet.replace(value)
        elif kind == "remove":
            assert isinstance(value, str)
            fleet.remove(value)
        elif kind == "put":
            assert isinstance(value, Reservation)
            fleet.claims.put(value)
        else:
            assert isinstance(value, str)
            fleet.claims.pop(value)
        now = data.draw(st.sampled_from([NOW - 2, NOW, NOW + 1]))
        assert_same(fleet, now, data.draw(st.sampled_from(PODS)))
    names = [*fleet.names(), "elsewhere"]
    pod_uid = data.draw(st.sampled_from(PODS))
    kept = list(fleet.claims)
    got = decide_fleet(fleet, Query(names, demand, fleet.claims, now=NOW, pod_uid=pod_uid))
    plain = decide_fleet(fleet, Query(names, demand, kept, now=NOW, pod_uid=pod_uid))
    assert got == plain
    # A copy of the fleet's reservations put into a fresh fleet reads the same.
    again = Fleet([fleet.node(n) for n in fleet.names()])
    for r in kept:
        again.claims.put(dataclasses.replace(r))
    for n in fleet.names():
        assert sorted(r.pod_uid for r in again.claims.on_node(n)) == sorted(
            r.pod_uid for r in fleet.claims.on_node(n)
        )
