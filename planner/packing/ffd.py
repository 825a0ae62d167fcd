"""First-fit decreasing: the baseline that cluster-autoscaler and Karpenter approximate.

Pods are sorted largest first; each goes on the first open node with room, else on a new node of
the cheapest type that can take it (Karpenter's lowest-price choice). Nodes a pool must keep
(``min_nodes``) are open from the start. A multi-node group is placed whole, at the place of its
largest pod: on the node type where its pods need the fewest new dollars (open nodes first,
then new nodes of that type), all on that type, or not at all. Pure and deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from planner.packing.problem import (
    BinType,
    Family,
    ItemType,
    Node,
    Packing,
    Problem,
    eligible,
)


@dataclass
class _Open:
    """A node being filled: what is left on it."""

    bin: BinType
    gpus: int
    cpu: int
    mem: int
    islands: list[int]
    items: list[str] = field(default_factory=list)

    def copy(self) -> _Open:
        return _Open(self.bin, self.gpus, self.cpu, self.mem, list(self.islands), list(self.items))

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


def _new(b: BinType) -> _Open:
    return _Open(b, b.gpus, b.cpu_milli, b.memory_bytes, list(b.islands))


class _Packer:
    """The open nodes and node counts of one first-fit-decreasing run."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.counts: dict[str, int] = {b.name: 0 for b in problem.bins}
        self.nodes: list[_Open] = []
        self.by_cost = sorted(problem.bins, key=lambda b: (b.cost, b.name))
        self.unplaced: dict[str, int] = {}
        for b in problem.bins:
            for _ in range(b.min_nodes):
                self.open(b)

    def open(self, b: BinType) -> _Open:
        self.counts[b.name] += 1
        node = _new(b)
        self.nodes.append(node)
        return node

    def room(self, b: BinType, opened: int = 0) -> bool:
        """Whether another node of ``b`` may open (after ``opened`` more)."""
        return b.max_nodes is None or self.counts[b.name] + opened < b.max_nodes

    def place(self, it: ItemType) -> None:
        """One pod placed alone: first fit, else a new node of the cheapest type."""
        if any(n.take(it) for n in self.nodes):
            return
        for b in self.by_cost:
            if eligible(b, it) and self.room(b) and self.open(b).take(it):
                return
        self.unplaced[it.key] = self.unplaced.get(it.key, 0) + 1

    def _try_group(self, b: BinType, pods: list[ItemType]) -> tuple[list[_Open], int] | None:
        """The open nodes of type ``b`` with the group's pods on them (copies; new nodes
        appended) and how many nodes are new, or ``None`` when it does not fit there."""
        trial = [n.copy() if n.bin is b else n for n in self.nodes]
        new = 0
        for it in pods:
            if any(n.bin is b and n.take(it) for n in trial):
                continue
            if not self.room(b, new):
                return None
            node = _new(b)
            if not node.take(it):
                return None
            trial.append(node)
            new += 1
        return trial, new

    def place_group(self, fam: Family) -> None:
        """One multi-node group placed whole on the node type where it costs least more."""
        members = [(self.problem.items[i], n) for i, n in fam.members]
        pods = sorted((it for it, n in members for _ in range(n)), key=_size_key)
        best: tuple[int, int, list[_Open], BinType] | None = None
        for order, b in enumerate(self.by_cost):
            if self.problem.bins.index(b) not in fam.bins:
                continue
            tried = self._try_group(b, pods)
            if tried is not None and (best is None or tried[1] * b.cost < best[0]):
                best = (tried[1] * b.cost, order, tried[0], b)
        if best is None:
            for it, n in members:
                self.unplaced[it.key] = self.unplaced.get(it.key, 0) + n
            return
        _, _, nodes, b = best
        self.counts[b.name] += len(nodes) - len(self.nodes)
        self.nodes = nodes


def first_fit_decreasing(problem: Problem) -> Packing:
    """Pack ``problem`` first-fit decreasing. Pure."""
    packer = _Packer(problem)
    families = {f.name: f for f in problem.families()}
    jobs: list[tuple[tuple[int, int, int, int, str], ItemType | Family]] = [
        (_size_key(problem.items[i]), problem.items[i]) for i in problem.singles()
    ]
    for fam in families.values():
        largest = min((problem.items[i] for i, _ in fam.members), key=_size_key)
        jobs.append((_size_key(largest), fam))
    for _, job in sorted(jobs, key=lambda j: j[0]):
        if isinstance(job, Family):
            for _ in range(job.groups):
                packer.place_group(job)
        else:
            for _ in range(job.count):
                packer.place(job)
    return Packing(tuple(Node(n.bin.name, tuple(n.items)) for n in packer.nodes), packer.unplaced)
