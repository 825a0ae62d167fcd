"""Column generation: the LP relaxation of the configuration model, its lower bound, and a
rounding of it by diving.

The master LP (GLOP) covers every item type's demand (and every multi-node group, whole on one
node type) with node configurations at least cost;
pricing adds configurations that improve it until none does, and the LP optimum is then a
lower bound on every plan (Farley's ratio bound before it converges). Diving fixes the columns
the LP uses whole, lowers the demand and repeats, for an integer plan to hint CP-SAT with.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ortools.linear_solver import pywraplp

from planner.packing.configurations import Column, trim
from planner.packing.pricing import EPS, exact_column, greedy_column
from planner.packing.problem import Packing, Problem

Progress = Callable[[str], None]


class Master:
    """The LP relaxation of the configuration model, grown one column at a time (GLOP).

    Pods placed alone are covered per item type. A family of multi-node groups is covered per
    group: ``y[f, t]`` groups go on node type ``t``, and the nodes of type ``t`` must hold
    ``per_group * y[f, t]`` pods of each member item (the coupling rows), so no group is split
    across node types. Every node type has a row counting its nodes, within the pool's limits
    or narrower limits while branching (its dual prices each new node of the type). Demands
    and node limits can be lowered to a residual while diving.
    """

    def __init__(self, problem: Problem, penalty: float) -> None:
        self.p = problem
        self.lp = pywraplp.Solver.CreateSolver("GLOP")
        inf = self.lp.infinity()
        self.cover: dict[int, Any] = {}
        self.slacks: list[Any] = []
        self.vars: list[Any] = []
        self.obj = self.lp.Objective()
        for i in problem.singles():
            c = self.lp.Constraint(float(problem.items[i].count), inf, f"cover{i}")
            s = self.lp.NumVar(0.0, inf, f"slack{i}")
            c.SetCoefficient(s, 1.0)
            self.obj.SetCoefficient(s, penalty)
            self.slacks.append(s)
            self.cover[i] = c
        self.families = problem.families()
        self.group_cover: list[Any] = []
        self.coupling: dict[tuple[int, int], Any] = {}
        for f, fam in enumerate(self.families):
            c = self.lp.Constraint(float(fam.groups), inf, f"groups{f}")
            s = self.lp.NumVar(0.0, inf, f"gslack{f}")
            c.SetCoefficient(s, 1.0)
            self.obj.SetCoefficient(s, penalty * sum(n for _, n in fam.members))
            self.slacks.append(s)
            self.group_cover.append(c)
            for t in fam.bins:
                y = self.lp.NumVar(0.0, inf, f"y{f}_{t}")
                c.SetCoefficient(y, 1.0)
                for i, per in fam.members:
                    row = self.lp.Constraint(0.0, inf, f"couple{f}_{i}_{t}")
                    row.SetCoefficient(y, -float(per))
                    self.coupling[(t, i)] = row
        # Nodes of each type: within the pool's limits, or narrower while branching.
        self.lo = [b.min_nodes for b in problem.bins]
        self.hi: list[int | None] = [b.max_nodes for b in problem.bins]
        self.nodes = [
            self.lp.Constraint(
                float(b.min_nodes), inf if b.max_nodes is None else float(b.max_nodes)
            )
            for b in problem.bins
        ]
        self.obj.SetMinimization()
        self.columns: list[Column] = []
        self.known: set[Column] = set()

    def _row(self, t: int, i: int) -> Any:
        """The row an item of type ``i`` on a node of type ``t`` counts in (``None``: none, a
        group pod on a node type its group cannot use whole)."""
        return self.coupling.get((t, i)) if self.p.items[i].group else self.cover[i]

    def add(self, col: Column) -> bool:
        """Add ``col`` as a new LP variable; false when the master has it already."""
        if col in self.known:
            return False
        t, items = col
        self.known.add(col)
        self.columns.append(col)
        v = self.lp.NumVar(0.0, self.lp.infinity(), f"x{len(self.columns)}")
        self.vars.append(v)
        self.obj.SetCoefficient(v, float(self.p.bins[t].cost))
        for i, n in items:
            row = self._row(t, i)
            if row is not None:
                row.SetCoefficient(v, float(n))
        self.nodes[t].SetCoefficient(v, 1.0)
        return True

    def closed(self, t: int) -> bool:
        """Whether no node of type ``t`` may be bought now (its limit is reached)."""
        return bool(self.nodes[t].ub() < 0.5)

    def limit(self, lo: list[int], hi: list[int | None]) -> None:
        """Buy between ``lo[t]`` and ``hi[t]`` nodes of each type ``t`` (``None``: no upper
        limit); the pools' own limits are ``min_nodes`` and ``max_nodes``."""
        self.lo, self.hi = list(lo), list(hi)
        self._node_bounds(Counter())

    def _node_bounds(self, used: Counter[int]) -> None:
        inf = self.lp.infinity()
        for t, c in enumerate(self.nodes):
            hi = self.hi[t]
            c.SetBounds(
                float(max(0, self.lo[t] - used[t])),
                inf if hi is None else float(max(0, hi - used[t])),
            )

    def residual(
        self, counts: list[int], used: Counter[int], held: Counter[tuple[int, int]]
    ) -> None:
        """Ask only for ``counts`` more pods placed alone, with ``used`` nodes of each type and
        ``held`` group pods per (node type, item) already taken."""
        inf = self.lp.infinity()
        for i, c in self.cover.items():
            c.SetBounds(float(counts[i]), inf)
        for (t, i), c in self.coupling.items():
            c.SetBounds(-float(held[(t, i)]), inf)
        self._node_bounds(used)

    def solve(self) -> tuple[float, list[list[float]], list[float]]:
        """Solve the LP: its value, per node type the dual value of one item of each type on
        it, and the dual of each node limit."""
        status = self.lp.Solve()
        if status != pywraplp.Solver.OPTIMAL:
            raise RuntimeError(f"LP master did not solve (status {status})")
        duals: list[list[float]] = []
        for t in range(len(self.p.bins)):
            rows = [self._row(t, i) for i in range(len(self.p.items))]
            duals.append([0.0 if r is None else r.dual_value() for r in rows])
        lam = [float(c.dual_value()) for c in self.nodes]
        return float(self.obj.Value()), duals, lam

    def values(self) -> list[float]:
        """Value of each column in the last LP solution."""
        return [v.solution_value() for v in self.vars]

    def slack_total(self) -> float:
        """Items (or groups) the last LP solution left uncovered."""
        return float(sum(s.solution_value() for s in self.slacks))


@dataclass
class Generation:
    """Outcome of one run of column generation."""

    lp_value: float
    bound: float | None
    converged: bool
    iterations: int


def generate(
    master: Master,
    problem: Problem,
    counts: list[int],
    *,
    deadline: float,
    max_iterations: int,
    progress: Progress | None,
    cost_scale: float,
) -> Generation:
    """Add improving columns until none prices out, the deadline, or ``max_iterations``."""
    bound: float | None = None
    lp_value = math.inf
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        lp_value, duals, lam = master.solve()
        if progress is not None and iteration % 10 == 1:
            progress(
                f"column generation: LP ${lp_value / cost_scale:,.2f}/h, "
                f"{len(master.columns)} columns"
            )
        added = 0
        open_bins = [(t, b) for t, b in enumerate(problem.bins) if not master.closed(t)]
        for t, b in open_bins:
            value, col = greedy_column(problem, t, duals[t], counts)
            if col is not None and b.cost - value - lam[t] < -EPS * b.cost:
                added += master.add(col)
        if not added:
            # Closed node types need no price: their limit of zero nodes keeps them out.
            ratio = 1.0
            for t, b in open_bins:
                left = max(0.05, deadline - time.monotonic())
                upper, col = exact_column(
                    problem, t, duals[t], counts, min(left, 2.0), worth=b.cost - lam[t]
                )
                ratio = max(ratio, (upper + lam[t]) / b.cost)
                if col is not None:
                    value = sum(duals[t][i] * n for i, n in col[1])
                    if b.cost - value - lam[t] < -EPS * b.cost:
                        added += master.add(col)
            candidate = lp_value / ratio
            bound = candidate if bound is None else max(bound, candidate)
            if not added:
                return Generation(lp_value, bound, True, iteration)
        if time.monotonic() > deadline:
            break
    # Columns were added since the last solve: solve again, so the values read next are the
    # LP's over every column it has.
    lp_value, _, _ = master.solve()
    return Generation(lp_value, bound, False, iteration)


def _covered(problem: Problem, counts: list[int], held: Counter[tuple[int, int]]) -> bool:
    """Whether the fixed nodes cover every pod placed alone (``counts`` left: none) and every
    multi-node group whole on one node type (``held``: group pods per node type and item)."""
    if any(counts[i] > 0 for i in problem.singles()):
        return False
    for fam in problem.families():
        whole = sum(min(held[(t, i)] // per for i, per in fam.members) for t in fam.bins)
        if whole < fam.groups:
            return False
    return True


def dive(
    master: Master,
    problem: Problem,
    deadline: float,
    progress: Progress | None,
    cost_scale: float,
) -> Packing | None:
    """Round the LP by diving: fix the columns the LP already uses whole (or the largest one),
    lower the demand, generate columns for the rest, repeat. ``None`` if it runs out of time or
    the rest cannot be covered."""
    counts = [it.count for it in problem.items]
    used: Counter[int] = Counter()
    held: Counter[tuple[int, int]] = Counter()
    fixed: list[Column] = []
    try:
        while not _covered(problem, counts, held):
            if time.monotonic() > deadline:
                return None
            master.residual(counts, used, held)
            generate(
                master,
                problem,
                counts,
                deadline=deadline,
                max_iterations=25,
                progress=None,
                cost_scale=cost_scale,
            )
            if master.slack_total() > 1e-6:
                return None
            values = master.values()
            chosen = [(k, math.floor(v + 1e-6)) for k, v in enumerate(values) if v >= 1 - 1e-6]
            if not chosen:
                k = max(range(len(values)), key=lambda j: (values[j], -j))
                chosen = [(k, 1)]
            for k, n in chosen:
                t, items = master.columns[k]
                for _ in range(n):
                    fixed.append((t, items))
                    used[t] += 1
                    for i, a in items:
                        if problem.items[i].group:
                            held[(t, i)] += a
                        else:
                            counts[i] = max(0, counts[i] - a)
    finally:
        master.residual([it.count for it in problem.items], Counter(), Counter())
    if progress is not None:
        progress(f"diving: {len(fixed)} nodes")
    return trim(problem, [(t, Counter(dict(items))) for t, items in fixed])
