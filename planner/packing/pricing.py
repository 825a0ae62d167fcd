"""Pricing for column generation: the node configuration worth most at the LP's dual prices.

Given a dual value per item type, a configuration of one node type is worth the sum of its
items' duals; a column improves the LP when it is worth more than the node costs. Three
answers of rising cost: a greedy fill by value per share of the node, a GPU-only knapsack by
dynamic programming (an upper bound), and CP-SAT under every node rule when the knapsack's
answer breaks CPU, memory or NVLink islands. Pure apart from CP-SAT's time limit.
"""

from __future__ import annotations

import math
from collections import Counter

from ortools.sat.python import cp_model

from planner.packing.configurations import Column, node_limit
from planner.packing.problem import (
    BinType,
    ItemType,
    Problem,
    eligible,
    island_assignment,
    node_fits,
)

EPS = 1e-7


def _shares(b: BinType, it: ItemType) -> tuple[float, float, float]:
    return (
        it.gpus / b.gpus,
        it.cpu_milli / max(1, b.cpu_milli),
        it.memory_bytes / max(1, b.memory_bytes),
    )


def greedy_column(
    problem: Problem, t: int, duals: list[float], counts: list[int]
) -> tuple[float, Column | None]:
    """A good node configuration for ``bin t`` by dual value per share of the node (its
    largest share of any resource)."""
    b = problem.bins[t]
    cand = sorted(
        (
            (duals[i] / max(*_shares(b, it), 1e-9), i)
            for i, it in enumerate(problem.items)
            if duals[i] > EPS and counts[i] > 0 and eligible(b, it)
        ),
        key=lambda x: (-x[0], x[1]),
    )
    return _fill(problem, t, duals, counts, [i for _, i in cand])


def _fill(
    problem: Problem, t: int, duals: list[float], counts: list[int], order: list[int]
) -> tuple[float, Column | None]:
    """A node of ``bin t`` filled with items in ``order``, each as many times as fit."""
    b = problem.bins[t]
    chosen: Counter[int] = Counter()
    # What is left of the node as items go on; the NVLink-bound ones (several GPUs on one
    # island) are placed on islands by ``island_assignment``, as ``node_fits`` places them.
    gpus, cpu, mem = b.gpus, b.cpu_milli, b.memory_bytes
    bound: list[int] = []
    islands = len(b.islands) > 1
    for i in order:
        it = problem.items[i]
        on_island = islands and it.island and it.gpus > 1
        for _ in range(node_limit(b, it, counts[i])):
            if it.gpus > gpus or it.cpu_milli > cpu or it.memory_bytes > mem:
                break
            if on_island and island_assignment(b.islands, [*bound, it.gpus]) is None:
                break
            chosen[i] += 1
            gpus, cpu, mem = gpus - it.gpus, cpu - it.cpu_milli, mem - it.memory_bytes
            if on_island:
                bound.append(it.gpus)
    value = sum(duals[i] * n for i, n in chosen.items())
    col = (t, tuple(sorted((i, n) for i, n in chosen.items() if n > 0)))
    return value, (col if col[1] else None)


def gpu_knapsack(
    problem: Problem, t: int, duals: list[float], counts: list[int]
) -> tuple[float, Column | None]:
    """Best configuration of ``bin t`` counting GPUs only (bounded knapsack by dynamic
    programming): an upper bound on the true best value, and its configuration."""
    b = problem.bins[t]
    best = [0.0] * (b.gpus + 1)
    pick: list[list[tuple[int, int]]] = [[] for _ in range(b.gpus + 1)]
    for i, it in enumerate(problem.items):
        if duals[i] <= EPS or counts[i] <= 0 or not eligible(b, it) or it.gpus <= 0:
            continue
        left = node_limit(b, it, counts[i])
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


def exact_column(
    problem: Problem,
    t: int,
    duals: list[float],
    counts: list[int],
    time_limit: float,
    *,
    worth: float = -math.inf,
) -> tuple[float, Column | None]:
    """Best configuration of ``bin t`` under every node rule: dynamic programming on GPUs, and
    CP-SAT when CPU, memory or NVLink islands make that answer infeasible. Returns an upper
    bound on the best value and the best feasible configuration found. When even the GPU-only
    bound is no more than ``worth`` (what a column must be worth to improve the LP), no column
    of this node type can, and CP-SAT is not asked."""
    b = problem.bins[t]
    upper, col = gpu_knapsack(problem, t, duals, counts)
    if col is None or node_fits(b, {problem.items[i]: n for i, n in col[1]}):
        return upper, col
    if upper <= worth:
        return upper, None
    idx = [
        i
        for i, it in enumerate(problem.items)
        if duals[i] > EPS and counts[i] > 0 and eligible(b, it)
    ]
    top = max(duals[i] for i in idx)
    scale = 1e6 / top
    m = cp_model.CpModel()
    a = {i: m.new_int_var(0, node_limit(b, problem.items[i], counts[i]), f"a{i}") for i in idx}
    m.add(sum(problem.items[i].gpus * a[i] for i in idx) <= b.gpus)
    m.add(sum(problem.items[i].cpu_milli * a[i] for i in idx) <= b.cpu_milli)
    m.add(sum(problem.items[i].memory_bytes * a[i] for i in idx) <= b.memory_bytes)
    bound_items = [i for i in idx if problem.items[i].island and problem.items[i].gpus > 1]
    if bound_items and len(b.islands) > 1:
        z = {
            (i, k): m.new_int_var(0, node_limit(b, problem.items[i], counts[i]), f"z{i}_{k}")
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
    most = sum(node_limit(b, problem.items[i], counts[i]) for i in idx)
    upper = min(upper, (solver.best_objective_bound + most) / scale)
    found = (t, tuple(sorted((i, int(solver.value(a[i]))) for i in idx if solver.value(a[i]))))
    if not found[1] or not node_fits(b, {problem.items[i]: n for i, n in found[1]}):
        return upper, None
    return upper, found
