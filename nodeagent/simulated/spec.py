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

``load_spec`` reads a file and reports every malformed field at once, each by its path
(``nodes[2].memoryPerGpu``). ``default_cluster`` is the built-in cluster: eight H100 80 GB
nodes and eight A100 40 GB nodes, eight NVLink-connected GPUs each.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from placement.quantity import QuantityError, parse_bytes

_UUID_NAMESPACE = uuidlib.UUID("8f0f6a52-3b5e-4d0c-9a57-6b1f1f6f3c11")

DEFAULT_LOCAL_DISK_BANDWIDTH = 2 * 1024**3
DEFAULT_REMOTE_BANDWIDTH = 500 * 1024**2

_NODE_FIELDS = frozenset(
    {
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
    }
)


class SpecError(ValueError):
    """A spec that cannot be used; ``problems`` lists every bad field by its path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class CachedModelSpec:
    """Model weights on the node's local disk."""

    model_id: str
    bytes: int


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One simulated GPU node. ``islands`` lists GPU indices joined by NVLink."""

    name: str
    product: str
    gpus: int
    memory_per_gpu: int
    islands: tuple[tuple[int, ...], ...]
    cached_models: tuple[CachedModelSpec, ...] = ()
    local_disk_bandwidth: float = float(DEFAULT_LOCAL_DISK_BANDWIDTH)
    remote_bandwidth: float = float(DEFAULT_REMOTE_BANDWIDTH)

    def gpu_uuid(self, index: int) -> str:
        """A stable UUID for GPU ``index`` of this node, in NVML's ``GPU-<uuid>`` form."""
        return f"GPU-{uuidlib.uuid5(_UUID_NAMESPACE, f'{self.name}/{index}')}"

    def node_labels(self) -> dict[str, str]:
        """The labels GPU Feature Discovery would put on this node."""
        return {
            "nvidia.com/gpu.product": self.product,
            "nvidia.com/gpu.memory": str(self.memory_per_gpu // 1024**2),
            "nvidia.com/gpu.count": str(self.gpus),
        }


def _parse_islands(
    value: Any, gpus: int, where: str, problems: list[str]
) -> tuple[tuple[int, ...], ...]:
    if value is None or value == "none" or value is False:
        return ()
    if value == "all" or value is True:
        return (tuple(range(gpus)),) if gpus > 1 else ()
    if isinstance(value, Mapping) and set(value) == {"islands"}:
        value = value["islands"]
    if not isinstance(value, list) or not all(isinstance(i, list) for i in value):
        problems.append(
            f"{where}: expected 'all', 'none' or {{islands: [[0,1,...], ...]}}, got {value!r}"
        )
        return ()
    seen: dict[int, int] = {}
    islands = []
    for n, island in enumerate(value):
        members = []
        for gpu in island:
            if isinstance(gpu, bool) or not isinstance(gpu, int) or not 0 <= gpu < gpus:
                problems.append(f"{where}.islands[{n}]: {gpu!r} is not a GPU index 0..{gpus - 1}")
            elif gpu in seen:
                problems.append(f"{where}.islands[{n}]: GPU {gpu} is already in island {seen[gpu]}")
            else:
                seen[gpu] = n
                members.append(gpu)
        if len(members) > 1:
            islands.append(tuple(sorted(members)))
    return tuple(islands)


def _quantity(
    node: Mapping[str, Any], key: str, where: str, problems: list[str], default: int | None
) -> int:
    if key not in node:
        if default is None:
            problems.append(f"{where}.{key}: missing")
            return 0
        return default
    try:
        return parse_bytes(node[key], f"{where}.{key}")
    except QuantityError as exc:
        problems.append(str(exc))
        return 0


def parse_spec(data: Any, source: str = "spec") -> list[NodeSpec]:
    """Node specs from decoded YAML (pure); raises ``SpecError`` listing every bad field."""
    problems: list[str] = []
    if not isinstance(data, Mapping) or not isinstance(data.get("nodes"), list):
        raise SpecError(source, ["expected a mapping with a list under 'nodes'"])
    unknown_top = set(data) - {"nodes"}
    if unknown_top:
        problems.append(f"unknown top-level field(s): {', '.join(sorted(map(str, unknown_top)))}")
    out: list[NodeSpec] = []
    for i, node in enumerate(data["nodes"]):
        where = f"nodes[{i}]"
        if not isinstance(node, Mapping):
            problems.append(f"{where}: expected a mapping")
            continue
        unknown = set(node) - _NODE_FIELDS
        if unknown:
            problems.append(
                f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))} "
                f"(known: {', '.join(sorted(_NODE_FIELDS))})"
            )
        names: list[str] = []
        if ("name" in node) == ("namePrefix" in node):
            problems.append(f"{where}: give exactly one of 'name' or 'namePrefix' (with 'count')")
        elif "name" in node:
            if not isinstance(node["name"], str) or not node["name"]:
                problems.append(f"{where}.name: expected a non-empty string")
            else:
                names = [node["name"]]
            if "count" in node:
                problems.append(f"{where}.count: only allowed with 'namePrefix'")
        else:
            prefix, count = node["namePrefix"], node.get("count")
            if not isinstance(prefix, str) or not prefix:
                problems.append(f"{where}.namePrefix: expected a non-empty string")
            elif isinstance(count, bool) or not isinstance(count, int) or count < 1:
                problems.append(f"{where}.count: expected a positive integer, got {count!r}")
            else:
                names = [f"{prefix}{n}" for n in range(count)]
        product = node.get("product")
        if not isinstance(product, str) or not product:
            problems.append(
                f"{where}.product: expected a non-empty string such as NVIDIA-H100-80GB-HBM3"
            )
            product = ""
        gpus = node.get("gpus")
        if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
            problems.append(f"{where}.gpus: expected a positive integer, got {gpus!r}")
            gpus = 0
        memory = _quantity(node, "memoryPerGpu", where, problems, None)
        if (
            "memoryPerGpu" in node
            and memory == 0
            and not any(p.startswith(f"{where}.memoryPerGpu") for p in problems)
        ):
            problems.append(f"{where}.memoryPerGpu: must be more than 0")
        islands = _parse_islands(node.get("nvlink", "none"), gpus, f"{where}.nvlink", problems)
        cached = []
        raw_cached = node.get("cachedModels") or []
        if not isinstance(raw_cached, list):
            problems.append(f"{where}.cachedModels: expected a list of {{id, size}}")
            raw_cached = []
        for j, cm in enumerate(raw_cached):
            cw = f"{where}.cachedModels[{j}]"
            if not isinstance(cm, Mapping) or not isinstance(cm.get("id"), str) or not cm["id"]:
                problems.append(f"{cw}: expected {{id: <model id>, size: <quantity>}}")
                continue
            cached.append(CachedModelSpec(cm["id"], _quantity(cm, "size", cw, problems, None)))
        local = _quantity(node, "localDiskBandwidth", where, problems, DEFAULT_LOCAL_DISK_BANDWIDTH)
        remote = _quantity(node, "remoteBandwidth", where, problems, DEFAULT_REMOTE_BANDWIDTH)
        for key, value in (("localDiskBandwidth", local), ("remoteBandwidth", remote)):
            if (
                key in node
                and value == 0
                and not any(p.startswith(f"{where}.{key}") for p in problems)
            ):
                problems.append(f"{where}.{key}: must be more than 0 bytes per second")
        for name in names:
            out.append(
                NodeSpec(
                    name=name,
                    product=product,
                    gpus=gpus,
                    memory_per_gpu=memory,
                    islands=islands,
                    cached_models=tuple(cached),
                    local_disk_bandwidth=float(local),
                    remote_bandwidth=float(remote),
                )
            )
    seen: set[str] = set()
    for spec in out:
        if spec.name in seen:
            problems.append(f"node name {spec.name!r} appears more than once")
        seen.add(spec.name)
    if problems:
        raise SpecError(source, problems)
    return out


def load_spec(path: Path) -> list[NodeSpec]:
    """Node specs from the YAML file at ``path``; ``SpecError`` names the file and every field."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpecError(str(path), [f"cannot read: {exc.strerror or exc}"]) from None
    except yaml.YAMLError as exc:
        raise SpecError(str(path), [f"not valid YAML: {exc}"]) from None
    return parse_spec(data, str(path))


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
    return parse_spec(yaml.safe_load(DEFAULT_CLUSTER_YAML), "built-in default cluster")


def find_node(specs: list[NodeSpec], name: str, source: str) -> NodeSpec:
    """The spec of node ``name``; ``SpecError`` lists the nodes the spec does have."""
    for spec in specs:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in specs[:20]) + (" ..." if len(specs) > 20 else "")
    raise SpecError(source, [f"no node named {name!r} (nodes: {known})"])
