"""The solver: tiny instances with a known optimum, a published bin-packing instance, never
worse than first-fit decreasing, valid packings, lower bounds that hold, and multi-node groups
that are never split across node types."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.packing.bounds import l2_bins
from planner.packing.ffd import first_fit_decreasing
from planner.packing.problem import (
    BinType,
    ItemType,
    Node,
    Packing,
    Problem,
    group_errors,
    node_fits,
    validate,
)
from planner.packing.solve import SolveOptions, solve

FAST = SolveOptions(time_limit_s=5.0, workers=1)

# Falkenauer (1996) uniform class, instance u120_00: 120 items, capacity 150, optimum 48 bins.
# OR-Library file binpack1.txt (J. E. Beasley), first instance; also BPPLIB Falkenauer_U.
U120_00 = (
    42, 69, 67, 57, 93, 90, 38, 36, 45, 42, 33, 79, 27, 57, 44, 84, 86, 92, 46, 38, 85, 33, 82, 73,
    49, 70, 59, 23, 57, 72, 74, 69, 33, 42, 28, 46, 30, 64, 29, 74, 41, 49, 55, 98, 80, 32, 25, 38,
    82, 30, 35, 39, 57, 84, 62, 50, 55, 27, 30, 36, 20, 78, 47, 26, 45, 41, 58, 98, 91, 96, 73, 84,
    37, 93, 91, 43, 73, 85, 81, 79, 71, 80, 76, 83, 41, 78, 70, 23, 42, 87, 43, 84, 60, 55, 49, 78,
    73, 62, 36, 44, 94, 69, 32, 96, 70, 84, 58, 78, 25, 80, 58, 66, 83, 24, 98, 60, 42, 43, 43, 39,
)  # fmt: skip
U120_00_OPTIMUM = 48


def _bin(
    name: str, gpus: int, cost: int, islands: tuple[int, ...] | None = None, **kw: int
) -> BinType:
    return BinType(
        name,
        gpus,
        islands if islands is not None else (gpus,),
        kw.pop("cpu", 10**6),
        kw.pop("mem", 10**15),
        cost,
        **kw,
    )


def _items(spec: list[tuple[int, int, bool, tuple[str, ...]]]) -> tuple[ItemType, ...]:
    return tuple(
        ItemType(f"i{k}", gpus, 0, 0, island, allowed, count)
        for k, (gpus, count, island, allowed) in enumerate(spec)
    )


def test_u120_00_reaches_the_published_optimum() -> None:
    assert len(U120_00) == 120 and sum(U120_00) == 7078
    problem = Problem(
        (_bin("bin", 150, 1),),
        tuple(
            ItemType(f"w{w}", w, 0, 0, False, ("bin",), n)
            for w, n in sorted(Counter(U120_00).items())
        ),
    )
    sol = solve(problem, SolveOptions(time_limit_s=20.0))
    assert validate(problem, sol.packing) == []
    bins = len(sol.packing.nodes)
    assert bins == U120_00_OPTIMUM
    # The bound proves it: the solver knows the plan is optimal, not just good.
    assert sol.stats.lower_bound is not None
    assert math.ceil(sol.stats.lower_bound - 1e-9) == U120_00_OPTIMUM
    assert bins <= len(sol.ffd.nodes)


def test_l2_bound_on_u120_00() -> None:
    # ceil(7078 / 150) = 48 already; L2 is never below L1 and never above the optimum.
    assert l2_bins(list(U120_00), 150) == U120_00_OPTIMUM


KNOWN = [
    pytest.param(
        (_bin("eight", 8, 100),),
        [(4, 3, False, ("eight",)), (2, 2, False, ("eight",))],
        200,
        id="4+4|4+2+2-two-nodes",
    ),
    pytest.param(
        (_bin("one", 1, 10), _bin("eight", 8, 60)),
        [(1, 7, False, ("one", "eight"))],
        60,
        id="seven-singles-cheaper-on-one-big-node",
    ),
    pytest.param(
        (_bin("one", 1, 10), _bin("eight", 8, 90)),
        [(1, 7, False, ("one", "eight"))],
        70,
        id="seven-singles-cheaper-on-small-nodes",
    ),
    pytest.param(
        (_bin("pcie4", 4, 40, (1, 1, 1, 1)), _bin("nvl8", 8, 100)),
        [(2, 2, True, ("pcie4", "nvl8")), (1, 6, False, ("pcie4", "nvl8"))],
        140,
        id="nvlink-pairs-force-the-nvlink-node",
    ),
    pytest.param(
        (_bin("pairs", 4, 30, (2, 2)),),
        [(2, 3, True, ("pairs",)), (1, 2, False, ("pairs",))],
        60,
        id="islands-of-two",
    ),
    pytest.param(
        (_bin("eight", 8, 100, min_nodes=3),),
        [(1, 1, False, ("eight",))],
        300,
        id="min-nodes-are-paid",
    ),
    pytest.param(
        (_bin("a100", 8, 100, max_nodes=1), _bin("h100", 8, 250)),
        [(8, 2, False, ("a100", "h100"))],
        350,
        id="max-nodes-spills-to-the-next-pool",
    ),
    pytest.param(
        (_bin("four", 4, 50), _bin("eight", 8, 80)),
        [(3, 2, False, ("four", "eight")), (2, 3, False, ("four", "eight"))],
        130,
        id="threes-and-twos",
    ),
]


@pytest.mark.parametrize(("bins", "spec", "optimum"), KNOWN)
def test_tiny_instances_reach_their_optimum(
    bins: tuple[BinType, ...], spec: list[tuple[int, int, bool, tuple[str, ...]]], optimum: int
) -> None:
    problem = Problem(bins, _items(spec))
    sol = solve(problem, FAST)
    assert validate(problem, sol.packing) == []
    assert sol.packing.cost(problem) == optimum
    assert sol.stats.lower_bound == optimum
    assert sol.stats.status == "optimal"


def test_more_than_the_pools_allow_is_left_unplaced_and_named() -> None:
    problem = Problem((_bin("eight", 8, 100, max_nodes=1),), _items([(8, 3, False, ("eight",))]))
    sol = solve(problem, FAST)
    assert validate(problem, sol.packing) == []
    assert sol.packing.unplaced == {"i0": 2}
    assert sol.stats.lower_bound is None and sol.stats.status == "partial"


def test_same_input_same_plan() -> None:
    bins = (_bin("four", 4, 50), _bin("eight", 8, 80, (4, 4)), _bin("one", 1, 14))
    items = _items(
        [
            (1, 9, False, ("four", "eight", "one")),
            (2, 5, True, ("four", "eight")),
            (4, 2, True, ("eight",)),
        ]
    )
    problem = Problem(bins, items)
    a = solve(problem, FAST)
    b = solve(problem, FAST)
    assert a.packing == b.packing


_BINS = (
    _bin("one", 1, 11),
    _bin("four-pcie", 4, 41, (1, 1, 1, 1)),
    _bin("four-pairs", 4, 47, (2, 2)),
    _bin("eight", 8, 83, cpu=64_000),
    _bin("eight-capped", 8, 70, max_nodes=2),
)
_names = [b.name for b in _BINS]


@st.composite
def problems(draw: st.DrawFn) -> Problem:
    n = draw(st.integers(1, 6))
    items = []
    for k in range(n):
        gpus = draw(st.sampled_from([1, 1, 2, 4, 8]))
        island = gpus > 1 and draw(st.booleans())
        allowed = tuple(
            draw(st.lists(st.sampled_from(_names), min_size=1, max_size=5, unique=True))
        )
        cpu = draw(st.sampled_from([0, 4_000, 16_000]))
        items.append(
            ItemType(f"i{k}", gpus, cpu, 0, island, tuple(sorted(allowed)), draw(st.integers(1, 6)))
        )
    if draw(st.booleans()):
        # One family of multi-node groups: a head and workers of another shape.
        gpus = draw(st.sampled_from([1, 4, 8]))
        allowed = tuple(sorted(draw(st.lists(st.sampled_from(_names), min_size=1, unique=True))))
        workers, groups = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        items.append(ItemType("head", gpus, 8_000, 0, False, allowed, groups, "g", 1))
        items.append(ItemType("work", gpus, 0, 0, False, allowed, groups * workers, "g", workers))
    return Problem(_BINS, tuple(items))


def _group(key: str, family: str, gpus: int, per_group: int, groups: int, **kw: Any) -> ItemType:
    """Pods of a multi-node group family: ``per_group`` of them in each of ``groups`` groups."""
    return ItemType(
        key,
        gpus,
        kw.get("cpu", 0),
        0,
        kw.get("island", False),
        kw.get("allowed", ("a100", "h100")),
        per_group * groups,
        family,
        per_group,
    )


# name: (node types, item types, the optimum cost, the nodes per type it buys)
GROUPS: dict[str, tuple[tuple[BinType, ...], tuple[ItemType, ...], int, dict[str, int]]] = {
    # Split, the group would take the 3 cheap nodes and one dear one (550); whole, it takes 4
    # dear nodes, because a group of 4 never fits a pool capped at 3.
    "a-group-never-spans-two-pools": (
        (_bin("a100", 8, 100, max_nodes=3), _bin("h100", 8, 250)),
        (_group("head", "lws", 8, 1, 1), _group("worker", "lws", 8, 3, 1, cpu=1000)),
        1000,
        {"h100": 4},
    ),
    "two-groups-take-one-pool-each": (
        (_bin("a100", 8, 100, max_nodes=3), _bin("h100", 8, 250)),
        (_group("pod", "lws", 8, 2, 2),),
        700,
        {"a100": 2, "h100": 2},
    ),
    "group-pods-share-nodes-with-single-pods": (
        (_bin("a100", 8, 100), _bin("l4", 4, 30)),
        (
            _group("g", "ray", 4, 3, 2, island=True, allowed=("a100", "l4")),
            ItemType("s", 2, 0, 0, False, ("a100", "l4"), 3),
        ),
        240,
        {"l4": 8},
    ),
}


@pytest.mark.parametrize("case", list(GROUPS), ids=list(GROUPS))
def test_groups_are_placed_whole_on_one_node_type(case: str) -> None:
    bins, items, optimum, nodes = GROUPS[case]
    problem = Problem(bins, items)
    for packing in (first_fit_decreasing(problem), solve(problem, FAST).packing):
        assert validate(problem, packing) == []
        assert packing.unplaced == {}
    sol = solve(problem, FAST)
    assert sol.packing.cost(problem) == optimum
    assert dict(sol.packing.nodes_per_bin()) == nodes
    assert sol.stats.lower_bound == optimum


def test_a_group_that_fits_no_pool_whole_is_left_out_whole() -> None:
    problem = Problem(
        (_bin("a100", 8, 100, max_nodes=3),),
        (_group("head", "lws", 8, 1, 1), _group("worker", "lws", 8, 3, 1)),
    )
    sol = solve(problem, FAST)
    assert sol.packing.nodes == ()
    assert sol.packing.unplaced == {"head": 1, "worker": 3}
    assert sol.stats.status == "partial"


def test_a_split_group_is_named() -> None:
    problem = Problem(
        (_bin("a100", 8, 100), _bin("h100", 8, 250)), (_group("pod", "lws", 8, 2, 1),)
    )
    split = Packing((Node("a100", ("pod",)), Node("h100", ("pod",))), {})
    errors = group_errors(problem, split)
    assert len(errors) == 2 and "group lws is split on a100" in errors[0]
    assert validate(problem, split) == errors


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_never_worse_than_ffd_and_always_valid(problem: Problem) -> None:
    sol = solve(problem, SolveOptions(time_limit_s=2.0))
    ffd = first_fit_decreasing(problem)
    assert validate(problem, ffd) == []
    assert validate(problem, sol.packing) == []
    placed = sum(sol.packing.unplaced.values())
    assert placed <= sum(ffd.unplaced.values())
    if placed == sum(ffd.unplaced.values()):
        assert sol.packing.cost(problem) <= ffd.cost(problem)
    if sol.stats.lower_bound is not None:
        assert sol.stats.lower_bound <= sol.packing.cost(problem)
    for node in sol.packing.nodes:
        counts = Counter(node.items)
        assert node_fits(problem.bin(node.bin), {problem.item(k): n for k, n in counts.items()})
