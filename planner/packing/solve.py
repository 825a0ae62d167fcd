"""Minimum-cost node mix for one scenario: column generation and branching for a bound, CP-SAT
for the plan.

The model is the configuration (pattern) formulation of bin packing with several node types:
a column is one way to fill one node of one type, and the integer program picks how many nodes
of each configuration to buy so every pod is covered at least cost, and every multi-node group
whole on nodes of one type. Column generation over the LP relaxation (GLOP master, CP-SAT
knapsack pricing) gives the columns and a valid lower bound (the LP optimum once no column
prices out, Farley's ratio bound before), rounded up to a cost a plan can have. Diving rounds
the LP into a first plan; CP-SAT then solves the integer program over the columns, hinted with
the better of diving and first-fit decreasing (whose nodes are columns too, so the plan is never
worse than first-fit decreasing). While the plan is further than the target gap from the
bound, branching on node counts raises the bound (and prices more columns), and neighbourhood
search over the integer program improves the plan. Options (time limit, seed, workers) are
explicit; with ``deterministic`` each CP-SAT search stops on its deterministic time.

The pieces: ``configurations`` (the columns), ``pricing`` (the best column at given duals),
``column_generation`` (the LP, its bound and diving), ``branching`` (the stronger bound),
``integer`` (the integer program); this module runs them within the time limit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from planner.packing.bounds import simple_bound
from planner.packing.branching import branch_and_price, round_up
from planner.packing.column_generation import Generation, Master, Progress, dive, generate
from planner.packing.configurations import (
    Column,
    columns_of,
    enumerate_columns,
    homogeneous_columns,
)
from planner.packing.ffd import first_fit_decreasing
from planner.packing.integer import Integer, better, integer_master, neighbourhood_search
from planner.packing.problem import Packing, Problem, validate

# Up to this many node configurations, every one goes into the model, and CP-SAT's bound is a
# proof for the whole problem rather than for the generated columns only.
ENUMERATION_LIMIT = 4000
# Branches of the node-count search at most; the time limit usually ends it first.
MAX_BRANCHES = 100_000


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
    ffd = first_fit_decreasing(problem)
    simple = simple_bound(problem)
    if not problem.items or all(it.count == 0 for it in problem.items):
        stats = SolveStats(
            "optimal", float(ffd.cost(problem)), "no demand", None, simple, True, 0, 0, "-", 0.0
        )
        return Solution(ffd, ffd, stats)
    run = _Run(problem, options, start, progress, cost_scale)
    root = run.root(ffd)
    incumbent = run.incumbent(ffd)
    bounds = [(simple, "simple bounds (GPU-hours, whole nodes, minNodes)")]
    if root.bound is not None:
        bounds.append((run.up(root.bound), _lp_words(root)))
    lower, source = max(bounds, key=lambda c: c[0])
    best, cp_status, lower, source = run.improve(incumbent, lower, source)
    feasible_bound = not best.unplaced and not run.slack_used
    cost = best.cost(problem)
    status_word = "partial" if best.unplaced else ("optimal" if cost <= lower else "feasible")
    stats = SolveStats(
        status=status_word,
        lower_bound=min(lower, float(cost)) if feasible_bound else None,
        bound_source=source if feasible_bound else "",
        lp_bound=run.lp.bound,
        simple_bound=simple,
        lp_converged=run.lp.converged,
        columns=len(run.master.columns),
        iterations=root.iterations,
        cp_sat_status=cp_status,
        wall_s=time.monotonic() - start,
    )
    return Solution(best, ffd, stats)


class _Run:
    """One solve's steps, in order: the LP at the root, an incumbent from diving, then the
    integer program and branching on node counts in turn, each within its share of the time."""

    def __init__(
        self,
        problem: Problem,
        options: SolveOptions,
        start: float,
        progress: Progress | None,
        cost_scale: float,
    ) -> None:
        self.p = problem
        self.options = options
        self.start = start
        self.deadline = start + options.time_limit_s
        self.progress = progress
        self.cost_scale = cost_scale
        self.penalty = 1.0 + 2.0 * max(b.cost for b in problem.bins)
        self.master = Master(problem, self.penalty)
        self.up = round_up(problem)
        self.complete: list[Column] | None = None
        self.slack_used = False
        self.lp = Generation(math.inf, None, False, 0)

    def at(self, share: float) -> float:
        """The moment ``share`` of the time limit has passed."""
        return self.start + self.options.time_limit_s * share

    def root(self, ffd: Packing) -> Generation:
        """Column generation at the root, from the first-fit-decreasing nodes, one item type
        filling a node, and every configuration when there are few."""
        master, problem = self.master, self.p
        for col, _ in columns_of(problem, ffd):
            master.add(col)
        for col in homogeneous_columns(problem):
            master.add(col)
        for t, b in enumerate(problem.bins):
            if b.min_nodes > 0:
                master.add((t, ()))
        self.complete = enumerate_columns(problem, ENUMERATION_LIMIT)
        for col in self.complete or ():
            master.add(col)
        self.lp = generate(
            master,
            problem,
            [it.count for it in problem.items],
            deadline=self.at(0.4),
            max_iterations=10_000,
            progress=self.progress,
            cost_scale=self.cost_scale,
        )
        # Slack in the LP means some pods cannot all be placed within the node limits.
        self.slack_used = master.slack_total() > 1e-6
        return self.lp

    def incumbent(self, ffd: Packing) -> Packing:
        """The better of first-fit decreasing and diving."""
        candidates = [ffd]
        if not self.slack_used:
            dived = dive(self.master, self.p, self.at(0.6), self.progress, self.cost_scale)
            if dived is not None and not validate(self.p, dived):
                candidates.append(dived)
        return min(candidates, key=lambda c: (sum(c.unplaced.values()), c.cost(self.p)))

    def close(self, best: Packing, lower: float) -> bool:
        """Whether ``best`` places every pod within the target gap of ``lower``."""
        cost = best.cost(self.p)
        return not best.unplaced and cost - lower <= self.options.relative_gap * cost

    def improve(self, best: Packing, lower: float, source: str) -> tuple[Packing, str, float, str]:
        """The integer program over the columns, then, while the gap is wider than the target,
        a stronger bound (column generation resumed where it stopped short, or branching on
        node counts) with more columns, and neighbourhood search over all of them for a better
        plan. Returns the plan, CP-SAT's status, the bound and its source."""
        if not best.unplaced and best.cost(self.p) <= lower:
            return best, "not run: the plan meets the lower bound", lower, source
        left = self.deadline - time.monotonic()
        first = self.integer(best, lower, time.monotonic() + 0.25 * left)
        best, status = first.packing, first.status
        if self.complete is not None and first.bound > lower:
            lower, source = self.up(first.bound), "CP-SAT over every node configuration"
        if self.close(best, lower):
            return best, status, lower, source
        if not self.slack_used:
            until = time.monotonic() + 0.4 * (self.deadline - time.monotonic())
            best, lower, source = self.stronger(best, lower, source, until)
        if not self.close(best, lower):
            best = self.neighbourhoods(best, lower)
        return best, status, lower, source

    def stronger(
        self, best: Packing, lower: float, source: str, until: float
    ) -> tuple[Packing, float, str]:
        """A stronger bound by ``until``: column generation resumed if it stopped short, else
        branching on node counts. Returns the best plan, the bound and its source."""
        if not self.lp.converged:
            self.lp = generate(
                self.master,
                self.p,
                [it.count for it in self.p.items],
                deadline=until,
                max_iterations=10_000,
                progress=self.progress,
                cost_scale=self.cost_scale,
            )
            if self.lp.bound is not None and self.up(self.lp.bound) > lower:
                lower, source = self.up(self.lp.bound), _lp_words(self.lp)
            return best, lower, source
        search = branch_and_price(
            self.master,
            root=lower,
            incumbent=math.inf if best.unplaced else float(best.cost(self.p)),
            target=self.options.relative_gap,
            deadline=until,
            max_branches=MAX_BRANCHES,
        )
        for plan in search.plans:
            if better(self.p, plan, best):
                best = plan
        if search.bound > lower:
            word = "every branch closed" if search.proven else f"{search.branches} branches"
            lower, source = search.bound, f"branch-and-price on node counts ({word})"
        if self.progress is not None:
            self.progress(
                f"branch-and-price: bound ${lower / self.cost_scale:,.2f}/h, "
                f"{search.branches} branches"
            )
        return best, lower, source

    def integer(self, best: Packing, lower: float, until: float) -> Integer:
        """The integer program over the master's columns and ``best``'s nodes."""
        for col, _ in columns_of(self.p, best):
            self.master.add(col)
        return integer_master(
            self.p,
            self.master.columns,
            incumbent=best,
            lower=lower,
            penalty=self.penalty,
            options=self.options,
            deadline=until,
            progress=self.progress,
            cost_scale=self.cost_scale,
        )

    def neighbourhoods(self, best: Packing, lower: float) -> Packing:
        """``best`` improved by neighbourhood search over the master's columns until the
        deadline or a plan within the target gap of ``lower``."""
        for col, _ in columns_of(self.p, best):
            self.master.add(col)
        plan, rounds, improved = neighbourhood_search(
            self.p,
            self.master.columns,
            best=best,
            penalty=self.penalty,
            options=self.options,
            deadline=self.deadline,
            enough=lower / (1.0 - self.options.relative_gap),
        )
        if self.progress is not None:
            self.progress(
                f"neighbourhood search: ${plan.cost(self.p) / self.cost_scale:,.2f}/h, "
                f"{improved} of {rounds} rounds improved the plan"
            )
        return plan


def _lp_words(lp: Generation) -> str:
    """Which bound the LP gives: its optimum, or Farley's before column generation is done."""
    return (
        "LP relaxation, column generation converged" if lp.converged else "Farley bound on the LP"
    )
