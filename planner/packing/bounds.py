"""Simple lower bounds on the cost of any plan, for a gap that needs no solver proof.

``gpu_bound``: every GPU asked for must be bought at no less than the cheapest price per GPU of
a node type the item may use (Martello-Toth L1, priced). ``whole_node_bound``: items that can
never share a node (more than half of every allowed node's GPUs) each pay for a node of their
own. ``l2_bins``: the Martello-Toth L2 bound on the number of bins for one capacity. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from planner.packing.problem import Problem, eligible


def gpu_bound(problem: Problem) -> float:
    """Cost bound from GPUs alone: sum over items of GPUs times the cheapest allowed GPU-hour."""
    total = 0.0
    for it in problem.items:
        prices = [b.cost / b.gpus for b in problem.bins if eligible(b, it)]
        if prices and it.gpus > 0:
            total += it.count * it.gpus * min(prices)
    return total


def whole_node_bound(problem: Problem) -> float:
    """Cost bound from items that need a node to themselves (no two fit on any allowed node)."""
    total = 0.0
    for it in problem.items:
        allowed = [b for b in problem.bins if eligible(b, it)]
        if allowed and all(
            2 * it.gpus > b.gpus
            or 2 * it.cpu_milli > b.cpu_milli
            or 2 * it.memory_bytes > b.memory_bytes
            for b in allowed
        ):
            total += it.count * min(b.cost for b in allowed)
    return total


def floor_cost(problem: Problem) -> float:
    """Cost of the nodes pools must keep (``min_nodes``) whatever the demand."""
    return float(sum(b.min_nodes * b.cost for b in problem.bins))


def l2_bins(sizes: Sequence[int], capacity: int) -> int:
    """Martello and Toth's L2 lower bound on the number of bins of ``capacity`` for ``sizes``."""
    if not sizes:
        return 0
    best = math.ceil(sum(sizes) / capacity)
    alphas = sorted({s for s in sizes if 2 * s <= capacity} | {0})
    for alpha in alphas:
        j1 = [s for s in sizes if s > capacity - alpha]
        j2 = [s for s in sizes if 2 * s > capacity and s <= capacity - alpha]
        j3 = [s for s in sizes if alpha <= s and 2 * s <= capacity]
        free = len(j2) * capacity - sum(j2)
        extra = max(0, math.ceil((sum(j3) - free) / capacity))
        best = max(best, len(j1) + len(j2) + extra)
    return best


def simple_bound(problem: Problem) -> float:
    """The best of the simple bounds (cost per hour, same unit as the node costs)."""
    bound = max(gpu_bound(problem), whole_node_bound(problem), floor_cost(problem))
    if len(problem.bins) == 1:
        b = problem.bins[0]
        if all(
            not it.island and it.cpu_milli == 0 and it.memory_bytes == 0 for it in problem.items
        ):
            sizes = [it.gpus for it in problem.items for _ in range(it.count)]
            bound = max(bound, l2_bins(sizes, b.gpus) * b.cost)
    return bound
