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
from planner.packing.problem import Problem, eligible, node_fits

EPS = 1e-7


def greedy_column(
    problem: Problem, t: int, duals: list[float], counts: list[int]
) -> tuple[float, Column | None]:
    """A good node configuration for ``bin t`` by dual value per share of the node."""
    b = problem.bins[t]
    cand = []
    for i, it in enumerate(problem.items):
        if duals[i] > EPS and counts[i] > 0 and eligible(b, it):
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
        for _ in range(node_limit(b, it, counts[i])):
            chosen[i] += 1
            if not node_fits(b, {problem.items[k]: n for k, n in chosen.items()}):
                chosen[i] -= 1
                break
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
    problem: Problem, t: int, duals: list[float], counts: list[int], time_limit: float
) -> tuple[float, Column | None]:
    """Best configuration of ``bin t`` under every node rule: dynamic programming on GPUs, and
    CP-SAT when CPU, memory or NVLink islands make that answer infeasible. Returns an upper
    bound on the best value and the best feasible configuration found."""
    b = problem.bins[t]
    upper, col = gpu_knapsack(problem, t, duals, counts)
    if col is None or node_fits(b, {problem.items[i]: n for i, n in col[1]}):
        return upper, col
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
