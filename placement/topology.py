"""NVLink islands: which GPUs of a node are joined, as a networkx graph.

Multi-GPU (tensor-parallel) pods want all their GPUs on one island; the islands are the
connected components of the node's NVLink graph. NVSwitch systems report every pair linked,
which makes the whole node one island.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import combinations
from typing import TYPE_CHECKING, Any

from placement.model import NodeState
from placement.shape import NvLink

if TYPE_CHECKING:
    import networkx as nx


def _networkx() -> Any:
    """networkx, imported on first use: the node agent imports the core for its pod and
    quantity rules but never builds a graph, and networkx is about 20 MB of its memory."""
    import networkx  # noqa: PLC0415 (first use only, see above)

    return networkx


def nvlink_graph(node: NodeState) -> nx.Graph:
    """Undirected graph of the node's GPUs (by UUID) with an edge per NVLink connection (pure)."""
    g: nx.Graph = _networkx().Graph()
    uuids = {gpu.uuid for gpu in node.gpus}
    g.add_nodes_from(sorted(uuids))
    for gpu in node.gpus:
        for peer in gpu.nvlink_peers:
            if peer in uuids and peer != gpu.uuid:
                g.add_edge(gpu.uuid, peer)
    return g


def islands(node: NodeState) -> list[frozenset[str]]:
    """The node's NVLink islands, largest first, ties by smallest GPU UUID (pure)."""
    comps = [frozenset(c) for c in _networkx().connected_components(nvlink_graph(node))]
    return sorted(comps, key=lambda c: (-len(c), min(c)))


def layout_of(island_of: Sequence[int], complete: bool) -> NvLink:
    """The NVLink layout over GPU positions (pure): ``island_of[p]`` is the island of the GPU
    at position ``p`` (GPUs in index order); ``complete`` says every pair is linked (NVSwitch).
    The device plugin's rule (``placement.deviceplugin``) is read on this layout."""
    n = len(island_of)
    if complete and n > 1:
        return NvLink.all(n)
    members: dict[int, list[int]] = {}
    for position, island in enumerate(island_of):
        members.setdefault(island, []).append(position)
    return NvLink.of(tuple(tuple(m) for m in members.values()), n)


def node_layout(node: NodeState) -> NvLink:
    """The node's NVLink layout over its GPUs in index order (pure; see ``layout_of``). Kept by
    the node's GPUs and links: ``fit()`` asks for it on every call, and building the graph
    costs more than the rest of a fit."""
    return _layout(tuple((g.index, g.uuid, g.nvlink_peers) for g in node.gpus))


@lru_cache(maxsize=1024)
def _layout(gpus: tuple[tuple[int, str, frozenset[str]], ...]) -> NvLink:
    """``node_layout`` of GPUs given as (index, UUID, NVLink peers), as ``nvlink_graph`` and
    ``islands`` read them."""
    g: nx.Graph = _networkx().Graph()
    uuids = {uuid for _, uuid, _ in gpus}
    g.add_nodes_from(sorted(uuids))
    for _, uuid, peers in gpus:
        for peer in peers:
            if peer in uuids and peer != uuid:
                g.add_edge(uuid, peer)
    comps = sorted(
        (frozenset(c) for c in _networkx().connected_components(g)), key=lambda c: (-len(c), min(c))
    )
    island_of = {u: k for k, island in enumerate(comps) for u in island}
    order = [uuid for _, uuid, _ in sorted(gpus, key=lambda gpu: gpu[0])]
    n = len(order)
    return layout_of([island_of[u] for u in order], g.number_of_edges() == n * (n - 1) // 2)


def link_fraction(node: NodeState, uuids: Iterable[str]) -> float:
    """Share of GPU pairs among ``uuids`` joined directly by NVLink, 1.0 for one GPU (pure)."""
    chosen = sorted(set(uuids))
    pairs = list(combinations(chosen, 2))
    if not pairs:
        return 1.0
    g = nvlink_graph(node)
    return sum(1 for a, b in pairs if g.has_edge(a, b)) / len(pairs)
