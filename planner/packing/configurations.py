"""Node configurations, the columns of the solver's model: one way to fill one node of one type.

A column is a node type index and, per item type index, how many items of it the node holds.
This module makes the columns the solver starts from (the nodes of a packing, one item type
filling a node, or every configuration when there are few), bounds how many items one node can
take, and trims a set of chosen nodes to the demand (whole multi-node groups per node type).
Pure.
"""

from __future__ import annotations

from collections import Counter

from planner.packing.problem import BinType, ItemType, Node, Packing, Problem, eligible, node_fits

Column = tuple[int, tuple[tuple[int, int], ...]]


def node_limit(b: BinType, it: ItemType, count: int) -> int:
    """Most items of ``it`` (``count`` wanted) one node of ``b`` could hold on each resource."""
    bounds = [count]
    if it.gpus:
        bounds.append(b.gpus // it.gpus)
    if it.cpu_milli:
        bounds.append(b.cpu_milli // it.cpu_milli)
    if it.memory_bytes:
        bounds.append(b.memory_bytes // it.memory_bytes)
    return max(0, min(bounds))


def columns_of(problem: Problem, packing: Packing) -> list[tuple[Column, int]]:
    """The nodes of ``packing`` as columns, each with how many nodes use it."""
    index = {it.key: i for i, it in enumerate(problem.items)}
    bins = {b.name: t for t, b in enumerate(problem.bins)}
    counted: Counter[Column] = Counter()
    for node in packing.nodes:
        items = Counter(index[k] for k in node.items)
        counted[(bins[node.bin], tuple(sorted(items.items())))] += 1
    return sorted(counted.items())


def homogeneous_columns(problem: Problem) -> list[Column]:
    """Per node type and item type, a node filled with as many of that item as fit."""
    cols: list[Column] = []
    for t, b in enumerate(problem.bins):
        for i, it in enumerate(problem.items):
            if not eligible(b, it):
                continue
            n = node_limit(b, it, it.count)
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


def enumerate_columns(problem: Problem, limit: int) -> list[Column] | None:
    """Every feasible non-empty node configuration, or ``None`` when there are more than
    ``limit`` (then column generation has to find the useful ones)."""
    out: list[Column] = []
    for t, b in enumerate(problem.bins):
        idx = [i for i, it in enumerate(problem.items) if eligible(b, it)]
        if not _configurations(problem, t, idx, out, limit):
            return None
    return out


def _wanted(problem: Problem, nodes: list[tuple[int, Counter[int]]]) -> dict[tuple[int, int], int]:
    """Pods to keep: per ``(-1, item)`` for pods placed alone, the demand; per ``(node type,
    item)`` for pods of multi-node groups, whole groups only, at most the demand, filled in
    node-type order."""
    wanted = {(-1, i): it.count for i, it in enumerate(problem.items) if not it.group}
    have: dict[int, Counter[int]] = {}
    for t, items in nodes:
        have.setdefault(t, Counter()).update(items)
    for fam in problem.families():
        left = fam.groups
        for t in sorted(have):
            keep = min(left, *(have[t][i] // per for i, per in fam.members))
            left -= keep
            for i, per in fam.members:
                wanted[(t, i)] = keep * per
    return wanted


def trim(problem: Problem, nodes: list[tuple[int, Counter[int]]]) -> Packing:
    """Drop items covered more often than demanded (and pods of multi-node groups that make
    no whole group on their node type), then nodes left empty (above min_nodes); what stays
    uncovered is unplaced."""
    for (where, i), count in _wanted(problem, nodes).items():
        mine = [items for t, items in nodes if where in (-1, t)]
        surplus = sum(items[i] for items in mine) - count
        for items in reversed(mine):
            if surplus <= 0:
                break
            take = min(surplus, items[i])
            items[i] -= take
            surplus -= take
    per_bin: Counter[int] = Counter(t for t, _ in nodes)
    kept: list[Node] = []
    placed: Counter[int] = Counter()
    for t, items in nodes:
        b = problem.bins[t]
        placed.update(items)
        if sum(items.values()) == 0 and per_bin[t] > b.min_nodes:
            per_bin[t] -= 1
            continue
        keys = tuple(problem.items[i].key for i in sorted(items) for _ in range(items[i]))
        kept.append(Node(b.name, keys))
    unplaced = {
        it.key: it.count - placed[i] for i, it in enumerate(problem.items) if placed[i] < it.count
    }
    return Packing(tuple(kept), unplaced)
