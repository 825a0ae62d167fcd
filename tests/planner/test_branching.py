"""Branch-and-price on node counts: bounds that reach the optimum where the LP relaxation
stops short, never pass it, and round up only to costs a plan can have; and the integer
program's neighbourhood search, which never returns a worse or invalid plan."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import HealthCheck, given, settings

from planner.packing.branching import branch_and_price, round_up
from planner.packing.column_generation import Master, generate
from planner.packing.configurations import columns_of, homogeneous_columns
from planner.packing.ffd import first_fit_decreasing
from planner.packing.integer import neighbourhood_search
from planner.packing.problem import BinType, ItemType, Problem, validate
from planner.packing.solve import SolveOptions, solve
from tests.planner.test_solver import problems


def _bin(name: str, gpus: int, cost: int, islands: tuple[int, ...] | None = None) -> BinType:
    return BinType(name, gpus, islands or (gpus,), 10**6, 10**15, cost)


def _item(key: str, gpus: int, count: int, allowed: tuple[str, ...]) -> ItemType:
    return ItemType(key, gpus, 0, 0, False, allowed, count)


def _root(problem: Problem) -> tuple[Master, float]:
    """A master LP with its columns priced out, and its bound rounded up."""
    master = Master(problem, 1.0 + 2.0 * max(b.cost for b in problem.bins))
    for col in homogeneous_columns(problem):
        master.add(col)
    gen = generate(
        master,
        problem,
        [it.count for it in problem.items],
        deadline=time.monotonic() + 5.0,
        max_iterations=1000,
        progress=None,
        cost_scale=1.0,
    )
    assert gen.converged and gen.bound is not None
    return master, round_up(problem)(gen.bound)


# name: (node types, item types, the LP bound rounded up, the optimum)
WEAK_LP = {
    # Twelve GPUs: 1.5 eight-GPU nodes in the LP (150), but half a node is not for sale.
    "half-a-dear-node": (
        (_bin("eight", 8, 100), _bin("four", 4, 59)),
        (_item("pair", 2, 6, ("eight", "four")),),
        150,
        159,
    ),
    # Three 3-GPU pods: the LP buys 1.5 eight-GPU nodes of two pods each (120); in whole
    # nodes, one eight and one four (130).
    "threes-on-eights-and-fours": (
        (_bin("eight", 8, 80), _bin("four", 4, 50)),
        (_item("three", 3, 3, ("eight", "four")),),
        120,
        130,
    ),
}


@pytest.mark.parametrize("case", list(WEAK_LP), ids=list(WEAK_LP))
def test_branching_closes_the_gap_the_lp_leaves(case: str) -> None:
    bins, items, lp, optimum = WEAK_LP[case]
    problem = Problem(bins, items)
    master, root = _root(problem)
    assert root == lp
    search = branch_and_price(
        master,
        root=root,
        incumbent=math.inf,
        target=0.0,
        deadline=time.monotonic() + 5.0,
        max_branches=1000,
    )
    assert search.bound == optimum and search.proven
    assert min(p.cost(problem) for p in search.plans) == optimum
    # The master is left with the pools' own node limits.
    assert master.lo == [0, 0] and master.hi == [None, None]


ROUNDING = [
    pytest.param((100, 60), 150.2, 160.0, id="up-to-the-next-multiple-of-the-common-divisor"),
    pytest.param((100, 60), 160.0, 160.0, id="a-reachable-cost-stays"),
    pytest.param((100, 60), 160.0000001, 160.0, id="rounding-noise-is-not-a-step"),
    pytest.param((7, 5), 12.5, 13.0, id="coprime-prices-round-to-whole-units"),
]


@pytest.mark.parametrize(("costs", "value", "rounded"), ROUNDING)
def test_bounds_round_up_to_a_cost_a_plan_can_have(
    costs: tuple[int, ...], value: float, rounded: float
) -> None:
    problem = Problem(tuple(_bin(f"b{k}", 8, c) for k, c in enumerate(costs)), ())
    assert round_up(problem)(value) == rounded


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_a_branching_bound_never_passes_a_plan(problem: Problem) -> None:
    plan = solve(problem, SolveOptions(time_limit_s=2.0))
    if plan.packing.unplaced:
        return
    master, root = _root(problem)
    if master.slack_total() > 1e-6:
        return
    search = branch_and_price(
        master,
        root=root,
        incumbent=float(plan.packing.cost(problem)),
        target=0.0,
        deadline=time.monotonic() + 2.0,
        max_branches=200,
    )
    assert root <= search.bound <= plan.packing.cost(problem)
    for found in search.plans:
        assert validate(problem, found) == []


# name: (node types, item types, the optimum)
START_BAD = {
    # First fit decreasing buys seven one-GPU nodes (70); one eight-GPU node holds them (60).
    "seven-singles-on-one-big-node": (
        (_bin("one", 1, 10), _bin("eight", 8, 60)),
        (_item("single", 1, 7, ("one", "eight")),),
        60,
    ),
    # Mixed sizes over three node types, NVLink pairs on a node of two islands.
    "mixed-sizes-three-types": (
        (_bin("eight", 8, 83), _bin("four", 4, 47, (2, 2)), _bin("one", 1, 11)),
        (
            _item("a", 1, 13, ("eight", "four", "one")),
            _item("b", 2, 7, ("eight", "four")),
            _item("c", 3, 5, ("eight", "four")),
            _item("d", 4, 3, ("eight", "four")),
        ),
        None,
    ),
}


@pytest.mark.parametrize("case", list(START_BAD), ids=list(START_BAD))
def test_neighbourhood_search_improves_and_never_returns_a_worse_plan(case: str) -> None:
    bins, items, optimum = START_BAD[case]
    problem = Problem(bins, items)
    ffd = first_fit_decreasing(problem)
    master, root = _root(problem)
    for col, _ in columns_of(problem, ffd):
        master.add(col)
    best, rounds, _ = neighbourhood_search(
        problem,
        master.columns,
        best=ffd,
        penalty=1e4,
        options=SolveOptions(),
        deadline=time.monotonic() + 2.0,
        enough=root,
    )
    assert rounds > 0
    assert validate(problem, best) == []
    assert root <= best.cost(problem) <= ffd.cost(problem)
    if optimum is not None:
        assert ffd.cost(problem) > optimum == best.cost(problem)
