"""The load budget: a node takes another cold load only while its link could finish every cold
load in flight there, the new one included, within the budget; warm loads are exempt.

Each case is asked of ``fit()`` (the reference) and of the fleet's ``evaluate`` (the fast
path), which must say the same.
"""

from __future__ import annotations

import dataclasses

import pytest

from placement.fit import fit
from placement.fleet import Fleet, Query, decide_fleet, evaluate
from placement.loadbudget import load_bytes
from placement.model import (
    GIB,
    Demand,
    Fit,
    FitSettings,
    NodeState,
    Reject,
    Reservation,
    ReservationState,
)
from tests.builders import NOW, node, reservation

LLAMA, SMALL = "llama-70b", "llama-8b"
BIG = Demand(2, vram_per_gpu=70 * GIB, model_id=LLAMA, model_bytes=131 * GIB)
TINY = Demand(1, vram_per_gpu=20 * GIB, model_id=SMALL, model_bytes=15 * GIB)


def loading(
    pod: str = "a",
    gpus: tuple[int, ...] = (0, 1),
    *,
    model: str = LLAMA,
    size: int = 131 * GIB,
    state: ReservationState = ReservationState.BOUND,
    expires_at: float | None = None,
) -> Reservation:
    """Pod ``pod``'s reservation with a load of ``size`` bytes of ``model`` in flight."""
    r = reservation(pod, gpus, state=state, gib=70, expires_at=expires_at)
    return dataclasses.replace(r, model_id=model, load_bytes=size)


def with_bandwidth(n: NodeState, gib_s: float | None) -> NodeState:
    return dataclasses.replace(n, remote_bytes_per_s=None if gib_s is None else gib_s * GIB)


IDLE = with_bandwidth(node(8), 1.25)
BUSY_NOTE = "would exceed the node's 120s load budget"

# name: node, demand, reservations, settings, fits, words in the reason
CASES: dict[str, tuple[NodeState, Demand, list[Reservation], FitSettings, bool, str]] = {
    "idle-node-takes-a-load-larger-than-the-budget": (IDLE, BIG, [], FitSettings(), True, ""),
    "a-small-load-fits-beside-a-large-one": (
        IDLE,
        TINY,
        [loading()],
        FitSettings(),
        True,
        "",
    ),  # 131 + 15 GiB at 1.25 GiB/s: 117 s
    "the-same-on-a-slower-link-waits": (
        with_bandwidth(node(8), 1.0),
        TINY,
        [loading()],
        FitSettings(),
        False,
        "node is loading 1 model(s) from remote storage (131 GiB left, 131s at 1 GiB/s); "
        "this pod's 15 GiB would exceed the node's 120s load budget",
    ),
    "two-large-loads-never-share": (
        IDLE,
        BIG,
        [loading()],
        FitSettings(),
        False,
        BUSY_NOTE,
    ),
    "a-longer-budget-lets-them-share": (
        IDLE,
        BIG,
        [loading()],
        FitSettings(load_budget_s=240.0),
        True,
        "",
    ),
    "the-budget-off": (IDLE, BIG, [loading()], FitSettings(load_budget_s=None), True, ""),
    "no-bandwidth-no-budget": (
        with_bandwidth(node(8), None),
        BIG,
        [loading()],
        FitSettings(),
        True,
        "",
    ),
    "warm-pod-is-exempt": (
        dataclasses.replace(IDLE, cached_models=node(1, models=[LLAMA]).cached_models),
        BIG,
        [loading(model=SMALL)],
        FitSettings(),
        True,
        "",
    ),
    "warm-load-in-flight-does-not-count": (
        dataclasses.replace(IDLE, cached_models=node(1, models=[LLAMA]).cached_models),
        dataclasses.replace(BIG, model_id=SMALL),
        [loading()],
        FitSettings(),
        True,
        "",
    ),
    "ready-pod-loads-nothing": (
        IDLE,
        BIG,
        [loading(state=ReservationState.READY)],
        FitSettings(),
        True,
        "",
    ),
    "expired-reservation-loads-nothing": (
        IDLE,
        BIG,
        [loading(state=ReservationState.ASSUMED, expires_at=NOW - 1)],
        FitSettings(),
        True,
        "",
    ),
    "own-reservation-does-not-count": (IDLE, BIG, [loading("me")], FitSettings(), True, ""),
    "bytes-in-memory-are-loaded": (
        with_bandwidth(node(8, held={0: "a", 1: "a"}, held_gib=60), 1.25),
        BIG,
        [loading()],
        FitSettings(),
        True,
        "",
    ),  # 131 - 120 = 11 GiB left; with 131 more: 114 s
    "a-load-part-way-still-counts": (
        with_bandwidth(node(8, held={0: "a", 1: "a"}, held_gib=30), 1.25),
        BIG,
        [loading()],
        FitSettings(),
        False,
        "node is loading 1 model(s) from remote storage (71 GiB left, 57s at 1.2 GiB/s)",
    ),
    "unknown-size-counts-the-memory": (
        IDLE,
        TINY,
        [loading(size=0, gpus=(0, 1, 2))],  # 3 x 70 GiB
        FitSettings(),
        False,
        "(210 GiB left",
    ),
    "many-small-loads-fill-the-budget": (
        IDLE,
        TINY,
        [loading(f"p{i}", (), model=SMALL, size=15 * GIB) for i in range(10)],
        FitSettings(),
        False,
        "node is loading 10 model(s)",
    ),  # 10 x 15 GiB at 1.25 GiB/s: 120 s is within the budget, 11 x 15 GiB is not
    "ten-small-loads-fit-exactly": (
        IDLE,
        TINY,
        [loading(f"p{i}", (), model=SMALL, size=15 * GIB) for i in range(9)],
        FitSettings(),
        True,
        "",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_load_budget(case: str) -> None:
    n, demand, reservations, settings, fits, words = CASES[case]
    result = fit(n, demand, reservations, now=NOW, settings=settings, pod_uid="me")
    assert isinstance(result, Fit) is fits
    if not fits:
        assert isinstance(result, Reject) and result.resolvable
        assert words in result.reason
    fleet = Fleet([n])
    got_fits, rejects = evaluate(
        fleet, Query([n.name], demand, reservations, now=NOW, settings=settings, pod_uid="me")
    )
    assert (n.name in got_fits) is fits
    if isinstance(result, Reject):
        assert rejects == {n.name: result}
    for r in reservations:
        fleet.claims.put(r)
    counted = decide_fleet(
        fleet, Query([n.name], demand, fleet.claims, now=NOW, settings=settings, pod_uid="me")
    )
    assert (counted.chosen is not None) is fits
    if not fits:
        assert dict(counted.reject_counts) == {"load-budget": 1}


def test_a_busy_node_gives_way_to_one_that_fits() -> None:
    busy = with_bandwidth(node(8, name="a"), 1.25)
    idle = with_bandwidth(node(8, name="b", held=range(6)), 1.25)
    r = dataclasses.replace(loading(), node="a", gpu_uuids=())
    got = decide_fleet(Fleet([busy, idle]), Query(["a", "b"], BIG, [r], now=NOW))
    assert got.chosen is not None and got.chosen.node == "b"


@pytest.mark.parametrize(
    ("demand", "expected"),
    [
        pytest.param(Demand(2, vram_per_gpu=80 * GIB, model_bytes=131 * GIB), 131 * GIB, id="size"),
        pytest.param(
            Demand(8, vram_per_gpu=57 * GIB, model_bytes=756 * GIB), 456 * GIB, id="shard"
        ),
        pytest.param(Demand(2, vram_per_gpu=40 * GIB), 80 * GIB, id="no-size"),
        pytest.param(Demand(2, model_bytes=10 * GIB), 10 * GIB, id="no-memory"),
        pytest.param(Demand(0), 0, id="nothing"),
    ],
)
def test_load_bytes(demand: Demand, expected: int) -> None:
    assert load_bytes(demand) == expected
