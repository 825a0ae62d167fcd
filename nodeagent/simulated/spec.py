"""The simulated node spec: GPU nodes described in YAML, for the local cluster, demos and tests.

    nodes:
    - name: h100-0            # or `namePrefix: h100-` with `count: 8`
      product: NVIDIA-H100-80GB-HBM3
      gpus: 8
      memoryPerGpu: 80Gi      # kubernetes quantity
      nvlink: all             # all | none | islands: [[0,1,2,3],[4,5,6,7]]
      cachedModels: [{id: meta-llama/Llama-3.1-70B-Instruct, size: 141Gi}]
      localDiskBandwidth: 2Gi # bytes per second, quantity
      remoteBandwidth: 500Mi

``load_spec`` reads a file with the one document loader and the core's field reader, and reports
every malformed field at once, each by its path (``nodes[2].memoryPerGpu``); ``nvlink`` follows
the core's one rule (``placement.shape.parse_nvlink``: a GPU left out of every island is an
island of one). Each node is a ``NodeShape``, the same shape the planner, the simulator and the
test control plane's fake nodes use. ``default_cluster`` is the built-in cluster: eight H100
80 GB nodes and eight A100 40 GB nodes, eight NVLink-connected GPUs each.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from documents import load_document, parse_document
from placement.fields import Fields, InputError, Problem, quote
from placement.shape import NodeShape, read_nvlink

_UUID_NAMESPACE = uuidlib.UUID("8f0f6a52-3b5e-4d0c-9a57-6b1f1f6f3c11")

DEFAULT_LOCAL_DISK_BANDWIDTH = 2 * 1024**3
DEFAULT_REMOTE_BANDWIDTH = 500 * 1024**2

_NODE_FIELDS = (
    "name",
    "namePrefix",
    "count",
    "product",
    "gpus",
    "memoryPerGpu",
    "nvlink",
    "cachedModels",
    "localDiskBandwidth",
    "remoteBandwidth",
)


@dataclass(frozen=True, slots=True)
class CachedModelSpec:
    """Model weights on the node's local disk."""

    model_id: str
    bytes: int


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One simulated GPU node: its name, its shape (GPUs, VRAM, NVLink, bandwidths) and the
    model weights already on its disk."""

    name: str
    shape: NodeShape
    cached_models: tuple[CachedModelSpec, ...] = ()

    @property
    def local_disk_bandwidth(self) -> float:
        """Bytes per second from local disk (a simulated node always has a figure)."""
        rate = self.shape.local_disk_bytes_per_s
        return float(DEFAULT_LOCAL_DISK_BANDWIDTH) if rate is None else rate

    @property
    def remote_bandwidth(self) -> float:
        """Bytes per second from remote storage (a simulated node always has a figure)."""
        rate = self.shape.remote_bytes_per_s
        return float(DEFAULT_REMOTE_BANDWIDTH) if rate is None else rate

    def gpu_uuid(self, index: int) -> str:
        """A stable UUID for GPU ``index`` of this node, in NVML's ``GPU-<uuid>`` form."""
        return f"GPU-{uuidlib.uuid5(_UUID_NAMESPACE, f'{self.name}/{index}')}"


def _names(node: Fields) -> list[str]:
    """``name``, or ``count`` names from ``namePrefix``: exactly one of the two is given."""
    if node.has("name") == node.has("namePrefix"):
        node.bad("", "give exactly one of 'name' or 'namePrefix' (with 'count')")
        return []
    if node.has("name"):
        if node.has("count"):
            node.bad("count", "only allowed with 'namePrefix'")
        name = node.text("name", None)
        return [] if name is None else [name]
    prefix = node.text("namePrefix", None)
    count = node.integer("count", None, minimum=1, required=True)
    if prefix is None or count is None:
        return []
    return [f"{prefix}{n}" for n in range(count)]


def _shape(node: Fields) -> NodeShape | None:
    """The node's shape, or ``None`` when a field it needs is bad (recorded as a problem)."""
    product = node.text("product", None, required=True)
    gpus = node.integer("gpus", None, minimum=1, required=True)
    memory = node.size("memoryPerGpu", None, positive=True, required=True)
    nvlink = read_nvlink(node, "nvlink", gpus or 0)
    local = node.rate("localDiskBandwidth", float(DEFAULT_LOCAL_DISK_BANDWIDTH))
    remote = node.rate("remoteBandwidth", float(DEFAULT_REMOTE_BANDWIDTH))
    if product is None or gpus is None or memory is None:
        return None
    return NodeShape(product, gpus, memory, nvlink, local, remote)


def _cached(node: Fields) -> tuple[CachedModelSpec, ...]:
    out = []
    for model in node.children("cachedModels", ("id", "size")):
        model_id = model.text("id", None, required=True)
        size = model.size("size", None, required=True)
        if model_id is not None and size is not None:
            out.append(CachedModelSpec(model_id, size))
    return tuple(out)


def parse_spec(data: Any, source: str = "spec") -> list[NodeSpec]:
    """Node specs from a decoded document (pure); raises ``InputError`` listing every bad field
    by its path (``nodes[2].memoryPerGpu``)."""
    root = Fields(data, known=("nodes",))
    listed = root.get("nodes")
    out: list[NodeSpec] = []
    for i, node in enumerate(root.children("nodes", _NODE_FIELDS, required=True)):
        if not isinstance(listed[i], Mapping):
            continue  # the entry's own problem says so; its fields would only repeat it
        names, shape, cached = _names(node), _shape(node), _cached(node)
        if shape is not None:
            out.extend(NodeSpec(name, shape, cached) for name in names)
    seen: set[str] = set()
    for spec in out:
        if spec.name in seen:
            root.bad("nodes", f"node name {quote(spec.name)} appears more than once")
        seen.add(spec.name)
    root.raise_if_problems(source)
    return out


def load_spec(path: Path) -> list[NodeSpec]:
    """Node specs from the YAML file at ``path``; ``InputError`` (``DocumentError`` for a file
    that cannot be read as a document) names the file and every bad field."""
    return parse_spec(load_document(path), str(path))


DEFAULT_CLUSTER_YAML = """
nodes:
- namePrefix: h100-
  count: 8
  product: NVIDIA-H100-80GB-HBM3
  gpus: 8
  memoryPerGpu: 80Gi
  nvlink: all
  cachedModels: [{id: meta-llama/Llama-3.1-70B-Instruct, size: 141Gi}]
  localDiskBandwidth: 2Gi
  remoteBandwidth: 500Mi
- namePrefix: a100-
  count: 8
  product: NVIDIA-A100-SXM4-40GB
  gpus: 8
  memoryPerGpu: 40Gi
  nvlink: all
  localDiskBandwidth: 1Gi
  remoteBandwidth: 500Mi
"""


def default_cluster() -> list[NodeSpec]:
    """The built-in cluster: 8 H100 80 GB nodes and 8 A100 40 GB nodes, 8 GPUs each."""
    source = "built-in default cluster"
    return parse_spec(parse_document(DEFAULT_CLUSTER_YAML, source), source)


def find_node(specs: list[NodeSpec], name: str, source: str) -> NodeSpec:
    """The spec of node ``name``; ``InputError`` lists the nodes the spec does have."""
    for spec in specs:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in specs[:20]) + (" ..." if len(specs) > 20 else "")
    raise InputError(source, [Problem("", f"no node named {quote(name)} (nodes: {known})")])
