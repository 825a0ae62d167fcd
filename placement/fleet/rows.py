"""What the fleet keeps about one node beside its arrays, and what a node must be to be kept.

The arrays of ``placement.fleet.store`` hold byte counts in int64 and float64 and sort keys
built from GPU slots; this module checks that a node state fits those exactly (``validate``),
derives its NVLink islands and adjacency by slot (``topology``), and keeps what a request reads
per node rather than per GPU (``FleetRow``). Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from placement.model import NodeState, Reservation
from placement.nodegpustate import MAX_REPORT_BYTES
from placement.shape import NvLink
from placement.topology import islands, nvlink_graph

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
RowArray = npt.NDArray[np.intp]
Cols = slice | RowArray
"""The rows an evaluation covers: ``slice(0, span)`` (every row in use, read as views) or some
rows by index (read as copies: ``placement.fleet.standing`` redoes only the rows that changed)."""
ObjectArray = npt.NDArray[np.object_]

MAX_GPUS_PER_NODE = 512
"""The most GPUs (or MIG devices) a node may have: keeps every sort key inside an int64."""

SLOT_RADIX = MAX_GPUS_PER_NODE
"""``free * SLOT_RADIX + slot``: a GPU's "tightest first" key, distinct within a row."""

NO_ROWS: RowArray = np.empty(0, dtype=np.intp)


class FleetError(ValueError):
    """A node state the fleet cannot hold exactly; the message names the node and the field."""


@dataclass(frozen=True, slots=True)
class FleetRow:
    """What the fleet keeps about one node beside the arrays."""

    node: NodeState  # as reported; its Lease is in the arrays (``Fleet.node`` reads it back)
    uuids: tuple[str, ...]  # by slot (GPU index order)
    slot: Mapping[str, int]  # UUID -> slot
    holders: tuple[str | None, ...]  # by slot
    described: str  # describe_gpus(node.gpus), for messages
    topology: tuple[tuple[str, frozenset[str]], ...]  # (UUID, NVLink peers) by slot
    island_of: tuple[int, ...]  # by slot
    linked: BoolArray  # slot x slot, NVLink adjacency
    layout: NvLink  # the islands over slots, for the device plugin's rule

    def hidden_by(self, r: Reservation) -> set[int]:
        """The slots of ``r``'s GPUs while the node shows ``r``'s pod holding none: the rule of
        ``fit.promised`` for one reservation on this node."""
        if r.pod_uid in self.holders:
            return set()
        return {s for uuid in r.gpu_uuids if (s := self.slot.get(uuid)) is not None}


def _gpu_problems(node: NodeState) -> tuple[list[str], int]:
    """What in ``node``'s GPUs the arrays could not hold exactly, and their total bytes."""
    problems: list[str] = []
    seen_uuid: set[str] = set()
    seen_index: set[int] = set()
    total = 0
    for i, g in enumerate(node.gpus):
        where = f"gpus[{i}]"
        if g.uuid in seen_uuid:
            problems.append(f"{where}.uuid {g.uuid!r} repeats")
        if g.index in seen_index:
            problems.append(f"{where}.index {g.index} repeats")
        seen_uuid.add(g.uuid)
        seen_index.add(g.index)
        for field, value in (("total_bytes", g.total_bytes), ("free_bytes", g.free_bytes)):
            if value is None and field == "free_bytes":
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"{where}.{field} must be an int, got {value!r}")
            elif not 0 <= value <= MAX_REPORT_BYTES:
                problems.append(f"{where}.{field} {value} is out of range 0..{MAX_REPORT_BYTES}")
            elif field == "total_bytes":
                total += value
    return problems, total


def validate(node: NodeState) -> list[str]:
    """What in ``node`` the arrays could not hold exactly."""
    problems: list[str] = []
    if len(node.gpus) > MAX_GPUS_PER_NODE:
        problems.append(f"{len(node.gpus)} GPUs is more than {MAX_GPUS_PER_NODE}")
    gpu_problems, total = _gpu_problems(node)
    problems.extend(gpu_problems)
    if total > MAX_REPORT_BYTES:
        problems.append(f"total GPU memory {total} exceeds {MAX_REPORT_BYTES}")
    for field in ("observed_at", "lease_duration_s", "lease_renewed_at"):
        value = getattr(node, field)
        if value is not None and not math.isfinite(value):
            problems.append(f"{field} must be finite, got {value!r}")
    return problems


def topology(node: NodeState, uuids: list[str]) -> tuple[tuple[int, ...], BoolArray]:
    """Island id of each slot and the slot adjacency matrix of the node's NVLink graph."""
    graph = nvlink_graph(node)
    island_of = {u: k for k, island in enumerate(islands(node)) for u in island}
    n = len(uuids)
    linked = np.zeros((n, n), dtype=np.bool_)
    for a in range(n):
        for b in range(n):
            linked[a, b] = graph.has_edge(uuids[a], uuids[b])
    return tuple(island_of[u] for u in uuids), linked
