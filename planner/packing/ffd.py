"""First-fit decreasing: the baseline that cluster-autoscaler and Karpenter approximate.

Pods are sorted largest first; each goes on the first open node with room, else on a new node of
the cheapest type that can take it (Karpenter's lowest-price choice). Nodes a pool must keep
(``min_nodes``) are open from the start. Pure and deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from planner.packing.problem import BinType, ItemType, Node, Packing, Problem, eligible


@dataclass
class _Open:
    """A node being filled: what is left on it."""

    bin: BinType
    gpus: int
    cpu: int
    mem: int
    islands: list[int]
    items: list[str] = field(default_factory=list)

    def take(self, it: ItemType) -> bool:
        if not eligible(self.bin, it):
            return False
        if it.gpus > self.gpus or it.cpu_milli > self.cpu or it.memory_bytes > self.mem:
            return False
        if it.island and it.gpus > 1 and len(self.islands) > 1:
            best = -1
            for idx, f in enumerate(self.islands):
                if f >= it.gpus and (best < 0 or f < self.islands[best]):
                    best = idx
            if best < 0:
                return False
            self.islands[best] -= it.gpus
        self.gpus -= it.gpus
        self.cpu -= it.cpu_milli
        self.mem -= it.memory_bytes
        self.items.append(it.key)
        return True


def _size_key(it: ItemType) -> tuple[int, int, int, int, str]:
    return (-it.gpus, -int(it.island), -it.memory_bytes, -it.cpu_milli, it.key)


def first_fit_decreasing(problem: Problem) -> Packing:
    """Pack ``problem`` first-fit decreasing. Pure."""
    counts: dict[str, int] = {b.name: 0 for b in problem.bins}
    nodes: list[_Open] = []

    def open_node(b: BinType) -> _Open:
        counts[b.name] += 1
        node = _Open(b, b.gpus, b.cpu_milli, b.memory_bytes, list(b.islands))
        nodes.append(node)
        return node

    for b in problem.bins:
        for _ in range(b.min_nodes):
            open_node(b)
    unplaced: dict[str, int] = {}
    by_cost = sorted(problem.bins, key=lambda b: (b.cost, b.name))
    for it in sorted(problem.items, key=_size_key):
        for _ in range(it.count):
            if any(n.take(it) for n in nodes):
                continue
            for b in by_cost:
                if not eligible(b, it):
                    continue
                if b.max_nodes is not None and counts[b.name] >= b.max_nodes:
                    continue
                if open_node(b).take(it):
                    break
            else:
                unplaced[it.key] = unplaced.get(it.key, 0) + 1
    return Packing(tuple(Node(n.bin.name, tuple(n.items)) for n in nodes), unplaced)
