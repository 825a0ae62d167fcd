"""When a new reading is worth a write: the agent's answer to etcd write amplification.

Free memory moves a little on every poll; writing each move would turn every GPU node into a
steady stream of object updates and watch events. The node's object is rewritten only when
something the scheduler acts on changes (health, holders, pods, topology, cache, errors), when
memory moved by more than a threshold since the last write, or when the last write is older
than a maximum age (the extender rejects reports older than its own limit, so the maximum age
must stay below it). Pure functions; the thresholds are settings.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from placement.model import NodeState

MIB = 1024**2


class WriteReason(enum.StrEnum):
    """Why a status write happens (a bounded label for metrics and logs)."""

    FIRST = "first"
    CHANGED = "changed"
    MEMORY = "memory"
    MAX_AGE = "max-age"


@dataclass(frozen=True, slots=True)
class ChangeSettings:
    """``memory_threshold_bytes``: a move of free, used or a pod's bytes on any GPU (or MIG
    device) that counts; ``min_interval_s``: the least time between writes caused by memory alone;
    ``max_age_s``: the longest time between writes."""

    memory_threshold_bytes: int = 512 * MIB
    min_interval_s: float = 15.0
    max_age_s: float = 60.0


def structure(node: NodeState) -> tuple[object, ...]:
    """Everything in a node state except memory amounts and the time (pure)."""
    return (
        node.agent_error,
        node.cached_models,
        node.local_disk_bytes_per_s,
        node.remote_bytes_per_s,
        tuple(
            (
                g.uuid,
                g.index,
                g.product,
                g.total_bytes,
                g.healthy,
                g.unhealthy_reason,
                g.mig_enabled,
                g.nvlink_peers,
                g.holder_pod_uid,
                g.pci_bus_id,
                g.numa_node,
                g.free_bytes is None,
                g.used_bytes is None,
                tuple(p.pod_uid for p in g.pod_memory),
                tuple(
                    (
                        m.uuid,
                        m.gpu_instance_id,
                        m.compute_instance_id,
                        m.total_bytes,
                        m.free_bytes is None,
                        m.used_bytes is None,
                    )
                    for m in g.mig_devices
                ),
            )
            for g in node.gpus
        ),
    )


def memory_moved(old: NodeState, new: NodeState) -> int:
    """The largest move, in bytes, of any GPU's or MIG device's free or used memory or any
    pod's bytes between two states of the same structure (pure)."""
    moved = 0
    for a, b in zip(old.gpus, new.gpus, strict=True):
        for x, y in ((a.free_bytes, b.free_bytes), (a.used_bytes, b.used_bytes)):
            if x is not None and y is not None:
                moved = max(moved, abs(x - y))
        for pa, pb in zip(a.pod_memory, b.pod_memory, strict=True):
            moved = max(moved, abs(pa.bytes - pb.bytes))
        for ma, mb in zip(a.mig_devices, b.mig_devices, strict=True):
            for x, y in ((ma.free_bytes, mb.free_bytes), (ma.used_bytes, mb.used_bytes)):
                if x is not None and y is not None:
                    moved = max(moved, abs(x - y))
    return moved


def write_reason(
    last: NodeState | None,
    last_at: float,
    new: NodeState,
    now: float,
    settings: ChangeSettings,
) -> WriteReason | None:
    """Why ``new`` should be written at ``now``, given the state last written at ``last_at``,
    or ``None`` to skip it (pure)."""
    if last is None:
        return WriteReason.FIRST
    if structure(last) != structure(new):
        return WriteReason.CHANGED
    age = now - last_at
    if age >= settings.max_age_s:
        return WriteReason.MAX_AGE
    if (
        age >= settings.min_interval_s
        and memory_moved(last, new) >= settings.memory_threshold_bytes
    ):
        return WriteReason.MEMORY
    return None
