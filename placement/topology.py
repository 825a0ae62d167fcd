"""NVLink islands: which GPUs of a node are joined, as a networkx graph.

Multi-GPU (tensor-parallel) pods want all their GPUs on one island; the islands are the
connected components of the node's NVLink graph. NVSwitch systems report every pair linked,
which makes the whole node one island.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import combinations

import networkx as nx

from placement.model import NodeState


def nvlink_graph(node: NodeState) -> nx.Graph:
    """Undirected graph of the node's GPUs (by UUID) with an edge per NVLink connection (pure)."""
    g = nx.Graph()
    uuids = {gpu.uuid for gpu in node.gpus}
    g.add_nodes_from(sorted(uuids))
    for gpu in node.gpus:
        for peer in gpu.nvlink_peers:
            if peer in uuids and peer != gpu.uuid:
                g.add_edge(gpu.uuid, peer)
    return g


def islands(node: NodeState) -> list[frozenset[str]]:
    """The node's NVLink islands, largest first, ties by smallest GPU UUID (pure)."""
    comps = [frozenset(c) for c in nx.connected_components(nvlink_graph(node))]
    return sorted(comps, key=lambda c: (-len(c), min(c)))


def link_fraction(node: NodeState, uuids: Iterable[str]) -> float:
    """Share of GPU pairs among ``uuids`` joined directly by NVLink, 1.0 for one GPU (pure)."""
    chosen = sorted(set(uuids))
    pairs = list(combinations(chosen, 2))
    if not pairs:
        return 1.0
    g = nvlink_graph(node)
    return sum(1 for a, b in pairs if g.has_edge(a, b)) / len(pairs)
