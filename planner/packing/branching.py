"""Branch-and-price on node counts: a lower bound stronger than the LP relaxation's.

Every plan buys a whole number of nodes of each type, but the LP relaxation of the
configuration model may buy 5.8 nodes of one type and 3.5 of another; with a few dear nodes
in a plan, those fractions are most of the distance between the LP bound and the best plan.
Branching splits the plans into those with at most ``floor(n)`` nodes of a type and those with
at least ``ceil(n)``; each branch's LP, with columns priced under its node limits, bounds its
plans, and the least bound over the branches still open bounds every plan. The search is
best-first, so the global bound rises as fast as it can, and a branch that cannot beat the best
plan known is closed. An LP solution in whole nodes is a plan and is returned as one; the
columns priced on the way stay in the master for the integer program.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from planner.packing.column_generation import Master, generate
from planner.packing.configurations import trim
from planner.packing.problem import Packing, Problem, validate

# A node count closer than this to a whole number is whole.
WHOLE = 1e-6


@dataclass(order=True)
class _Branch:
    """Plans with between ``lo[t]`` and ``hi[t]`` nodes of each type; none costs less than
    ``bound``."""

    bound: float
    seq: int
    lo: list[int] = field(compare=False)
    hi: list[int | None] = field(compare=False)


@dataclass(frozen=True, slots=True)
class Search:
    """Outcome of a search: a lower bound on every plan, whether the search closed every
    branch (then the best plan known is optimal), the branches solved, and the plans found in
    LP solutions of whole nodes."""

    bound: float
    proven: bool
    branches: int
    plans: list[Packing]


def round_up(problem: Problem) -> Callable[[float], float]:
    """A function that rounds a lower bound up to the next cost a plan can have: every plan
    costs a whole multiple of the greatest common divisor of the node prices."""
    unit = 0
    for b in problem.bins:
        unit = math.gcd(unit, b.cost)
    unit = max(1, unit)

    def up(value: float) -> float:
        return float(math.ceil((value - 1e-6 * max(1.0, abs(value))) / unit) * unit)

    return up


def _node_counts(master: Master, values: list[float]) -> list[float]:
    counts = [0.0] * len(master.p.bins)
    for (t, _), v in zip(master.columns, values, strict=True):
        counts[t] += v
    return counts


def _whole(values: list[float]) -> bool:
    return all(abs(v - round(v)) <= WHOLE for v in values)


def _plan(master: Master, values: list[float]) -> Packing | None:
    """The plan an LP solution in whole nodes makes (``None``: it places no whole plan)."""
    nodes = [
        (t, Counter(dict(items)))
        for (t, items), v in zip(master.columns, values, strict=True)
        for _ in range(round(v))
    ]
    packed = trim(master.p, nodes)
    return None if packed.unplaced or validate(master.p, packed) else packed


def _branch_on(problem: Problem, counts: list[float]) -> int | None:
    """The node type whose fractional count weighs most in cost (``None``: all whole)."""
    best, pick = 0.0, None
    for t, n in enumerate(counts):
        frac = n - math.floor(n)
        weight = problem.bins[t].cost * min(frac, 1.0 - frac)
        if min(frac, 1.0 - frac) > WHOLE and weight > best:
            best, pick = weight, t
    return pick


def _children(branch: _Branch, t: int, n: float, bound: float, seq: int) -> list[_Branch]:
    down_hi = list(branch.hi)
    down_hi[t] = math.floor(n)
    up_lo = list(branch.lo)
    up_lo[t] = math.ceil(n)
    return [
        _Branch(bound, seq, list(branch.lo), down_hi),
        _Branch(bound, seq + 1, up_lo, list(branch.hi)),
    ]


class _Tree:
    """The open branches, the best plan known, and the bound of every plan."""

    def __init__(self, master: Master, root: float, incumbent: float) -> None:
        self.master = master
        self.heap = [_Branch(root, 0, list(master.lo), list(master.hi))]
        self.leaves = math.inf  # the least bound of branches with whole node counts, no plan
        self.best = incumbent
        self.plans: list[Packing] = []
        self.seq = 1
        self.solved = 0

    def lower(self) -> float:
        """The least bound of any plan: of the open branches, the leaves, and the best plan."""
        return min(self.heap[0].bound if self.heap else math.inf, self.leaves, self.best)

    def close(self, target: float) -> bool:
        """Whether the best plan known is within ``target`` (relative) of the bound."""
        return self.best < math.inf and self.best - self.lower() <= target * self.best

    def push(self, branch: _Branch) -> None:
        heapq.heappush(self.heap, branch)

    def solve(self, branch: _Branch, deadline: float) -> bool:
        """Solve ``branch``'s LP and close it, split it, or keep it open; false when the search
        has to stop (out of time, or the LP failed)."""
        master, problem = self.master, self.master.p
        master.limit(branch.lo, branch.hi)
        try:
            gen = generate(
                master,
                problem,
                [it.count for it in problem.items],
                deadline=deadline,
                max_iterations=10_000,
                progress=None,
                cost_scale=1.0,
            )
        except RuntimeError:
            self.push(branch)  # the LP failed: the branch stays open, unsolved
            return False
        self.solved += 1
        if gen.bound is None:
            self.push(branch)  # out of time before any bound: still open
            return False
        bound = max(branch.bound, round_up(problem)(gen.bound))
        if bound >= self.best:
            return True
        if not gen.converged:
            self.push(_Branch(bound, self.seq, branch.lo, branch.hi))
            self.seq += 1
            return False
        values = master.values()
        plan = _plan(master, values) if _whole(values) else None
        if plan is not None:
            self.plans.append(plan)
            self.best = min(self.best, float(plan.cost(problem)))
            return True
        nodes = _node_counts(master, values)
        t = _branch_on(problem, nodes)
        if t is None:
            self.leaves = min(self.leaves, bound)
            return True
        for child in _children(branch, t, nodes[t], bound, self.seq):
            self.push(child)
        self.seq += 2
        return True


def branch_and_price(
    master: Master,
    *,
    root: float,
    incumbent: float,
    target: float,
    deadline: float,
    max_branches: int,
) -> Search:
    """Raise the lower bound ``root`` (the LP's, rounded up) by branching on node counts until
    the best plan known (``incumbent``, or one found here) is within ``target`` of it (relative),
    every branch is closed, the ``deadline``, or ``max_branches`` branches solved."""
    tree = _Tree(master, root, incumbent)
    pool_lo, pool_hi = list(master.lo), list(master.hi)
    try:
        while tree.heap and not tree.close(target):
            if time.monotonic() > deadline or tree.solved >= max_branches:
                break
            if tree.leaves <= tree.heap[0].bound:
                break  # a leaf holds the bound where it is: no branch can raise it
            branch = heapq.heappop(tree.heap)
            if branch.bound < tree.best and not tree.solve(branch, deadline):
                break
    finally:
        master.limit(pool_lo, pool_hi)
    proven = not tree.heap and tree.leaves == math.inf
    return Search(tree.lower(), proven, tree.solved, tree.plans)
