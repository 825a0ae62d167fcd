"""Fake Nodes for the simulated node spec, so ``make cluster`` shows what the agents simulate.

The spec format, its validation and the built-in default cluster belong to the simulated node
agent (``nodeagent.simulated.spec``); this module only turns each simulated node's shape into the
Node object kube-scheduler sees, so its GPU Feature Discovery labels come from the same
``NodeShape`` the agent reports. A bad spec raises ``placement.fields.InputError``.
"""

from __future__ import annotations

from pathlib import Path

from controlplane.nodes import GpuNode
from nodeagent.simulated.spec import DEFAULT_CLUSTER_YAML, NodeSpec, default_cluster, load_spec

__all__ = ["DEFAULT_CLUSTER_YAML", "gpu_node", "load_nodes"]


def gpu_node(spec: NodeSpec) -> GpuNode:
    """Pure: the fake Node of one simulated node."""
    return GpuNode.of(spec.name, spec.shape)


def load_nodes(path: Path | None) -> tuple[list[NodeSpec], str]:
    """The simulated nodes of the spec file at ``path`` (the built-in cluster when None), and
    the YAML text the agents are to read, so that Nodes and agents always agree."""
    if path is None:
        return default_cluster(), DEFAULT_CLUSTER_YAML
    specs = load_spec(path)
    return specs, path.read_text(encoding="utf-8")
