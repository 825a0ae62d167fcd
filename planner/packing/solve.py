"""Minimum-cost node mix for one scenario: column generation for a bound, CP-SAT for the plan.

The model is the configuration (pattern) formulation of bin packing with several node types:
a column is one way to fill one node of one type, and the integer program picks how many nodes
of each configuration to buy so every pod is covered at least cost. Column generation over the
LP relaxation (GLOP master, CP-SAT knapsack pricing) gives the columns and a valid lower bound
(the LP optimum once no column prices out, Farley's ratio bound before). CP-SAT then solves the
integer program over those columns, hinted with first-fit-decreasing, whose nodes are columns
too, so the plan is never worse than first-fit-decreasing. Options (time limit, seed, workers)
are explicit; with ``deterministic`` the search stops on CP-SAT's deterministic time so the same
input gives the same plan.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ortools.linear_solver import pywraplp
from ortools.sat.python import cp_model

from planner.packing.bounds import simple_bound
from planner.packing.ffd import first_fit_decreasing
from planner.packing.problem import (
    BinType,
    ItemType,
    Node,
    Packing,
    Problem,
    eligible,
    node_fits,
    validate,
)

Progress = Callable[[str], None]
_EPS = 1e-7
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


Column = tuple[int, tuple[tuple[int, int], ...]]


class _Master:
    """The LP relaxation of the configuration model, grown one column at a time (GLOP).

    Demands and node limits can be lowered to a residual while diving.
    """

    def __init__(self, problem: Problem, penalty: float) -> None:
        self.p = problem
        self.lp = pywraplp.Solver.CreateSolver("GLOP")
        inf = self.lp.infinity()
        self.cover: list[Any] = []
        self.slacks: list[Any] = []
        self.vars: list[Any] = []
        self.obj = self.lp.Objective()
        for i, it in enumerate(problem.items):
            c = self.lp.Constraint(float(it.count), inf, f"cover{i}")
            s = self.lp.NumVar(0.0, inf, f"slack{i}")
            c.SetCoefficient(s, 1.0)
            self.obj.SetCoefficient(s, penalty)
            self.slacks.append(s)
            self.cover.append(c)
        self.upper: dict[int, Any] = {}
        self.lower: dict[int, Any] = {}
        for t, b in enumerate(problem.bins):
            if b.max_nodes is not None:
                self.upper[t] = self.lp.Constraint(0.0, float(b.max_nodes), f"max{t}")
            if b.min_nodes > 0:
                self.lower[t] = self.lp.Constraint(float(b.min_nodes), inf, f"min{t}")
        self.obj.SetMinimization()
        self.columns: list[Column] = []
        self.known: set[Column] = set()

    def add(self, col: Column) -> bool:
        if col in self.known:
            return False
        t, items = col
        self.known.add(col)
        self.columns.append(col)
        v = self.lp.NumVar(0.0, self.lp.infinity(), f"x{len(self.columns)}")
        self.vars.append(v)
        self.obj.SetCoefficient(v, float(self.p.bins[t].cost))
        for i, n in items:
            self.cover[i].SetCoefficient(v, float(n))
        for cons in (self.upper.get(t), self.lower.get(t)):
            if cons is not None:
                cons.SetCoefficient(v, 1.0)
        return True

    def residual(self, counts: list[int], used: Counter[int]) -> None:
        """Ask only for ``counts`` more items, with ``used`` nodes of each type already taken."""
        inf = self.lp.infinity()
        for i, c in enumerate(self.cover):
            c.SetBounds(float(counts[i]), inf)
        for t, c in self.upper.items():
            c.SetBounds(0.0, float(max(0, (self.p.bins[t].max_nodes or 0) - used[t])))
        for t, c in self.lower.items():
            c.SetBounds(float(max(0, self.p.bins[t].min_nodes - used[t])), inf)

    def solve(self) -> tuple[float, list[float], list[float]]:
        status = self.lp.Solve()
        if status != pywraplp.Solver.OPTIMAL:
            raise RuntimeError(f"LP master did not solve (status {status})")
        duals = [c.dual_value() for c in self.cover]
        lam = [0.0] * len(self.p.bins)
        for t, c in self.upper.items():
            lam[t] += c.dual_value()
        for t, c in self.lower.items():
            lam[t] += c.dual_value()
        return float(self.obj.Value()), duals, lam

    def values(self) -> list[float]:
        """Value of each column in the last LP solution."""
        return [v.solution_value() for v in self.vars]

    def slack_total(self) -> float:
        """Items the last LP solution left uncovered."""
        return float(sum(s.solution_value() for s in self.slacks))


def _limit(b: BinType, it: ItemType, count: int) -> int:
    """Most items of ``it`` (``count`` wanted) one node of ``b`` could hold on each resource."""
    bounds = [count]
    if it.gpus:
        bounds.append(b.gpus // it.gpus)
    if it.cpu_milli:
        bounds.append(b.cpu_milli // it.cpu_milli)
    if it.memory_bytes:
        bounds.append(b.memory_bytes // it.memory_bytes)
    return max(0, min(bounds))


def _greedy(
    problem: Problem, t: int, duals: list[float], counts: list[int]
) -> tuple[float, Column | None]:
    """A good node configuration for ``bin t`` by dual value per share of the node."""
    b = problem.bins[t]
    cand = []
    for i, it in enumerate(problem.items):
        if duals[i] > _EPS and counts[i] > 0 and eligible(b, it):
            share = max(
                it.gpus / b.gpus,
                it.cpu_milli / max(1, b.cpu_milli),
                it.memory_bytes / max(1, b.memory_bytes),
                1e-9,
            )
            cand.append((duals[i] / share, i))
    cand.sort(key=lambda x: (-x[0], x[1]))
    chosen: Counter[int] = Counter()
    for _, i in cand:
        it = problem.items[i]
        for _ in range(_limit(b, it, counts[i])):
            chosen[i] += 1
            if not node_fits(b, {problem.items[k]: n for k, n in chosen.items()}):
                chosen[i] -= 1
                break
    value = sum(duals[i] * n for i, n in chosen.items())
    col = (t, tuple(sorted((i, n) for i, n in chosen.items() if n > 0)))
    return value, (col if col[1] else None)


def _dp(
    problem: Problem, t: int, duals: list[float], counts: list[int]
) -> tuple[float, Column | None]:
    """Best configuration of ``bin t`` counting GPUs only (bounded knapsack by dynamic
    programming): an upper bound on the true best value, and its configuration."""
    b = problem.bins[t]
    best = [0.0] * (b.gpus + 1)
    pick: list[list[tuple[int, int]]] = [[] for _ in range(b.gpus + 1)]
    for i, it in enumerate(problem.items):
        if duals[i] <= _EPS or counts[i] <= 0 or not eligible(b, it) or it.gpus <= 0:
            continue
        left = _limit(b, it, counts[i])
        chunk = 1
        while left > 0:
            k = min(chunk, left)
            left -= k
            chunk *= 2
            w, v = k * it.gpus, k * duals[i]
            for cap in range(b.gpus, w - 1, -1):
                if best[cap - w] + v > best[cap] + 1e-12:
                    best[cap] = best[cap - w] + v
                    pick[cap] = [*pick[cap - w], (i, k)]
    top = max(range(b.gpus + 1), key=lambda c: (best[c], -c))
    merged: Counter[int] = Counter()
    for i, k in pick[top]:
        merged[i] += k
    col = (t, tuple(sorted(merged.items())))
    return best[top], (col if col[1] else None)


def _exact(
    problem: Problem, t: int, duals: list[float], counts: list[int], time_limit: float
) -> tuple[float, Column | None]:
    """Best configuration of ``bin t`` under every node rule: dynamic programming on GPUs, and
    CP-SAT when CPU, memory or NVLink islands make that answer infeasible. Returns an upper
    bound on the best value and the best feasible configuration found."""
    b = problem.bins[t]
    upper, col = _dp(problem, t, duals, counts)
    if col is None or node_fits(b, {problem.items[i]: n for i, n in col[1]}):
        return upper, col
    idx = [
        i
        for i, it in enumerate(problem.items)
        if duals[i] > _EPS and counts[i] > 0 and eligible(b, it)
    ]
    top = max(duals[i] for i in idx)
    scale = 1e6 / top
    m = cp_model.CpModel()
    a = {i: m.new_int_var(0, _limit(b, problem.items[i], counts[i]), f"a{i}") for i in idx}
    m.add(sum(problem.items[i].gpus * a[i] for i in idx) <= b.gpus)
    m.add(sum(problem.items[i].cpu_milli * a[i] for i in idx) <= b.cpu_milli)
    m.add(sum(problem.items[i].memory_bytes * a[i] for i in idx) <= b.memory_bytes)
    bound_items = [i for i in idx if problem.items[i].island and problem.items[i].gpus > 1]
    if bound_items and len(b.islands) > 1:
        z = {
            (i, k): m.new_int_var(0, _limit(b, problem.items[i], counts[i]), f"z{i}_{k}")
            for i in bound_items
            for k in range(len(b.islands))
        }
        for i in bound_items:
            m.add(sum(z[i, k] for k in range(len(b.islands))) == a[i])
        for k, size in enumerate(b.islands):
            m.add(sum(problem.items[i].gpus * z[i, k] for i in bound_items) <= size)
    weights = {i: math.floor(duals[i] * scale) for i in idx}
    m.maximize(sum(weights[i] * a[i] for i in idx))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.max_time_in_seconds = max(0.05, time_limit)
    status = solver.solve(m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return upper, None
    # floor() loses less than one unit of value per item placed; keep the bound valid.
    most = sum(_limit(b, problem.items[i], counts[i]) for i in idx)
    upper = min(upper, (solver.best_objective_bound + most) / scale)
    found = (t, tuple(sorted((i, int(solver.value(a[i]))) for i in idx if solver.value(a[i]))))
    if not found[1] or not node_fits(b, {problem.items[i]: n for i, n in found[1]}):
        return upper, None
    return upper, found


@dataclass
class _Generation:
    """Outcome of one run of column generation."""

    lp_value: float
    bound: float | None
    converged: bool
    iterations: int


def _generate(
    master: _Master,
    problem: Problem,
    counts: list[int],
    *,
    deadline: float,
    max_iterations: int,
    progress: Progress | None,
    cost_scale: float,
) -> _Generation:
    """Add improving columns until none prices out, the deadline, or ``max_iterations``."""
    bound: float | None = None
    lp_value = math.inf
    for iteration in range(1, max_iterations + 1):
        lp_value, duals, lam = master.solve()
        if progress is not None and iteration % 10 == 1:
            progress(
                f"column generation: LP ${lp_value / cost_scale:,.2f}/h, "
                f"{len(master.columns)} columns"
            )
        added = 0
        for t, b in enumerate(problem.bins):
            value, col = _greedy(problem, t, duals, counts)
            if col is not None and b.cost - value - lam[t] < -_EPS * b.cost:
                added += master.add(col)
        if not added:
            ratio = 1.0
            for t, b in enumerate(problem.bins):
                left = max(0.05, deadline - time.monotonic())
                upper, col = _exact(problem, t, duals, counts, min(left, 2.0))
                ratio = max(ratio, (upper + lam[t]) / b.cost)
                if col is not None:
                    value = sum(duals[i] * n for i, n in col[1])
                    if b.cost - value - lam[t] < -_EPS * b.cost:
                        added += master.add(col)
            candidate = lp_value / ratio
            bound = candidate if bound is None else max(bound, candidate)
            if not added:
                return _Generation(lp_value, bound, True, iteration)
        if time.monotonic() > deadline:
            return _Generation(lp_value, bound, False, iteration)
    return _Generation(lp_value, bound, False, max_iterations)


def _dive(
    master: _Master,
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
    fixed: list[Column] = []
    try:
        while sum(counts) > 0:
            if time.monotonic() > deadline:
                return None
            master.residual(counts, used)
            _generate(
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
                        counts[i] = max(0, counts[i] - a)
    finally:
        master.residual([it.count for it in problem.items], Counter())
    if progress is not None:
        progress(f"diving: {len(fixed)} nodes")
    return _trim(problem, [(t, Counter(dict(items))) for t, items in fixed])


def _columns_of(problem: Problem, packing: Packing) -> list[tuple[Column, int]]:
    index = {it.key: i for i, it in enumerate(problem.items)}
    bins = {b.name: t for t, b in enumerate(problem.bins)}
    counted: Counter[Column] = Counter()
    for node in packing.nodes:
        items = Counter(index[k] for k in node.items)
        counted[(bins[node.bin], tuple(sorted(items.items())))] += 1
    return sorted(counted.items())


def _homogeneous(problem: Problem) -> list[Column]:
    cols: list[Column] = []
    for t, b in enumerate(problem.bins):
        for i, it in enumerate(problem.items):
            if not eligible(b, it):
                continue
            n = _limit(b, it, it.count)
            while n > 0 and not node_fits(b, {it: n}):
                n -= 1
            if n > 0:
                cols.append((t, ((i, n),)))
    return cols


def _configurations(
    problem: Problem, t: int, idx: list[int], out: list[Column], limit: int
) -> bool:
    """Append every feasible configuration of ``bin t`` over items ``idx`` to ``out``; false
    once ``out`` holds more than ``limit``."""
    b = problem.bins[t]
    chosen: list[tuple[int, int]] = []

    def walk(k: int, gpus: int, cpu: int, mem: int) -> bool:
        if k == len(idx):
            if chosen and node_fits(b, {problem.items[i]: n for i, n in chosen}):
                out.append((t, tuple(chosen)))
            return len(out) <= limit
        it = problem.items[idx[k]]
        most = it.count
        for need, have in ((it.gpus, gpus), (it.cpu_milli, cpu), (it.memory_bytes, mem)):
            if need:
                most = min(most, have // need)
        for n in range(most + 1):
            if n:
                chosen.append((idx[k], n))
            ok = walk(k + 1, gpus - n * it.gpus, cpu - n * it.cpu_milli, mem - n * it.memory_bytes)
            if n:
                chosen.pop()
            if not ok:
                return False
        return True

    return walk(0, b.gpus, b.cpu_milli, b.memory_bytes)


def _enumerate(problem: Problem, limit: int) -> list[Column] | None:
    """Every feasible non-empty node configuration, or ``None`` when there are more than
    ``limit`` (then column generation has to find the useful ones)."""
    out: list[Column] = []
    for t, b in enumerate(problem.bins):
        idx = [i for i, it in enumerate(problem.items) if eligible(b, it)]
        if not _configurations(problem, t, idx, out, limit):
            return None
    return out


def _trim(problem: Problem, nodes: list[tuple[int, Counter[int]]]) -> Packing:
    """Drop items covered more often than demanded, then nodes left empty (above min_nodes)."""
    have: Counter[int] = Counter()
    for _, items in nodes:
        have.update(items)
    for i, it in enumerate(problem.items):
        surplus = have[i] - it.count
        for _, items in reversed(nodes):
            if surplus <= 0:
                break
            take = min(surplus, items[i])
            items[i] -= take
            surplus -= take
    per_bin: Counter[int] = Counter(t for t, _ in nodes)
    kept: list[Node] = []
    for t, items in nodes:
        b = problem.bins[t]
        if sum(items.values()) == 0 and per_bin[t] > b.min_nodes:
            per_bin[t] -= 1
            continue
        keys = tuple(problem.items[i].key for i in sorted(items) for _ in range(items[i]))
        kept.append(Node(b.name, keys))
    return Packing(tuple(kept), {})


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
    master = _Master(problem, penalty)
    for col, _ in _columns_of(problem, ffd):
        master.add(col)
    for col in _homogeneous(problem):
        master.add(col)
    for t, b in enumerate(problem.bins):
        if b.min_nodes > 0:
            master.add((t, ()))
    complete = _enumerate(problem, ENUMERATION_LIMIT)
    for col in complete or ():
        master.add(col)
    counts = [it.count for it in problem.items]
    root = _generate(
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
        dived = _dive(master, problem, start + options.time_limit_s * 0.7, progress, cost_scale)
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
    x = []
    terms: list[list[tuple[int, int]]] = [[] for _ in problem.items]
    per_bin: list[list[int]] = [[] for _ in problem.bins]
    for k, (t, items) in enumerate(cols):
        b = problem.bins[t]
        need = max((math.ceil(problem.items[i].count / n) for i, n in items), default=b.min_nodes)
        ub = need if b.max_nodes is None else min(need, b.max_nodes)
        x.append(m.new_int_var(0, max(ub, b.min_nodes), f"x{k}"))
        per_bin[t].append(k)
        for i, n in items:
            terms[i].append((k, n))
    slack = [m.new_int_var(0, it.count, f"s{i}") for i, it in enumerate(problem.items)]
    for i, it in enumerate(problem.items):
        m.add(sum(n * x[k] for k, n in terms[i]) + slack[i] >= it.count)
    for t, b in enumerate(problem.bins):
        if b.max_nodes is not None:
            m.add(sum(x[k] for k in per_bin[t]) <= b.max_nodes)
        if b.min_nodes > 0:
            m.add(sum(x[k] for k in per_bin[t]) >= b.min_nodes)
    pen = math.ceil(penalty)
    objective = sum(problem.bins[t].cost * x[k] for k, (t, _) in enumerate(cols)) + sum(
        pen * s for s in slack
    )
    m.add(objective >= math.floor(lower))
    m.minimize(objective)
    hint = dict(_columns_of(problem, incumbent))
    for k, col in enumerate(cols):
        m.add_hint(x[k], hint.get(col, 0))
    for i, it in enumerate(problem.items):
        m.add_hint(slack[i], incumbent.unplaced.get(it.key, 0))
    solver = cp_model.CpSolver()
    left = max(0.5, deadline - time.monotonic())
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
    trimmed = _trim(problem, nodes)
    unplaced = {
        it.key: int(solver.value(slack[i]))
        for i, it in enumerate(problem.items)
        if solver.value(slack[i])
    }
    packed = Packing(trimmed.nodes, unplaced)
    if validate(problem, packed) or not _better(problem, packed, incumbent):
        return incumbent, name, bound
    return packed, name, bound


def _better(problem: Problem, a: Packing, b: Packing) -> bool:
    ua, ub = sum(a.unplaced.values()), sum(b.unplaced.values())
    if ua != ub:
        return ua < ub
    return a.cost(problem) < b.cost(problem)
