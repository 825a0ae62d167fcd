"""The simulated vramfit node agent: what it would report about a node at one moment.

The real agent reads NVML (per-GPU total, used and free memory, the processes and the pods that
own them), the kubelet's pod-resources API (which pod holds which GPU) and the node's model
cache. Here the same facts come from the simulated truth: a GPU is held from the moment the
kubelet admits its pod, and its used memory is what the pod's model server has loaded so far
plus memory held outside any pod. The report is a snapshot: between polls the extender sees
the previous one, so GPU memory in the report lags a load by up to one poll interval. The
node's labels are those GPU Feature Discovery derives from its shape (``placement.shape``).
"""

from __future__ import annotations

from placement.model import CachedModel, GpuState, NodeState, PodMemory
from simulator.cluster import Node


def peers_of(node: Node) -> tuple[frozenset[str], ...]:
    """Each GPU's NVLink peers (by UUID), from the node type's islands."""
    peers: list[frozenset[str]] = [frozenset()] * len(node.gpus)
    for island in node.type.shape.islands:
        uuids = {node.gpus[i].uuid for i in island}
        for i in island:
            peers[i] = frozenset(uuids - {node.gpus[i].uuid})
    return tuple(peers)


def read_gpus(node: Node, peers: tuple[frozenset[str], ...]) -> tuple[GpuState, ...]:
    """The node's GPUs as the agent reads them now."""
    product = node.type.shape.product
    out = []
    for g in node.gpus:
        holder = g.holder
        pod_bytes = holder.gpu_bytes() if holder is not None else 0
        used = g.reserved + pod_bytes
        out.append(
            GpuState(
                uuid=g.uuid,
                index=g.index,
                product=product,
                total_bytes=g.total,
                free_bytes=max(0, g.total - used),
                used_bytes=used,
                nvlink_peers=peers[g.index],
                holder_pod_uid=holder.uid if holder is not None else None,
                pod_memory=(PodMemory(holder.uid, pod_bytes),)
                if holder is not None and pod_bytes
                else (),
            )
        )
    return tuple(out)


def cached_models(node: Node) -> tuple[CachedModel, ...]:
    """The model weights on the node's disk, sorted by id."""
    return tuple(CachedModel(m, b) for m, b in sorted(node.cached.items()))


def report(
    node: Node,
    gpus: tuple[GpuState, ...],
    cached: tuple[CachedModel, ...],
    *,
    observed_at: float,
    lease_renewed_at: float,
    lease_duration_s: float,
) -> NodeState:
    """The node as the extender knows it from the agent's report and Lease."""
    return NodeState(
        name=node.name,
        gpus=gpus,
        observed_at=observed_at,
        lease_renewed_at=lease_renewed_at,
        lease_duration_s=lease_duration_s,
        cached_models=cached,
        local_disk_bytes_per_s=node.type.shape.local_disk_bytes_per_s,
        remote_bytes_per_s=node.type.shape.remote_bytes_per_s,
        labels=node.labels,
    )
