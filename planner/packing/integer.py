"""The integer program over node configurations: how many nodes of each column to buy.

CP-SAT solves it in two steps. A search over every column proves a bound over them and finds
a plan; one CP-SAT worker does the first well on this covering problem but the second slowly,
so the plan is then improved by large-neighbourhood search: each round frees the nodes of two
node types, or the nodes that hold a few item types, keeps the rest of the plan, and solves
that smaller program on its own. Rounds are drawn by a generator seeded with the
solve's seed and stop once the plan is within the target gap of the lower bound. Pods that the
best plan known leaves out may be left out (at a penalty per pod); otherwise every pod is
placed, and every multi-node group whole on one node type.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ortools.sat.python import cp_model

from planner.packing.column_generation import Progress
from planner.packing.configurations import Column, columns_of, trim
from planner.packing.problem import Packing, Problem, validate, whole_groups

if TYPE_CHECKING:
    from planner.packing.solve import SolveOptions

# One round of neighbourhood search, in seconds of CP-SAT's deterministic time at most.
ROUND_S = 0.25


@dataclass(frozen=True, slots=True)
class Integer:
    """The integer program's answer: the plan (the incumbent when nothing better was found),
    CP-SAT's status, and its bound over these columns."""

    packing: Packing
    status: str
    bound: float


class _Watch(cp_model.CpSolverSolutionCallback):
    """Reports each plan found and stops the search once one is good enough."""

    def __init__(self, progress: Progress | None, scale: float, enough: float) -> None:
        super().__init__()
        self.progress = progress
        self.scale = scale
        self.enough = enough

    def on_solution_callback(self) -> None:
        if self.progress is not None:
            self.progress(
                f"CP-SAT: ${self.objective_value / self.scale:,.2f}/h "
                f"(bound ${self.best_objective_bound / self.scale:,.2f}/h)"
            )
        if self.objective_value <= self.enough:
            self.stop_search()


class _Model:
    """The CP-SAT model over ``cols``: ``x[k]`` nodes of column ``k`` (``fixed`` ones held at
    their value), coverage of every item and whole group, the pools' node limits, the cost."""

    def __init__(
        self,
        problem: Problem,
        cols: list[Column],
        *,
        penalty: int | None,
        fixed: Mapping[int, int],
    ) -> None:
        self.p = problem
        self.cols = cols
        self.m = cp_model.CpModel()
        self.x: list[Any] = []
        self.slacks: list[Any] = []
        self.ys: dict[tuple[int, int], Any] = {}
        terms: dict[tuple[int, int], list[tuple[int, int]]] = {}
        per_bin: list[list[int]] = [[] for _ in problem.bins]
        for k, (t, items) in enumerate(cols):
            b = problem.bins[t]
            need = max(
                (math.ceil(problem.items[i].count / n) for i, n in items), default=b.min_nodes
            )
            ub = max(need if b.max_nodes is None else min(need, b.max_nodes), b.min_nodes)
            lo = hi = fixed.get(k, -1)
            if lo < 0:
                lo, hi = 0, ub
            self.x.append(self.m.new_int_var(lo, hi, f"x{k}"))
            per_bin[t].append(k)
            for i, n in items:
                where = t if problem.items[i].group else -1
                terms.setdefault((where, i), []).append((k, n))
        cost = self._coverage(terms, penalty)
        for t, b in enumerate(problem.bins):
            if b.max_nodes is not None:
                self.m.add(sum(self.x[k] for k in per_bin[t]) <= b.max_nodes)
            if b.min_nodes > 0:
                self.m.add(sum(self.x[k] for k in per_bin[t]) >= b.min_nodes)
        self.m.minimize(
            sum(problem.bins[t].cost * self.x[k] for k, (t, _) in enumerate(cols)) + cost
        )

    def _coverage(
        self, terms: dict[tuple[int, int], list[tuple[int, int]]], pen: int | None
    ) -> Any:
        """Every item placed (or, with a ``pen``alty, paid for as slack); a group only whole,
        on one node type. Returns the penalty terms."""
        p, m = self.p, self.m
        penalties: list[Any] = []
        for i in p.singles():
            it = p.items[i]
            placed = sum(n * self.x[k] for k, n in terms.get((-1, i), []))
            if pen is None:
                m.add(placed >= it.count)
                continue
            slack = m.new_int_var(0, it.count, f"s{i}")
            m.add(placed + slack >= it.count)
            self.slacks.append((it.key, slack, 1))
            penalties.append(pen * slack)
        for f, fam in enumerate(p.families()):
            for t in fam.bins:
                y = m.new_int_var(0, fam.groups, f"y{f}_{t}")
                for i, per in fam.members:
                    m.add(sum(n * self.x[k] for k, n in terms.get((t, i), [])) >= per * y)
                self.ys[(f, t)] = y
            whole = sum(self.ys[(f, t)] for t in fam.bins)
            if pen is None:
                m.add(whole >= fam.groups)
                continue
            slack = m.new_int_var(0, fam.groups, f"g{f}")
            m.add(whole + slack >= fam.groups)
            first, per = fam.members[0]
            self.slacks.append((p.items[first].key, slack, per))
            penalties.append(pen * sum(n for _, n in fam.members) * slack)
        return sum(penalties)

    def hint(self, values: list[int], plan: Packing) -> None:
        """Start the search from ``values`` (nodes per column) and ``plan``'s groups."""
        for v, h in zip(self.x, values, strict=True):
            self.m.add_hint(v, h)
        for key, slack, per in self.slacks:
            self.m.add_hint(slack, plan.unplaced.get(key, 0) // per)
        for f, fam in enumerate(self.p.families()):
            placed = whole_groups(self.p, fam, plan.nodes)
            for t in fam.bins:
                self.m.add_hint(self.ys[(f, t)], placed[self.p.bins[t].name])

    def plan(self, solver: cp_model.CpSolver) -> tuple[list[int], Packing]:
        """Nodes per column in the solver's solution, and the plan they make."""
        values = [int(solver.value(v)) for v in self.x]
        nodes: list[tuple[int, Counter[int]]] = []
        for (t, items), n in zip(self.cols, values, strict=True):
            nodes.extend((t, Counter(dict(items))) for _ in range(n))
        return values, trim(self.p, nodes)


def integer_master(
    problem: Problem,
    cols: list[Column],
    *,
    incumbent: Packing,
    lower: float,
    penalty: float,
    options: SolveOptions,
    deadline: float,
    progress: Progress | None,
    cost_scale: float,
) -> Integer:
    """CP-SAT over ``cols`` (which hold ``incumbent``'s nodes), hinted with ``incumbent``,
    until ``deadline`` or a plan within the target gap of ``lower``."""
    pen = math.ceil(penalty) if incumbent.unplaced else None
    model = _Model(problem, cols, penalty=pen, fixed={})
    model.hint(_values(problem, cols, incumbent), incumbent)
    solver = _cp_sat(options, max(0.5, deadline - time.monotonic()))
    if progress is not None:
        progress("CP-SAT: searching")
    enough = lower / (1.0 - options.relative_gap)
    status = solver.solve(model.m, _Watch(progress, cost_scale, enough))
    name = str(solver.status_name(status))
    bound = float(solver.best_objective_bound)
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        packed = model.plan(solver)[1]
        if not validate(problem, packed) and better(problem, packed, incumbent):
            return Integer(packed, name, bound)
    return Integer(incumbent, name, bound)


def _values(problem: Problem, cols: list[Column], plan: Packing) -> list[int]:
    """Nodes per column in ``plan`` (whose nodes are all among ``cols``)."""
    nodes = dict(columns_of(problem, plan))
    return [nodes.get(col, 0) for col in cols]


def neighbourhood_search(
    problem: Problem,
    cols: list[Column],
    *,
    best: Packing,
    penalty: float,
    options: SolveOptions,
    deadline: float,
    enough: float,
) -> tuple[Packing, int, int]:
    """Improve ``best`` (whose nodes are all among ``cols``) by rounds of neighbourhood search
    until ``deadline`` or a plan costing at most ``enough``; the plan, the rounds run and the
    rounds that improved it."""
    pen = math.ceil(penalty) if best.unplaced else None
    values = _values(problem, cols, best)
    rng = random.Random(options.seed)
    budget = max(0.0, deadline - time.monotonic()) / 2
    spent = 0.0
    rounds = improved = 0
    share = 0.125  # of the item types (or node types) a round frees; adapts as rounds go
    while best.cost(problem) > enough and time.monotonic() < deadline:
        if options.deterministic and spent >= budget:
            break
        free = _neighbourhood(problem, cols, rng, share)
        fixed = {k: v for k, v in enumerate(values) if k not in free}
        model = _Model(problem, cols, penalty=pen, fixed=fixed)
        model.hint(values, best)
        solver = _cp_sat(options, min(ROUND_S * 2, max(0.05, deadline - time.monotonic())))
        solver.parameters.max_deterministic_time = ROUND_S
        solver.parameters.relative_gap_limit = 0.0
        status = solver.solve(model.m)
        spent += solver.deterministic_time
        rounds += 1
        # A neighbourhood solved to the end was too small to hold a better plan: the next one
        # is larger. One the round could not finish was too large: the next one is smaller.
        share = min(1.0, share * 1.2) if status == cp_model.OPTIMAL else max(0.02, share / 1.2)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            continue
        found, packed = model.plan(solver)
        if not validate(problem, packed) and better(problem, packed, best):
            best, values = packed, found
            improved += 1
    return best, rounds, improved


def _neighbourhood(
    problem: Problem, cols: list[Column], rng: random.Random, share: float
) -> set[int]:
    """Columns to free: those of some node types, or those holding any of some item types
    (``share`` of them, at least two)."""
    if len(problem.bins) > 2 and rng.random() < 0.5:
        many = min(len(problem.bins), max(2, round(share * len(problem.bins))))
        types = set(rng.sample(range(len(problem.bins)), many))
        return {k for k, (t, _) in enumerate(cols) if t in types}
    many = min(len(problem.items), max(2, round(share * len(problem.items))))
    items = set(rng.sample(range(len(problem.items)), many))
    return {k for k, (_, col) in enumerate(cols) if any(i in items for i, _ in col)}


def _cp_sat(options: SolveOptions, left: float) -> cp_model.CpSolver:
    """A CP-SAT solver set up by ``options`` to search for at most ``left`` seconds."""
    solver = cp_model.CpSolver()
    params = solver.parameters
    params.random_seed = options.seed
    params.num_workers = options.workers
    params.max_time_in_seconds = left
    # The LP relaxation with cuts, at every level of the search: this is a covering problem,
    # and without them one worker finds worse plans and proves far weaker bounds.
    params.linearization_level = 2
    if options.deterministic:
        # Deterministic time stops the search at the same point on every run; the wall clock
        # above stays as a safety net on a slow machine.
        params.max_deterministic_time = left / 2
        if options.workers > 1:
            params.interleave_search = True
    if options.relative_gap > 0:
        params.relative_gap_limit = options.relative_gap
    return solver


def better(problem: Problem, a: Packing, b: Packing) -> bool:
    """Whether ``a`` leaves fewer pods out than ``b``, or as many at a lower cost."""
    ua, ub = sum(a.unplaced.values()), sum(b.unplaced.values())
    if ua != ub:
        return ua < ub
    return a.cost(problem) < b.cost(problem)
