"""The packing problem every solver in the planner works on: item types, node types, nodes.

An item is one pod of one replica (a whole tensor-parallel group when it fits one node); items
with the same shape and the same allowed node types are one item type with a count. A node
type has GPUs (grouped into NVLink islands), CPU and memory, a price and optional node limits.
``node_fits`` is the one capacity rule shared by first-fit-decreasing, the column generator and
the CP-SAT model, and it mirrors ``placement.fit``'s GPU choice (NVLink-bound items first, each
in the fullest island that still holds it).

A replica of several pods (a multi-node group: a LeaderWorkerSet replica, a Ray head and its
workers) runs on nodes of ONE pool: its pods are item types of one ``Family``, each holding
``per_group`` pods of every group, and a valid packing puts whole groups on each node type
(``group_errors``). Pure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BinType:
    """A node type: ``gpus`` in ``islands`` (sizes of its NVLink islands), CPU in millicores,
    memory in bytes, ``cost`` per node per hour in integer micro-dollars."""

    name: str
    gpus: int
    islands: tuple[int, ...]
    cpu_milli: int
    memory_bytes: int
    cost: int
    min_nodes: int = 0
    max_nodes: int | None = None


@dataclass(frozen=True, slots=True)
class ItemType:
    """Identical pods: ``count`` of them, each needing ``gpus`` (on one NVLink island when
    ``island``), CPU and memory, allowed on the node types named in ``allowed``.

    ``group`` names the family of multi-node groups the pods belong to ("" for pods placed
    alone); each group of the family has ``per_group`` pods of this type."""

    key: str
    gpus: int
    cpu_milli: int
    memory_bytes: int
    island: bool
    allowed: tuple[str, ...]
    count: int
    group: str = ""
    per_group: int = 0


@dataclass(frozen=True, slots=True)
class Family:
    """Multi-node groups of one shape: ``groups`` of them, each made of ``per_group`` pods of
    every member item type (``members``: item index and pods per group). A group's pods all go
    on node types in ``bins`` (indices), the types every member may use, and on one of them."""

    name: str
    members: tuple[tuple[int, int], ...]
    groups: int
    bins: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    """Node types and item types of one scenario."""

    bins: tuple[BinType, ...]
    items: tuple[ItemType, ...]

    def bin(self, name: str) -> BinType:
        """The node type named ``name``."""
        for b in self.bins:
            if b.name == name:
                return b
        raise KeyError(name)

    def item(self, key: str) -> ItemType:
        """The item type with key ``key``."""
        for i in self.items:
            if i.key == key:
                return i
        raise KeyError(key)

    def families(self) -> tuple[Family, ...]:
        """The multi-node group families, in the order their first item appears."""
        members: dict[str, list[tuple[int, int]]] = {}
        for i, it in enumerate(self.items):
            if it.group:
                members.setdefault(it.group, []).append((i, max(1, it.per_group)))
        out = []
        for name, ms in members.items():
            first, per = ms[0]
            bins = tuple(
                t for t, b in enumerate(self.bins) if all(eligible(b, self.items[i]) for i, _ in ms)
            )
            out.append(Family(name, tuple(ms), self.items[first].count // per, bins))
        return tuple(out)

    def singles(self) -> tuple[int, ...]:
        """Indices of the item types whose pods are placed alone (no group)."""
        return tuple(i for i, it in enumerate(self.items) if not it.group)


@dataclass(frozen=True, slots=True)
class Node:
    """One node of a solution: its type and the item keys on it (with repeats)."""

    bin: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Packing:
    """A solution: its nodes, and the items it could not place (key to count)."""

    nodes: tuple[Node, ...]
    unplaced: Mapping[str, int]

    def cost(self, problem: Problem) -> int:
        """Sum of the node costs (micro-dollars per hour)."""
        costs = {b.name: b.cost for b in problem.bins}
        return sum(costs[n.bin] for n in self.nodes)

    def nodes_per_bin(self) -> Counter[str]:
        """How many nodes of each type."""
        return Counter(n.bin for n in self.nodes)


def island_assignment(islands: Iterable[int], sizes: Iterable[int]) -> list[int] | None:
    """Place NVLink-bound groups of ``sizes`` GPUs, largest first, each in the island with the
    fewest free GPUs that still holds it (ties: the first); the island index per group in the
    order of ``sorted(sizes, reverse=True)``, or ``None`` if one does not fit. Pure."""
    free = list(islands)
    chosen: list[int] = []
    for s in sorted(sizes, reverse=True):
        best = -1
        for idx, f in enumerate(free):
            if f >= s and (best < 0 or f < free[best]):
                best = idx
        if best < 0:
            return None
        free[best] -= s
        chosen.append(best)
    return chosen


def eligible(b: BinType, it: ItemType) -> bool:
    """Whether one item of type ``it`` alone fits an empty node of type ``b``. Pure."""
    if b.name not in it.allowed:
        return False
    if it.gpus > b.gpus or it.cpu_milli > b.cpu_milli or it.memory_bytes > b.memory_bytes:
        return False
    return not (it.island and it.gpus > 1 and max(b.islands, default=0) < it.gpus)


def node_fits(b: BinType, items: Mapping[ItemType, int]) -> bool:
    """Whether these items (type to count) fit together on one node of type ``b``. Pure."""
    gpus = cpu = mem = 0
    bound: list[int] = []
    for it, n in items.items():
        if n <= 0:
            continue
        if not eligible(b, it):
            return False
        gpus += it.gpus * n
        cpu += it.cpu_milli * n
        mem += it.memory_bytes * n
        if it.island and it.gpus > 1:
            bound.extend([it.gpus] * n)
    if gpus > b.gpus or cpu > b.cpu_milli or mem > b.memory_bytes:
        return False
    if bound and len(b.islands) > 1:
        return island_assignment(b.islands, bound) is not None
    return True


def validate(problem: Problem, packing: Packing) -> list[str]:
    """Everything wrong with ``packing`` for ``problem`` (empty when it is valid). Pure.

    Checks node capacity, node limits and that placed plus unplaced items equal the demand.
    """
    errors: list[str] = []
    items = {i.key: i for i in problem.items}
    placed: Counter[str] = Counter()
    for idx, node in enumerate(packing.nodes):
        counts = Counter(node.items)
        placed.update(counts)
        b = problem.bin(node.bin)
        if not node_fits(b, {items[k]: n for k, n in counts.items()}):
            errors.append(f"node {idx} ({node.bin}) is over capacity: {dict(counts)}")
    for it in problem.items:
        got = placed[it.key] + packing.unplaced.get(it.key, 0)
        if got != it.count:
            errors.append(f"item {it.key}: {got} placed or unplaced, demand {it.count}")
    errors.extend(group_errors(problem, packing))
    per_bin = packing.nodes_per_bin()
    for b in problem.bins:
        if b.max_nodes is not None and per_bin[b.name] > b.max_nodes:
            errors.append(f"{b.name}: {per_bin[b.name]} nodes exceed maxNodes {b.max_nodes}")
        if per_bin[b.name] < b.min_nodes:
            errors.append(f"{b.name}: {per_bin[b.name]} nodes are below minNodes {b.min_nodes}")
    return errors


def whole_groups(problem: Problem, family: Family, nodes: Iterable[Node]) -> Counter[str]:
    """Whole groups of ``family`` on ``nodes`` per node type: on each type, the fewest groups
    any member's pods there complete. Pure."""
    per_bin: dict[str, Counter[str]] = {}
    for node in nodes:
        per_bin.setdefault(node.bin, Counter()).update(node.items)
    out: Counter[str] = Counter()
    for name, have in per_bin.items():
        out[name] = min(have[problem.items[i].key] // n for i, n in family.members)
    return +out


def group_errors(problem: Problem, packing: Packing) -> list[str]:
    """Multi-node groups that a packing splits: pods of a family on a node type (or left
    unplaced) that do not make whole groups there. Pure."""
    errors: list[str] = []
    for fam in problem.families():
        places: dict[str, Counter[str]] = {}
        for node in packing.nodes:
            places.setdefault(node.bin, Counter()).update(node.items)
        places["unplaced"] = Counter(packing.unplaced)
        for where, have in sorted(places.items()):
            sizes = {have[problem.items[i].key] / n for i, n in fam.members}
            if len(sizes) > 1 or any(s != int(s) for s in sizes):
                counts = {problem.items[i].key: have[problem.items[i].key] for i, _ in fam.members}
                errors.append(f"group {fam.name} is split on {where}: {counts}")
    return errors
