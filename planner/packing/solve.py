"""Minimum-cost node mix for one scenario: column generation for a bound, CP-SAT for the plan.

The model is the configuration (pattern) formulation of bin packing with several node types:
a column is one way to fill one node of one type, and the integer program picks how many nodes
of each configuration to buy so every pod is covered at least cost, and every multi-node group
whole on nodes of one type. Column generation over the
LP relaxation (GLOP master, CP-SAT knapsack pricing) gives the columns and a valid lower bound
(the LP optimum once no column prices out, Farley's ratio bound before). CP-SAT then solves the
integer program over those columns, hinted with first-fit-decreasing, whose nodes are columns
too, so the plan is never worse than first-fit-decreasing. Options (time limit, seed, workers)
are explicit; with ``deterministic`` the search stops on CP-SAT's deterministic time so the same
input gives the same plan.

The pieces: ``configurations`` (the columns), ``pricing`` (the best column at given duals),
``column_generation`` (the LP, its bound and diving); this module runs them within the time
limit and solves the integer program.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ortools.sat.python import cp_model

from planner.packing.bounds import simple_bound
from planner.packing.column_generation import Master, Progress, dive, generate
from planner.packing.configurations import (
    Column,
    columns_of,
    enumerate_columns,
    homogeneous_columns,
    trim,
)
from planner.packing.ffd import first_fit_decreasing
from planner.packing.problem import Packing, Problem, validate, whole_groups

# Up to this many node configurations, every one goes into the model, and CP-SAT's bound is a
# proof for the whole problem rather than for the generated columns only.
ENUMERATION_LIMIT = 4000


@dataclass(frozen=True, slots=True)
class SolveOptions:
    """Solver knobs. ``time_limit_s`` bounds one scenario (column generation gets up to half)."""

    time_limit_s: float = 10.0
    seed: int = 0
    workers: int = 1
    deterministic: bool = True
    relative_gap: float = 0.005

    def errors(self) -> list[str]:
        """Every invalid option, as messages."""
        out = []
        if not self.time_limit_s > 0:
            out.append(f"--time-limit must be positive, got {self.time_limit_s}")
        if self.workers < 1:
            out.append(f"--workers must be at least 1, got {self.workers}")
        if not 0 <= self.relative_gap < 1:
            out.append(f"--relative-gap must be in [0, 1), got {self.relative_gap}")
        return out


@dataclass(frozen=True, slots=True)
class SolveStats:
    """How the solve went. Costs are in the problem's unit (micro-dollars per hour)."""

    status: str
    lower_bound: float | None
    bound_source: str
    lp_bound: float | None
    simple_bound: float
    lp_converged: bool
    columns: int
    iterations: int
    cp_sat_status: str
    wall_s: float


@dataclass(frozen=True, slots=True)
class Solution:
    """The chosen packing, the first-fit-decreasing baseline, and the solver statistics."""

    packing: Packing
    ffd: Packing
    stats: SolveStats


class _Callback(cp_model.CpSolverSolutionCallback):
    def __init__(self, progress: Progress | None, scale: float) -> None:
        super().__init__()
        self.progress = progress
        self.scale = scale

    def on_solution_callback(self) -> None:
        if self.progress is not None:
            self.progress(
                f"CP-SAT: ${self.objective_value / self.scale:,.2f}/h "
                f"(bound ${self.best_objective_bound / self.scale:,.2f}/h)"
            )


def solve(
    problem: Problem,
    options: SolveOptions = SolveOptions(),
    progress: Progress | None = None,
    cost_scale: float = 1e6,
) -> Solution:
    """Pack ``problem`` at minimum node cost within ``options.time_limit_s``.

    Returns the best packing found (never costlier than first-fit decreasing), the baseline, and
    the best valid lower bound. ``cost_scale`` converts costs to dollars for progress messages.
    """
    start = time.monotonic()
    deadline = start + options.time_limit_s
    ffd = first_fit_decreasing(problem)
    simple = simple_bound(problem)
    if not problem.items or all(it.count == 0 for it in problem.items):
        stats = SolveStats(
            "optimal", float(ffd.cost(problem)), "no demand", None, simple, True, 0, 0, "-", 0.0
        )
        return Solution(ffd, ffd, stats)
    penalty = 1.0 + 2.0 * max(b.cost for b in problem.bins)
    master = Master(problem, penalty)
    for col, _ in columns_of(problem, ffd):
        master.add(col)
    for col in homogeneous_columns(problem):
        master.add(col)
    for t, b in enumerate(problem.bins):
        if b.min_nodes > 0:
            master.add((t, ()))
    complete = enumerate_columns(problem, ENUMERATION_LIMIT)
    for col in complete or ():
        master.add(col)
    counts = [it.count for it in problem.items]
    root = generate(
        master,
        problem,
        counts,
        deadline=start + options.time_limit_s * 0.4,
        max_iterations=10_000,
        progress=progress,
        cost_scale=cost_scale,
    )
    lp_bound, converged, iterations = root.bound, root.converged, root.iterations
    master.solve()
    # Slack in the LP means some pods cannot all be placed within the node limits.
    slack_used = master.slack_total() > 1e-6
    candidates = [ffd]
    if not slack_used:
        dived = dive(master, problem, start + options.time_limit_s * 0.7, progress, cost_scale)
        if dived is not None and not validate(problem, dived):
            candidates.append(dived)
    incumbent = min(candidates, key=lambda c: (sum(c.unplaced.values()), c.cost(problem)))

    bounds = [(simple, "simple bounds (GPU-hours, whole nodes, minNodes)")]
    if lp_bound is not None:
        word = (
            "LP relaxation, column generation converged" if converged else "Farley bound on the LP"
        )
        bounds.append((float(math.ceil(lp_bound - 1e-6 * max(1.0, lp_bound))), word))
    lower, source = max(bounds, key=lambda c: c[0])
    if not incumbent.unplaced and incumbent.cost(problem) <= lower:
        best, cp_status = incumbent, "not run: the plan meets the lower bound"
    else:
        best, cp_status, cp_bound = _integer_master(
            problem,
            master.columns,
            incumbent=incumbent,
            lower=lower,
            penalty=penalty,
            options=options,
            deadline=deadline,
            progress=progress,
            cost_scale=cost_scale,
        )
        if complete is not None and cp_bound > lower:
            lower, source = (
                float(math.ceil(cp_bound - 1e-6)),
                "CP-SAT over every node configuration",
            )
    feasible_bound = not best.unplaced and not slack_used
    cost = best.cost(problem)
    status_word = "partial" if best.unplaced else ("optimal" if cost <= lower else "feasible")
    stats = SolveStats(
        status=status_word,
        lower_bound=min(lower, float(cost)) if feasible_bound else None,
        bound_source=source if feasible_bound else "",
        lp_bound=lp_bound,
        simple_bound=simple,
        lp_converged=converged,
        columns=len(master.columns),
        iterations=iterations,
        cp_sat_status=cp_status,
        wall_s=time.monotonic() - start,
    )
    return Solution(best, ffd, stats)


def _column_vars(
    m: cp_model.CpModel, problem: Problem, cols: list[Column]
) -> tuple[list[Any], dict[tuple[int, int], list[tuple[int, int]]], list[list[int]]]:
    """One integer variable per column (how many nodes of it), the columns that place each
    item (per bin for grouped items, ``-1`` otherwise), and the columns of each bin."""
    x = []
    terms: dict[tuple[int, int], list[tuple[int, int]]] = {}
    per_bin: list[list[int]] = [[] for _ in problem.bins]
    for k, (t, items) in enumerate(cols):
        b = problem.bins[t]
        need = max((math.ceil(problem.items[i].count / n) for i, n in items), default=b.min_nodes)
        ub = need if b.max_nodes is None else min(need, b.max_nodes)
        x.append(m.new_int_var(0, max(ub, b.min_nodes), f"x{k}"))
        per_bin[t].append(k)
        for i, n in items:
            where = t if problem.items[i].group else -1
            terms.setdefault((where, i), []).append((k, n))
    return x, terms, per_bin


def _coverage(
    m: cp_model.CpModel,
    problem: Problem,
    x: list[Any],
    terms: dict[tuple[int, int], list[tuple[int, int]]],
    *,
    incumbent: Packing,
    pen: int,
) -> list[Any]:
    """Every item placed or paid for as slack; a group only whole, on one bin type. Returns
    the penalty terms."""
    penalties = []
    for i in problem.singles():
        it = problem.items[i]
        slack = m.new_int_var(0, it.count, f"s{i}")
        m.add(sum(n * x[k] for k, n in terms.get((-1, i), [])) + slack >= it.count)
        m.add_hint(slack, incumbent.unplaced.get(it.key, 0))
        penalties.append(pen * slack)
    placed_groups = {f.name: whole_groups(problem, f, incumbent.nodes) for f in problem.families()}
    for f, fam in enumerate(problem.families()):
        slack = m.new_int_var(0, fam.groups, f"g{f}")
        ys = []
        for t in fam.bins:
            y = m.new_int_var(0, fam.groups, f"y{f}_{t}")
            for i, per in fam.members:
                m.add(sum(n * x[k] for k, n in terms.get((t, i), [])) >= per * y)
            m.add_hint(y, placed_groups[fam.name][problem.bins[t].name])
            ys.append(y)
        m.add(sum(ys) + slack >= fam.groups)
        first, per = fam.members[0]
        m.add_hint(slack, incumbent.unplaced.get(problem.items[first].key, 0) // per)
        penalties.append(pen * sum(n for _, n in fam.members) * slack)
    return penalties


def _integer_master(
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
) -> tuple[Packing, str, float]:
    """CP-SAT over the generated columns, hinted with ``incumbent``: the better of the two, the
    solver status, and CP-SAT's bound over these columns."""
    m = cp_model.CpModel()
    x, terms, per_bin = _column_vars(m, problem, cols)
    penalties = _coverage(m, problem, x, terms, incumbent=incumbent, pen=math.ceil(penalty))
    for t, b in enumerate(problem.bins):
        if b.max_nodes is not None:
            m.add(sum(x[k] for k in per_bin[t]) <= b.max_nodes)
        if b.min_nodes > 0:
            m.add(sum(x[k] for k in per_bin[t]) >= b.min_nodes)
    objective = sum(problem.bins[t].cost * x[k] for k, (t, _) in enumerate(cols)) + sum(penalties)
    m.add(objective >= math.floor(lower))
    m.minimize(objective)
    hint = dict(columns_of(problem, incumbent))
    for k, col in enumerate(cols):
        m.add_hint(x[k], hint.get(col, 0))
    solver = _cp_sat(options, max(0.5, deadline - time.monotonic()))
    if progress is not None:
        progress("CP-SAT: searching")
    status = solver.solve(m, _Callback(progress, cost_scale))
    name = str(solver.status_name(status))
    bound = float(solver.best_objective_bound)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return incumbent, name, bound
    nodes: list[tuple[int, Counter[int]]] = []
    for k, (t, items) in enumerate(cols):
        nodes.extend((t, Counter(dict(items))) for _ in range(int(solver.value(x[k]))))
    packed = trim(problem, nodes)
    if validate(problem, packed) or not _better(problem, packed, incumbent):
        return incumbent, name, bound
    return packed, name, bound


def _cp_sat(options: SolveOptions, left: float) -> cp_model.CpSolver:
    """A CP-SAT solver set up by ``options`` to search for at most ``left`` seconds."""
    solver = cp_model.CpSolver()
    params = solver.parameters
    params.random_seed = options.seed
    params.num_workers = options.workers
    params.max_time_in_seconds = left
    if options.deterministic:
        # Deterministic time stops the search at the same point on every run; the wall clock
        # above stays as a safety net on a slow machine.
        params.max_deterministic_time = left / 2
        if options.workers > 1:
            params.interleave_search = True
    if options.relative_gap > 0:
        params.relative_gap_limit = options.relative_gap
    return solver


def _better(problem: Problem, a: Packing, b: Packing) -> bool:
    ua, ub = sum(a.unplaced.values()), sum(b.unplaced.values())
    if ua != ub:
        return ua < ub
    return a.cost(problem) < b.cost(problem)
