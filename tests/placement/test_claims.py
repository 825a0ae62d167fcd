"""A fleet's own ``claims`` give the same hidden GPUs and loads as the plain loop over a list.

The sums are kept by puts, pops, reports and removals in any order; a request subtracts the
pod's own reservation and those expired. The hypothesis test runs random sequences of all of
these against the loop (the rules of ``fit.hidden_gpus`` and ``policies.loads_in_flight``)
and against ``decide_fleet`` given the same reservations as a list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from placement.fleet import Fleet, _claims_of, decide_fleet
from placement.model import GIB, Demand, GpuState, NodeState, Reservation, ReservationState
from tests.placement.conftest import NOW, PODS, demands, node_states

SLOW = settings(deadline=None, max_examples=300)
NAMES = ("node-0", "node-1", "node-2")


def node(name: str, gpus: int = 4, holders: dict[int, str] | None = None) -> NodeState:
    holders = holders or {}
    return NodeState(
        name=name,
        gpus=tuple(
            GpuState(
                uuid=f"GPU-{name}-{i}",
                index=i,
                product="NVIDIA-H100-80GB-HBM3",
                total_bytes=80 * GIB,
                free_bytes=80 * GIB,
                holder_pod_uid=holders.get(i),
            )
            for i in range(gpus)
        ),
        observed_at=NOW,
        lease_renewed_at=NOW,
    )


def res(
    uid: str,
    node_name: str,
    slots: tuple[int, ...],
    state: ReservationState = ReservationState.ASSUMED,
    expires_at: float | None = NOW + 30,
) -> Reservation:
    return Reservation(
        pod_uid=uid,
        pod_key=f"ns/{uid}",
        node=node_name,
        gpu_uuids=tuple(f"GPU-{node_name}-{s}" for s in slots),
        bytes_per_gpu=40 * GIB,
        state=state,
        created_at=NOW - 1,
        expires_at=expires_at,
    )


def assert_same(fleet: Fleet, now: float, pod_uid: str) -> None:
    hidden, loads = _claims_of(fleet, fleet.claims, now, pod_uid)
    plain_hidden, plain_loads = _claims_of(fleet, list(fleet.claims), now, pod_uid)
    np.testing.assert_array_equal(hidden, plain_hidden)
    np.testing.assert_array_equal(loads, plain_loads)


Step = Callable[[Fleet], object]

CASES: dict[str, tuple[list[Step], float, str, dict[str, tuple[int, ...]], dict[str, int]]] = {
    # name: steps, now, pod asking, hidden slots by node, loads by node
    "one-reservation": (
        [lambda f: f.claims.put(res("a", "node-0", (0, 1)))],
        NOW,
        "me",
        {"node-0": (0, 1)},
        {"node-0": 1},
    ),
    "own-reservation-does-not-count": (
        [lambda f: f.claims.put(res("me", "node-0", (0, 1)))],
        NOW,
        "me",
        {},
        {},
    ),
    "expired-does-not-count": (
        [lambda f: f.claims.put(res("a", "node-0", (2,), expires_at=NOW))],
        NOW,
        "me",
        {},
        {},
    ),
    "ready-hides-but-is-not-loading": (
        [lambda f: f.claims.put(res("a", "node-1", (3,), ReservationState.READY, None))],
        NOW,
        "me",
        {"node-1": (3,)},
        {},
    ),
    "a-gpu-the-node-shows-held-by-the-pod-is-not-hidden": (
        [
            lambda f: f.claims.put(res("a", "node-0", (0, 1))),
            lambda f: f.replace(node("node-0", holders={0: "a"})),
        ],
        NOW,
        "me",
        {"node-0": (1,)},
        {"node-0": 1},
    ),
    "replacing-a-pods-reservation-moves-it": (
        [
            lambda f: f.claims.put(res("a", "node-0", (0,))),
            lambda f: f.claims.put(res("a", "node-1", (1,))),
        ],
        NOW,
        "me",
        {"node-1": (1,)},
        {"node-1": 1},
    ),
    "a-node-reported-after-its-reservation": (
        [
            lambda f: f.remove("node-2"),
            lambda f: f.claims.put(res("a", "node-2", (0,))),
            lambda f: f.replace(node("node-2")),
        ],
        NOW,
        "me",
        {"node-2": (0,)},
        {"node-2": 1},
    ),
    "a-removed-node-hides-nothing": (
        [
            lambda f: f.claims.put(res("a", "node-2", (0,))),
            lambda f: f.remove("node-2"),
        ],
        NOW,
        "me",
        {},
        {},
    ),
    "popped-and-cleared": (
        [
            lambda f: f.claims.put(res("a", "node-0", (0,))),
            lambda f: f.claims.put(res("b", "node-1", (0,))),
            lambda f: f.claims.pop("a"),
        ],
        NOW,
        "me",
        {"node-1": (0,)},
        {"node-1": 1},
    ),
    "wider-node-grows-the-sums": (
        [
            lambda f: f.claims.put(res("a", "node-0", (0,))),
            lambda f: f.replace(node("node-3", gpus=16)),
            lambda f: f.claims.put(res("b", "node-3", (12, 15))),
        ],
        NOW,
        "me",
        {"node-0": (0,), "node-3": (12, 15)},
        {"node-0": 1, "node-3": 1},
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_named_cases(case: str) -> None:
    steps, now, pod_uid, hidden_slots, loads_by_node = CASES[case]
    fleet = Fleet([node(n) for n in NAMES], capacity=2, width=4)
    for step in steps:
        step(fleet)
    hidden, loads = _claims_of(fleet, fleet.claims, now, pod_uid)
    for name in fleet.names():
        r = fleet.row_at(name)
        assert r is not None
        assert tuple(np.flatnonzero(hidden[:, r]).tolist()) == hidden_slots.get(name, ())
        assert int(loads[r]) == loads_by_node.get(name, 0)
    assert_same(fleet, now, pod_uid)


def test_the_mapping_reads_back_what_was_put() -> None:
    fleet = Fleet([node(n) for n in NAMES])
    a, b = res("a", "node-0", (0,)), res("b", "node-0", (1,), expires_at=NOW - 1)
    fleet.claims.put(a)
    fleet.claims.put(b)
    assert fleet.claims.get("a") == a and "b" in fleet.claims and len(fleet.claims) == 2
    assert sorted(r.pod_uid for r in fleet.claims.on_node("node-0")) == ["a", "b"]
    assert fleet.claims.expired(NOW) == ["b"]
    assert fleet.claims.pop("b") == b and fleet.claims.pop("b") is None
    fleet.claims.clear()
    assert len(fleet.claims) == 0 and fleet.claims.on_node("node-0") == []


def test_rows_of_follows_nodes_added_and_removed() -> None:
    fleet = Fleet([node(n) for n in NAMES])
    names = ("node-2", "node-0", "node-9")
    first = fleet.rows_of(names).tolist()
    assert first[2] == -1
    fleet.replace(node("node-9"))
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
                        gpu_uuids=tuple(f"GPU-{name}-{t}" for t in tags),
                        bytes_per_gpu=40 * GIB,
                        state=draw(st.sampled_from(list(ReservationState))),
                        created_at=NOW - 5,
                        expires_at=draw(
                            st.none() | st.sampled_from([NOW - 1, NOW, NOW + 0.5, NOW + 30])
                        ),
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
    got = decide_fleet(fleet, names, demand, fleet.claims, now=NOW, pod_uid=pod_uid)
    plain = decide_fleet(fleet, names, demand, kept, now=NOW, pod_uid=pod_uid)
    assert got == plain
    # A copy of the fleet's reservations put into a fresh fleet reads the same.
    again = Fleet([fleet.node(n) for n in fleet.names()])
    for r in kept:
        again.claims.put(dataclasses.replace(r))
    for n in fleet.names():
        assert sorted(r.pod_uid for r in again.claims.on_node(n)) == sorted(
            r.pod_uid for r in fleet.claims.on_node(n)
        )
