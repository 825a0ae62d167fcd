"""From a backend reading and the kubelet's view to the published node state (pure).

The reading says what the GPUs hold; the attribution says whose it is: the pod-resources API
names the pod each GPU (or MIG device) was allocated to, and each process's cgroup names its
pod. When the pod-resources API is not available, a GPU whose processes all belong to one pod
counts as held by that pod.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from nodeagent.reading import GpuReading, NodeReading, ProcessUse
from placement.model import CachedModel, GpuState, MigDevice, NodeState, PodMemory
from placement.nodegpustate import StatusJSON, encode_status


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who holds what: ``holders`` maps device UUIDs to pod UIDs (``None`` when the
    pod-resources API could not be asked); ``pod_of_pid`` maps host PIDs to pod UIDs."""

    holders: Mapping[str, str] | None = None
    pod_of_pid: Mapping[int, str] = field(default_factory=dict)


def _pod_of(p: ProcessUse, pod_of_pid: Mapping[int, str]) -> str | None:
    if p.pod_uid is not None:
        return p.pod_uid
    return pod_of_pid.get(p.pid) if p.pid is not None else None


def _pod_memory(
    procs: Iterable[ProcessUse], pod_of_pid: Mapping[int, str]
) -> tuple[PodMemory, ...]:
    per_pod: dict[str, int] = {}
    for p in procs:
        uid = _pod_of(p, pod_of_pid)
        if uid is not None:
            per_pod[uid] = per_pod.get(uid, 0) + p.bytes
    return tuple(PodMemory(uid, b) for uid, b in sorted(per_pod.items()))


def _holder(g: GpuReading, procs: list[ProcessUse], a: Attribution) -> str | None:
    if g.holder_pod_uid is not None:
        return g.holder_pod_uid
    if a.holders is not None:
        return a.holders.get(g.uuid)
    pods = {uid for p in procs if (uid := _pod_of(p, a.pod_of_pid)) is not None}
    return next(iter(pods)) if len(pods) == 1 else None


def gpu_state(g: GpuReading, a: Attribution) -> GpuState:
    """One GPU's published state (pure)."""
    procs = g.all_processes()
    return GpuState(
        uuid=g.uuid,
        index=g.index,
        product=g.product,
        total_bytes=g.total_bytes,
        free_bytes=g.free_bytes,
        used_bytes=g.used_bytes,
        healthy=g.healthy,
        unhealthy_reason=g.reason,
        mig_enabled=g.mig_enabled,
        nvlink_peers=g.nvlink_peers,
        holder_pod_uid=None if g.mig_enabled else _holder(g, procs, a),
        pod_memory=_pod_memory(procs, a.pod_of_pid),
        pci_bus_id=g.pci_bus_id,
        numa_node=g.numa_node,
        mig_devices=tuple(
            MigDevice(
                uuid=m.uuid,
                gpu_instance_id=m.gpu_instance_id,
                compute_instance_id=m.compute_instance_id,
                total_bytes=m.total_bytes,
                free_bytes=m.free_bytes if m.total_bytes is not None else None,
                used_bytes=m.used_bytes if m.total_bytes is not None else None,
            )
            for m in g.mig_devices
        ),
    )


def build_node_state(
    node: str,
    reading: NodeReading,
    attribution: Attribution,
    *,
    cached_models: tuple[CachedModel, ...] = (),
    local_disk_bytes_per_s: float | None = None,
    remote_bytes_per_s: float | None = None,
) -> NodeState:
    """The node as the agent publishes it (pure). The Lease, not this state, says the agent is
    alive, so ``lease_renewed_at`` is left unset."""
    return NodeState(
        name=node,
        gpus=tuple(gpu_state(g, attribution) for g in reading.gpus),
        observed_at=reading.observed_at,
        lease_renewed_at=None,
        cached_models=cached_models,
        local_disk_bytes_per_s=local_disk_bytes_per_s,
        remote_bytes_per_s=remote_bytes_per_s,
        agent_error=reading.error,
    )


def status_of(state: NodeState, reading: NodeReading) -> StatusJSON:
    """The NodeGPUState ``status`` (pure): ``encode_status`` plus what only the reading has
    (driver version, reserved bytes where memory info v2 gives them)."""
    status = encode_status(state, driver_version=reading.driver_version)
    reserved = {g.uuid: g.reserved_bytes for g in reading.gpus}
    for gj in status["gpus"]:
        r = reserved.get(gj["uuid"])
        if r is not None:
            gj["memory"]["reservedBytes"] = r
    return status
