"""The demand the extender keeps room for: GPU pods not bound yet and holding no reservation,
largest shapes first; and a filter that keeps the last node a waiting pod could use."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extender.decisions import (
    LazyWaiting,
    Mode,
    View,
    WaitingPods,
    filter_nodes,
    waiting_shapes,
)
from extender.state import MAX_WAITING_SHAPES
from placement.fleet import Fleet
from placement.lifecycle import assume
from placement.model import GIB, Demand, Fit, FitSettings, Reservation
from tests.extender.conftest import NOW, gpu_node, pod_object, pod_of, synced_state

NODES = [gpu_node("n0"), gpu_node("n1", held={i: "other" for i in range(4)})]


def shapes(waiting: tuple[tuple[Demand, int], ...]) -> list[tuple[int, int]]:
    return [(d.gpus, n) for d, n in waiting]


def test_unbound_gpu_pods_wait_largest_first() -> None:
    state = synced_state(
        NODES,
        pods=[
            pod_object("small-a", gpus=1, uid="small-a"),
            pod_object("small-b", gpus=1, uid="small-b"),
            pod_object("big", gpus=8, vram="20Gi", uid="big"),
            pod_object("bound", gpus=2, uid="bound", node_name="n0", phase="Running"),
            pod_object("cpu", gpus=0, uid="cpu"),
            pod_object("going", gpus=4, uid="going", deleting=True),
        ],
    )
    assert shapes(state.waiting()) == [(8, 1), (1, 2)]


def test_a_pod_with_a_reservation_or_a_node_waits_no_more() -> None:
    big = pod_object("big", gpus=8, vram="20Gi", uid="big")
    state = synced_state(NODES, pods=[big, pod_object("small", gpus=1, uid="small")])
    demand = Demand(8, vram_per_gpu=20 * GIB)
    chosen = Fit("n0", tuple(f"GPU-n0-{i}" for i in range(8)), True)
    state.assume(assume(chosen, demand, pod_uid="big", pod_key="serving/big", now=NOW, ttl_s=30))
    assert shapes(state.waiting()) == [(1, 1)]
    state.apply_pod("MODIFIED", pod_of(pod_object("small", gpus=1, uid="small", node_name="n1")))
    assert state.waiting() == ()


def test_only_the_largest_shapes_are_kept() -> None:
    pods = [pod_object(f"p{g}", gpus=g, uid=f"p{g}") for g in range(1, MAX_WAITING_SHAPES + 3)]
    state = synced_state(NODES, pods=pods)
    assert [g for g, _ in shapes(state.waiting())] == list(range(MAX_WAITING_SHAPES + 2, 2, -1))


@pytest.mark.parametrize(("waiting", "chosen"), [((), "n0"), (((8, 1),), "n1")])
def test_filter_keeps_the_last_node_a_waiting_pod_could_use(
    waiting: tuple[tuple[int, int], ...], chosen: str
) -> None:
    state = synced_state(NODES)
    small = Demand(1, vram_per_gpu=10 * GIB)
    with state.locked_view(NOW) as view:
        told = View(
            view.fleet,
            view.invalid,
            tuple((Demand(g, vram_per_gpu=20 * GIB), n) for g, n in waiting),
        )
        out = filter_nodes(
            small,
            "uid-small",
            ["n0", "n1"],
            told,
            now=NOW,
            mode=Mode.DECIDE,
            policy="spread",
            settings=FitSettings(),
        )
    assert out.chosen is not None and out.chosen.node == chosen


COUNTED: dict[str, tuple[dict[str, Demand], set[str], list[tuple[Demand, int]]]] = {
    "equal demands from different objects count together": (
        {"a": Demand(2, vram_per_gpu=GIB), "b": Demand(2, vram_per_gpu=GIB), "c": Demand(1)},
        set(),
        [(Demand(2, vram_per_gpu=GIB), 2), (Demand(1), 1)],
    ),
    "shared objects count once each pod, held pods not at all": (
        dict.fromkeys(["a", "b", "c"], Demand(1)) | {"d": Demand(4)},
        {"b", "d"},
        [(Demand(1), 2)],
    ),
    "more pods of one shape rank first among equal GPU counts": (
        {"a": Demand(1, vram_per_gpu=GIB)} | dict.fromkeys(["b", "c"], Demand(1)),
        set(),
        [(Demand(1), 2), (Demand(1, vram_per_gpu=GIB), 1)],
    ),
}


@pytest.mark.parametrize("case", list(COUNTED.values()), ids=list(COUNTED))
def test_waiting_shapes_count_by_value(
    case: tuple[dict[str, Demand], set[str], list[tuple[Demand, int]]],
) -> None:
    unbound, held, want = case
    assert list(waiting_shapes(unbound, held, MAX_WAITING_SHAPES)) == want


def test_waiting_is_counted_once_and_only_when_a_decision_reads_it() -> None:
    calls: list[int] = []

    def count() -> tuple[tuple[Demand, int], ...]:
        calls.append(1)
        return ((Demand(1), 3),)

    lazy = LazyWaiting(count)
    assert calls == []  # a bind's re-check never reads it
    assert bool(lazy) and list(lazy) == [(Demand(1), 3)] and lazy[0] == (Demand(1), 3)
    assert calls == [1]


# -- the count kept as pods and reservations change --------------------------------------------

SMALL = Demand(1, vram_per_gpu=10 * GIB)
PAIR = Demand(2, vram_per_gpu=40 * GIB)
WHOLE = Demand(8, vram_per_gpu=20 * GIB)
UIDS = [f"u{i}" for i in range(6)]

# (uid, demand or None): the pod waits with it, or no longer waits; ("hold", uid) / ("drop",
# uid): its reservation is put or popped; ("clear", ""): every reservation and pod forgotten.
op = st.one_of(
    st.tuples(st.sampled_from(UIDS), st.sampled_from([SMALL, PAIR, WHOLE, None])),
    st.tuples(st.sampled_from(["hold", "drop"]), st.sampled_from(UIDS)),
    st.tuples(st.just("clear"), st.just("")),
)


def _held(uid: str) -> Reservation:
    chosen = Fit("n0", ("GPU-n0-0",), True)
    return assume(chosen, SMALL, pod_uid=uid, pod_key=f"serving/{uid}", now=NOW, ttl_s=30)


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=40), st.integers(min_value=1, max_value=4))
def test_the_kept_count_equals_a_scan_after_any_sequence(
    ops: list[tuple[object, object]], limit: int
) -> None:
    claims = Fleet(capacity=4).claims
    waiting = WaitingPods(claims)
    claims.on_membership = waiting.held
    for a, b in ops:
        if a == "hold":
            claims.put(_held(str(b)))
        elif a == "drop":
            claims.pop(str(b))
        elif a == "clear":
            waiting.clear()
            claims.clear()
        else:
            assert b is None or isinstance(b, Demand)
            waiting.track(str(a), b)
        assert waiting.shapes(limit) == waiting_shapes(waiting.unbound, claims, limit)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param([("u0", SMALL), ("hold", "u0")], [], id="a-reservation-hides-the-pod"),
        pytest.param(
            [("hold", "u0"), ("u0", SMALL), ("drop", "u0")], [(1, 1)], id="held-first-then-freed"
        ),
        pytest.param(
            [("u0", SMALL), ("hold", "u0"), ("hold", "u0")],
            [],
            id="a-replaced-reservation-still-hides",
        ),
        pytest.param([("u0", SMALL), ("u0", WHOLE)], [(8, 1)], id="a-new-shape-replaces-the-old"),
        pytest.param([("u0", SMALL), ("u1", SMALL), ("u0", None)], [(1, 1)], id="bound-leaves"),
    ],
)
def test_named_sequences(
    steps: list[tuple[str, Demand | str | None]], expected: list[tuple[int, int]]
) -> None:
    claims = Fleet(capacity=4).claims
    waiting = WaitingPods(claims)
    claims.on_membership = waiting.held
    for a, b in steps:
        if a == "hold":
            claims.put(_held(str(b)))
        elif a == "drop":
            claims.pop(str(b))
        else:
            assert b is None or isinstance(b, Demand)
            waiting.track(a, b)
    assert shapes(waiting.shapes(4)) == expected
