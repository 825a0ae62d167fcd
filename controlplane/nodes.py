"""Fake GPU nodes: Node objects that look to kube-scheduler like nodes running the NVIDIA stack.

A node gets ``nvidia.com/gpu`` capacity and allocatable (what the NVIDIA device plugin reports),
the labels GPU Feature Discovery writes (``NodeShape.gfd_labels``: ``nvidia.com/gpu.product``,
``nvidia.com/gpu.memory`` in MiB, ``nvidia.com/gpu.count``, and the compute capability and family
where the product names a known GPU), ``kubernetes.io/hostname``, and a ``Ready`` condition. A
GPU node is the part of a ``NodeShape`` a Node object shows (product, GPU count, VRAM per GPU);
``GpuNode.of`` builds one from a shape. The API
server accepts ``status`` on create for Nodes, so no kubelet is needed; nothing marks them
not-ready either, because no node-lifecycle controller runs. A node with zero GPUs is a plain
CPU node (no GPU labels, no ``nvidia.com/gpu`` resource).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from kubernetes import client as k8s_client

from placement.demand import GPU_RESOURCE
from placement.quantity import QuantityError, format_bytes, parse_bytes
from placement.shape import NodeShape, NvLink

PRODUCT_LABEL: Final = "nvidia.com/gpu.product"
MEMORY_LABEL: Final = "nvidia.com/gpu.memory"
COUNT_LABEL: Final = "nvidia.com/gpu.count"
HOSTNAME_LABEL: Final = "kubernetes.io/hostname"
MIB: Final = 1024 * 1024

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class NodeSpecError(ValueError):
    """A fake node that cannot exist; the message names every problem."""


@dataclass(frozen=True)
class GpuNode:
    """One fake node: its name, its GPUs, and the CPU, memory and pod capacity beside them."""

    name: str
    gpus: int = 8
    product: str = "NVIDIA-H100-80GB-HBM3"
    memory_per_gpu_bytes: int = 80 * 1024 * MIB
    cpu: str = "128"
    memory: str = "1Ti"
    pods: int = 110
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, shape: NodeShape, **rest: Any) -> GpuNode:
        """The fake Node of a node of ``shape`` (``rest``: its CPU, memory, pods and labels)."""
        return cls(
            name,
            gpus=shape.gpus,
            product=shape.product,
            memory_per_gpu_bytes=shape.vram_per_gpu,
            **rest,
        )

    def gfd_labels(self) -> dict[str, str]:
        """The GPU Feature Discovery labels of this node's shape (none for a CPU node).

        A Node object does not show NVLink, so the shape is read without it: the labels do not
        depend on it.
        """
        if self.gpus <= 0:
            return {}
        shape = NodeShape(
            self.product, self.gpus, self.memory_per_gpu_bytes, NvLink.none(self.gpus)
        )
        return shape.gfd_labels()

    def problems(self) -> list[str]:
        """Pure: everything wrong with this node, each naming the field."""
        found = []
        if len(self.name) > 253 or not _DNS_SUBDOMAIN.match(self.name):
            found.append(
                f"name {self.name!r} is not a DNS subdomain (lowercase a-z, 0-9, '-', '.')"
            )
        if self.gpus < 0:
            found.append(f"gpus must not be negative, got {self.gpus}")
        if self.gpus > 0:
            if self.memory_per_gpu_bytes < MIB:
                found.append(
                    f"memory per GPU must be at least 1Mi, got {self.memory_per_gpu_bytes} bytes"
                )
            if len(self.product) > 63 or not self.product or not _LABEL_VALUE.match(self.product):
                found.append(
                    f"product {self.product!r} is not a label value (up to 63 of A-Z a-z 0-9 - _ .)"
                )
        if self.pods <= 0:
            found.append(f"pods must be positive, got {self.pods}")
        for where, value in (("cpu", self.cpu), ("memory", self.memory)):
            try:
                parse_bytes(value, where)
            except QuantityError as exc:
                found.append(str(exc))
        return found


def validate_nodes(nodes: Sequence[GpuNode]) -> None:
    """Pure: raise one :class:`NodeSpecError` listing every problem of every node."""
    problems = [f"node {node.name!r}: {p}" for node in nodes for p in node.problems()]
    seen: set[str] = set()
    for node in nodes:
        if node.name in seen:
            problems.append(f"node {node.name!r}: defined more than once")
        seen.add(node.name)
    if problems:
        raise NodeSpecError("; ".join(problems))


def node_labels(node: GpuNode) -> dict[str, str]:
    """Pure: the labels a GPU node carries (hostname, and the GFD labels when it has GPUs)."""
    return {**node.labels, HOSTNAME_LABEL: node.name, **node.gfd_labels()}


def node_manifest(node: GpuNode, now: datetime) -> dict[str, Any]:
    """Pure: the Node object (with status) for ``node``, its conditions stamped ``now``."""
    capacity = {"cpu": node.cpu, "memory": node.memory, "pods": str(node.pods)}
    if node.gpus > 0:
        capacity[GPU_RESOURCE] = str(node.gpus)
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    summary = (
        f"{node.gpus}x {node.product} ({format_bytes(node.memory_per_gpu_bytes)} each)"
        if node.gpus > 0
        else "no GPUs"
    )
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": node_labels(node),
            "annotations": {"vramfit.io/fake-node": summary},
        },
        "spec": {},
        "status": {
            "capacity": dict(capacity),
            "allocatable": dict(capacity),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "fake node: no kubelet runs here",
                    "lastHeartbeatTime": stamp,
                    "lastTransitionTime": stamp,
                }
            ],
            "addresses": [{"type": "Hostname", "address": node.name}],
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "bootID": "",
                "containerRuntimeVersion": "",
                "kernelVersion": "",
                "kubeProxyVersion": "",
                "kubeletVersion": "",
                "machineID": "",
                "osImage": "",
                "systemUUID": "",
            },
        },
    }


def create_nodes(
    core: k8s_client.CoreV1Api, nodes: Iterable[GpuNode], now: datetime | None = None
) -> list[str]:
    """Create the Node objects (status included) and return their names."""
    listed = list(nodes)
    validate_nodes(listed)
    stamp = now or datetime.now(UTC)
    names = []
    for node in listed:
        core.create_node(node_manifest(node, stamp))
        names.append(node.name)
    return names


def delete_nodes(core: k8s_client.CoreV1Api, names: Iterable[str]) -> None:
    """Delete Node objects, ignoring those already gone."""
    for name in names:
        try:
            core.delete_node(name)
        except k8s_client.ApiException as exc:
            if exc.status != 404:
                raise
