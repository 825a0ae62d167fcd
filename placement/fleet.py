"""The fit rules evaluated over a whole fleet at once, for the extender's filter hot path.

``fit()`` defines the rules one node at a time and stays the readable reference. kube-scheduler
asks the extender about thousands of nodes per pod, one pod at a time, so this module keeps the
per-node view in numpy arrays that watch events update node by node, and answers a request
with a few hundred vector operations: which nodes fit, on which GPUs, and for the others the
very reason and resolvable flag ``fit()`` gives. Scores use the policies of
``placement.policies`` computed array-wise, and ``decide_fleet`` picks the node ``decide()``
picks. A hypothesis test on random fleets keeps the two equal.

Layout: per-GPU arrays are ``slot x row`` (slot = the node's GPUs in index order, row = one
node), so a reduction over a node's GPUs is a handful of additions of long contiguous vectors,
which numpy does fast; per-node arrays are indexed by row. Rows are reused lowest first, and a
request is evaluated over every row in use at once; the named rows are picked out at the end.

Reasons are worded per distinct reason, not per node, and only on request: a scheduler
extender reports them only when no node fits, so ``decide_fleet(..., reasons=False)`` leaves
them out otherwise and still counts the rejected nodes by class (``REJECT_CLASSES``).

Reservations are read from the fleet's own ``claims`` (``placement.claims``: kept resolved
against the rows) when a caller passes those, else looped over; both give the same arrays.

Pure: no I/O, no clock; ``now`` is an argument. A ``Fleet`` is mutable (rows change as reports
arrive) and not locked: a caller that updates it from one thread while another evaluates must
serialize the two. Evaluating changes nothing but caches (UUID tuples, the rows of the last
names asked for). Byte counts are exact
in float64 (a node's total at most 2**53 bytes, as in reports), which lets the scores match bit
for bit.
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress
from operator import itemgetter
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from placement.claims import Claims
from placement.fit import (
    BUSY,
    HELD,
    MIG_ENABLED,
    REASON_NO_GPUS,
    REASON_NO_LEASE,
    RESERVED,
    UNHEALTHY,
    UNKNOWN,
    describe_gpus,
    effective_nvlink,
    product_key,
    reason_agent_error,
    reason_lease_expired,
    reason_no_island,
    reason_no_product,
    reason_not_free,
    reason_report_old,
    reason_split,
    reason_too_small,
)
from placement.model import (
    Decision,
    Demand,
    Fit,
    FitSettings,
    NodeState,
    NvlinkMode,
    Reject,
    Reservation,
)
from placement.nodegpustate import MAX_REPORT_BYTES
from placement.policies import MAX_SCORE, Profile, resolve_profile
from placement.topology import islands, nvlink_graph

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
RowArray = npt.NDArray[np.intp]
ObjectArray = npt.NDArray[np.object_]

REASON_NO_REPORT = "no GPU report from the vramfit node agent for this node"
"""Why a node the fleet does not hold is rejected (resolvable: its agent may yet report)."""


MAX_GPUS_PER_NODE = 512
"""The most GPUs (or MIG devices) a node may have: keeps every sort key inside an int64."""

_MAX = np.iinfo(np.int64).max

# Result codes, in the order fit() checks them.
_OK = 0
_AGENT_ERROR_NO_GPUS = 1
_NO_GPUS = 2
_NO_PRODUCT = 3
_TOO_SMALL = 4
_NO_ISLAND = 5
_AGENT_ERROR = 6
_NO_LEASE = 7
_LEASE_OLD = 8
_REPORT_OLD = 9
_NOT_FREE = 10
_SPLIT = 11
_UNRESOLVABLE = (_NO_GPUS, _NO_PRODUCT, _TOO_SMALL, _NO_ISLAND)
_CAUSES = (BUSY, HELD, MIG_ENABLED, RESERVED, UNHEALTHY, UNKNOWN)

# Reject classes: short, bounded names for what kind of reason a node got (metric labels).
NO_GPUS = "no-gpus"
GPU_PRODUCT = "gpu-product"
GPU_TOO_SMALL = "gpu-too-small"
NVLINK_ISLAND_TOO_SMALL = "nvlink-island-too-small"
AGENT_ERROR = "agent-error"
NO_LEASE = "no-lease"
LEASE_EXPIRED = "lease-expired"
REPORT_STALE = "report-stale"
GPUS_BUSY = "gpus-busy"
NVLINK_SPLIT = "nvlink-split"
NO_REPORT = "no-report"
_CLASS_OF = {
    _AGENT_ERROR_NO_GPUS: AGENT_ERROR,
    _NO_GPUS: NO_GPUS,
    _NO_PRODUCT: GPU_PRODUCT,
    _TOO_SMALL: GPU_TOO_SMALL,
    _NO_ISLAND: NVLINK_ISLAND_TOO_SMALL,
    _AGENT_ERROR: AGENT_ERROR,
    _NO_LEASE: NO_LEASE,
    _LEASE_OLD: LEASE_EXPIRED,
    _REPORT_OLD: REPORT_STALE,
    _NOT_FREE: GPUS_BUSY,
    _SPLIT: NVLINK_SPLIT,
}
REJECT_CLASSES = frozenset({*_CLASS_OF.values(), NO_REPORT})
"""Every class ``FleetDecision.reject_counts`` may name: one per kind of ``fit()`` reason
(``gpus-busy`` covers every cause of "free now", ``agent-error`` both of its forms), and
``no-report`` for a node the fleet does not hold."""
_SLOT_RADIX = MAX_GPUS_PER_NODE
_NO_ROWS: npt.NDArray[np.intp] = np.empty(0, dtype=np.intp)


class FleetError(ValueError):
    """A node state the fleet cannot hold exactly; the message names the node and the field."""


@dataclass(frozen=True, slots=True)
class FleetRow:
    """What the fleet keeps about one node beside the arrays."""

    node: NodeState
    uuids: tuple[str, ...]  # by slot (GPU index order)
    slot: Mapping[str, int]  # UUID -> slot
    holders: tuple[str | None, ...]  # by slot
    described: str  # describe_gpus(node.gpus), for messages
    topology: tuple[tuple[str, frozenset[str]], ...]  # (UUID, NVLink peers) by slot
    island_of: tuple[int, ...]  # by slot
    linked: BoolArray  # slot x slot, NVLink adjacency

    def hidden_by(self, r: Reservation) -> set[int]:
        """The slots of ``r``'s GPUs that the node does not show held by ``r``'s pod yet: the
        rule of ``fit.hidden_gpus`` for one reservation on this node."""
        return {
            s
            for uuid in r.gpu_uuids
            if (s := self.slot.get(uuid)) is not None and self.holders[s] != r.pod_uid
        }


def _validate(node: NodeState) -> list[str]:
    """What in ``node`` the arrays could not hold exactly."""
    problems: list[str] = []
    seen_uuid: set[str] = set()
    seen_index: set[int] = set()
    total = 0
    if len(node.gpus) > MAX_GPUS_PER_NODE:
        problems.append(f"{len(node.gpus)} GPUs is more than {MAX_GPUS_PER_NODE}")
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
    if total > MAX_REPORT_BYTES:
        problems.append(f"total GPU memory {total} exceeds {MAX_REPORT_BYTES}")
    for field in ("observed_at", "lease_duration_s", "lease_renewed_at"):
        value = getattr(node, field)
        if value is not None and not math.isfinite(value):
            problems.append(f"{field} must be finite, got {value!r}")
    return problems


def _topology(node: NodeState, uuids: list[str]) -> tuple[tuple[int, ...], BoolArray]:
    """Island id of each slot and the slot adjacency matrix of the node's NVLink graph."""
    graph = nvlink_graph(node)
    island_of = {u: k for k, island in enumerate(islands(node)) for u in island}
    n = len(uuids)
    linked = np.zeros((n, n), dtype=np.bool_)
    for a in range(n):
        for b in range(n):
            linked[a, b] = graph.has_edge(uuids[a], uuids[b])
    return tuple(island_of[u] for u in uuids), linked


class Fleet:
    """Every node's GPU state as arrays, updated one node at a time.

    Per GPU (``slot x row``): total and free bytes, whether free is known, healthy, in MIG
    mode, held by a pod, present, product id, NVLink island id, UUID
    rank; NVLink adjacency is ``row x slot x slot``. Per node (``row``): GPU count, lease
    renewed at (and whether seen), lease duration, observed at, agent error, described-GPUs id,
    name rank; cached models and GPU holders are indexed by id. ``replace`` swaps one node's
    row when a report arrives, ``renew`` records a Lease event, ``remove`` drops a node. Rows
    are reused lowest first, and a request reads only the rows up to the highest one in use
    (``span``).
    """

    def __init__(self, nodes: Iterable[NodeState] = (), *, capacity: int = 64, width: int = 8):
        self._index: dict[str, int] = {}
        self._rows: list[FleetRow | None] = []
        self._spare: list[int] = []
        self._products: dict[str, int] = {}
        self._described: dict[str, int] = {}
        self._model_rows: dict[str, set[int]] = {}
        self._holder_rows: dict[str, set[int]] = {}
        self._combos: dict[int, tuple[str, ...]] = {}  # (generation, slot mask) -> UUIDs
        self._generations = 0
        self._span = 0
        self._sorted: list[str] = []  # the names held, sorted
        self._layout = 0  # changes whenever a node is added or removed (rows_of's memo)
        self._last_rows: tuple[int, tuple[str, ...], RowArray] | None = None
        self._allocate(max(1, capacity), max(1, width))
        # Reservations kept resolved against the rows: a request that passes these as its
        # reservations reads their sums instead of looping over them.
        self.claims = Claims(self)
        for node in nodes:
            self.replace(node)

    # -- storage -----------------------------------------------------------------------------

    def _allocate(self, capacity: int, width: int) -> None:
        """Grow the arrays to ``capacity`` rows and ``width`` slots, keeping what they hold."""
        fresh = not hasattr(self, "total")

        def grow(name: str, shape: tuple[int, ...], fill: Any, dtype: Any) -> Any:
            new = np.full(shape, fill, dtype=dtype)
            if not fresh:
                old = getattr(self, name)
                new[tuple(slice(0, n) for n in old.shape)] = old
            return new

        g = (width, capacity)
        self.total: IntArray = grow("total", g, 0, np.int64)
        self.free: IntArray = grow("free", g, 0, np.int64)
        # free * _SLOT_RADIX + slot: the "tightest GPU" sort key, distinct within a row.
        self.free_key: IntArray = grow("free_key", g, 0, np.int64)
        self.free_known: BoolArray = grow("free_known", g, False, np.bool_)
        self.healthy: BoolArray = grow("healthy", g, False, np.bool_)
        self.mig: BoolArray = grow("mig", g, False, np.bool_)
        # healthy, not in MIG mode, held by no pod, free memory known: a candidate if it is
        # large enough, unreserved and free enough
        self.open: BoolArray = grow("open", g, False, np.bool_)
        self.held: BoolArray = grow("held", g, False, np.bool_)
        self.present: BoolArray = grow("present", g, False, np.bool_)
        self.product: IntArray = grow("product", g, -1, np.int64)
        self.island: IntArray = grow("island", g, -1, np.int64)
        self.uuid_rank: IntArray = grow("uuid_rank", g, 0, np.int64)
        self.uuid_1: ObjectArray = grow("uuid_1", g, None, object)  # (uuid,) tuples
        # row x slot x slot: a row's adjacency is one block, gathered fast for a few rows
        self.linked: BoolArray = grow("linked", (capacity, width, width), False, np.bool_)
        self.gpu_count: IntArray = grow("gpu_count", (capacity,), 0, np.int64)
        self.island_count: IntArray = grow("island_count", (capacity,), 0, np.int64)
        self.complete: BoolArray = grow("complete", (capacity,), True, np.bool_)  # all linked
        self.total_sum: IntArray = grow("total_sum", (capacity,), 0, np.int64)
        self.lease_seen: BoolArray = grow("lease_seen", (capacity,), False, np.bool_)
        self.lease_at: FloatArray = grow("lease_at", (capacity,), 0.0, np.float64)
        self.lease_duration: FloatArray = grow("lease_duration", (capacity,), 0.0, np.float64)
        self.observed_at: FloatArray = grow("observed_at", (capacity,), 0.0, np.float64)
        self.error: BoolArray = grow("error", (capacity,), False, np.bool_)
        self.described: IntArray = grow("described", (capacity,), -1, np.int64)
        self.generation: IntArray = grow("generation", (capacity,), 0, np.int64)
        # By row: the node name's position among all held names in sorted order (ties go to
        # the name that sorts first, decided without comparing strings).
        self.name_rank: IntArray = grow("name_rank", (capacity,), 0, np.int64)
        self._spare.extend(range(len(self._rows), capacity))
        heapq.heapify(self._spare)  # a heap: the lowest free row is reused first
        self._rows.extend([None] * (capacity - len(self._rows)))

    @property
    def width(self) -> int:
        """GPU slots per row: the most GPUs any node has had."""
        return int(self.total.shape[0])

    @property
    def capacity(self) -> int:
        """Rows allocated (held nodes plus spare rows)."""
        return len(self._rows)

    @property
    def span(self) -> int:
        """Rows a request reads: one past the highest row that holds a node."""
        return self._span

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def names(self) -> list[str]:
        """The nodes the fleet holds."""
        return list(self._index)

    def node(self, name: str) -> NodeState:
        """The node state behind ``name``; ``KeyError`` when the fleet does not hold it."""
        return self.row(self._index[name]).node

    def row(self, r: int) -> FleetRow:
        """What row ``r`` keeps beside the arrays."""
        row = self._rows[r]
        if row is None:
            raise KeyError(f"row {r} holds no node")
        return row

    # -- updates -----------------------------------------------------------------------------

    def replace(self, node: NodeState) -> None:
        """Add ``node`` or replace its row with a new report.

        Raises ``FleetError`` for a state the arrays cannot hold exactly (a repeated GPU UUID
        or index, bytes out of range, a time that is not finite); the old row stays.
        """
        problems = _validate(node)
        if problems:
            raise FleetError(f"node {node.name}: {'; '.join(problems)}")
        if len(node.gpus) > self.width:
            self._allocate(self.capacity, len(node.gpus))
        r = self._index.get(node.name)
        if r is None:
            if not self._spare:
                self._allocate(2 * self.capacity, self.width)
            r = heapq.heappop(self._spare)
            self._index[node.name] = r
            self._layout += 1
            self._span = max(self._span, r + 1)
            at = bisect.bisect_left(self._sorted, node.name)
            self._sorted.insert(at, node.name)
            self.name_rank[self.name_rank >= at] += 1  # rows not in use hold stale ranks
            self.name_rank[r] = at
        else:
            self._unindex(r)
        gpus = sorted(node.gpus, key=lambda g: g.index)
        n = len(gpus)
        uuids = [g.uuid for g in gpus]
        topology = tuple((g.uuid, g.nvlink_peers) for g in gpus)
        old = self._rows[r]
        if old is not None and old.topology == topology:
            island_of, linked = old.island_of, old.linked
        else:
            island_of, linked = _topology(node, uuids)
        rank = [0] * n
        for position, s in enumerate(sorted(range(n), key=lambda s: uuids[s])):
            rank[s] = position

        self._clear(r)
        self._generations += 1
        self.generation[r] = self._generations
        if len(self._combos) > 4 * self.capacity + 65536:
            self._combos.clear()
        self.total[:n, r] = [g.total_bytes for g in gpus]
        self.free[:n, r] = [g.free_bytes or 0 for g in gpus]
        self.free_key[:n, r] = [(g.free_bytes or 0) * _SLOT_RADIX + s for s, g in enumerate(gpus)]
        self.free_known[:n, r] = [g.free_bytes is not None for g in gpus]
        self.healthy[:n, r] = [g.healthy for g in gpus]
        self.mig[:n, r] = [g.mig_enabled for g in gpus]
        self.open[:n, r] = [
            g.healthy
            and not g.mig_enabled
            and g.holder_pod_uid is None
            and g.free_bytes is not None
            for g in gpus
        ]
        self.held[:n, r] = [g.holder_pod_uid is not None for g in gpus]
        self.present[:n, r] = True
        self.product[:n, r] = [self._product_id(g.product) for g in gpus]
        self.island[:n, r] = island_of
        self.uuid_rank[:n, r] = rank
        for s, u in enumerate(uuids):
            self.uuid_1[s, r] = (u,)
        self.linked[r, :n, :n] = linked
        self.gpu_count[r] = n
        self.island_count[r] = len(set(island_of))
        self.complete[r] = bool(linked.sum() == n * (n - 1))
        self.total_sum[r] = sum(g.total_bytes for g in gpus)
        self.error[r] = bool(node.agent_error)
        self.observed_at[r] = node.observed_at
        self._set_lease(r, node.lease_renewed_at, node.lease_duration_s)
        described = describe_gpus(node.gpus)
        self.described[r] = self._described.setdefault(described, len(self._described))
        holders = tuple(g.holder_pod_uid for g in gpus)
        self._rows[r] = FleetRow(
            node=node,
            uuids=tuple(uuids),
            slot={u: s for s, u in enumerate(uuids)},
            holders=holders,
            described=described,
            topology=topology,
            island_of=island_of,
            linked=linked,
        )
        for m in node.cached_models:
            self._model_rows.setdefault(m.model_id, set()).add(r)
        for h in holders:
            if h is not None:
                self._holder_rows.setdefault(h, set()).add(r)
        self.claims.node_changed(node.name)

    def renew(self, name: str, renewed_at: float | None, duration_s: float) -> None:
        """Record a Lease event for ``name`` without touching its GPUs."""
        r = self._index[name]
        row = self.row(r)
        bad = [
            f"{field} must be finite, got {value!r}"
            for field, value in (("lease_renewed_at", renewed_at), ("lease_duration_s", duration_s))
            if value is not None and not math.isfinite(value)
        ]
        if bad:
            raise FleetError(f"node {name}: {'; '.join(bad)}")
        node = dataclasses.replace(
            row.node, lease_renewed_at=renewed_at, lease_duration_s=duration_s
        )
        self._rows[r] = dataclasses.replace(row, node=node)
        self._set_lease(r, renewed_at, duration_s)

    def remove(self, name: str) -> None:
        """Drop ``name`` (its node or its report is gone); a name not held is ignored."""
        r = self._index.pop(name, None)
        if r is None:
            return
        self._layout += 1
        at = int(self.name_rank[r])
        del self._sorted[at]
        self.name_rank[self.name_rank > at] -= 1
        self._unindex(r)
        self._clear(r)
        self.gpu_count[r] = 0
        self._rows[r] = None
        heapq.heappush(self._spare, r)
        while self._span and self._rows[self._span - 1] is None:
            self._span -= 1
        self.claims.node_changed(name)

    def _clear(self, r: int) -> None:
        for a in (self.total, self.free, self.free_key, self.uuid_rank):
            a[:, r] = 0
        for b in (self.free_known, self.healthy, self.mig, self.open, self.held, self.present):
            b[:, r] = False
        self.product[:, r] = -1
        self.island[:, r] = -1
        self.uuid_1[:, r] = None
        self.linked[r] = False

    def _set_lease(self, r: int, renewed_at: float | None, duration_s: float) -> None:
        self.lease_seen[r] = renewed_at is not None
        self.lease_at[r] = 0.0 if renewed_at is None else renewed_at
        self.lease_duration[r] = duration_s

    def _unindex(self, r: int) -> None:
        """Take row ``r`` out of the model and holder indexes."""
        row = self._rows[r]
        if row is None:
            return
        for index, keys in (
            (self._model_rows, [m.model_id for m in row.node.cached_models]),
            (self._holder_rows, [h for h in row.holders if h is not None]),
        ):
            for key in keys:
                rows = index.get(key)
                if rows is not None:
                    rows.discard(r)
                    if not rows:
                        del index[key]

    def _product_id(self, product: str) -> int:
        return self._products.setdefault(product_key(product), len(self._products))

    # -- reading -----------------------------------------------------------------------------

    def product_id(self, product: str) -> int:
        """The id of a product name in ``product``; -1 when no node has had it."""
        return self._products.get(product_key(product), -1)

    def row_at(self, name: str) -> int | None:
        """The row holding ``name``, or ``None``."""
        return self._index.get(name)

    def rows_of(self, names: Sequence[str]) -> RowArray:
        """Row of each name, -1 for a name the fleet does not hold (read-only).

        kube-scheduler names the same nodes in the same order pod after pod, so the last
        answer is kept until a node is added or removed: comparing two tuples of names costs a
        fraction of looking every name up.
        """
        key = names if isinstance(names, tuple) else tuple(names)
        last = self._last_rows
        if last is not None and last[0] == self._layout and last[1] == key:
            return last[2]
        try:
            if len(key) > 1:  # itemgetter looks every name up in one C call
                rows = np.fromiter(itemgetter(*key)(self._index), np.intp, len(key))
            else:
                rows = np.fromiter(map(self._index.__getitem__, key), np.intp, len(key))
        except KeyError:
            get = self._index.get
            rows = np.fromiter((get(n, -1) for n in key), np.intp, len(key))
        rows.flags.writeable = False
        self._last_rows = (self._layout, key, rows)
        return rows

    def cached(self, model_id: str) -> BoolArray:
        """By row (``span`` rows): whether the node has ``model_id``'s weights on local disk."""
        mask = np.zeros(self.span, dtype=np.bool_)
        rows = self._model_rows.get(model_id)
        if model_id and rows:
            mask[list(rows)] = True
        return mask

    def chosen_uuids(self, chosen: BoolArray, rows: RowArray) -> list[tuple[str, ...]]:
        """The UUIDs of the ``chosen`` slots (``slot x row``) of each of ``rows``, in slot order.

        Tuples are cached per row version and slot set, so a hot request builds none.
        """
        width = self.width
        if width > 30:
            slots = chosen[:, rows].T
            return [
                tuple(u for u, c in zip(self.row(r).uuids, picks, strict=False) if c)
                for r, picks in zip(rows.tolist(), slots.tolist(), strict=True)
            ]
        masks: IntArray = (np.int64(1) << np.arange(width, dtype=np.int64)) @ chosen[:, rows]
        keys = ((self.generation[rows] << width) | masks).tolist()
        found = list(map(self._combos.get, keys))
        if None in found:
            for i, r, mask in zip(range(len(keys)), rows.tolist(), masks.tolist(), strict=True):
                if found[i] is None:
                    uuids = self.row(r).uuids
                    found[i] = self._combos[keys[i]] = tuple(
                        u for s, u in enumerate(uuids) if mask >> s & 1
                    )
        return cast(list[tuple[str, ...]], found)  # no None is left

    def holds(self, pod_uid: str) -> bool:
        """Whether ``pod_uid`` holds a GPU of any node in the fleet."""
        return pod_uid in self._holder_rows

    def held_by(self, pod_uid: str) -> BoolArray:
        """``slot x row`` (``span`` rows): the GPUs that ``pod_uid`` itself holds."""
        own = np.zeros((self.width, self.span), dtype=np.bool_)
        for r in self._holder_rows.get(pod_uid, ()):
            for s, h in enumerate(self.row(r).holders):
                own[s, r] = h == pod_uid
        return own


@dataclass(frozen=True, slots=True)
class FleetDecision:
    """What ``decide_fleet`` found, keyed by node name in request order.

    ``spanning`` names the fits whose GPUs are not all on one NVLink island. ``reject_counts``
    counts the named nodes that do not fit by reject class (``REJECT_CLASSES``), always.
    ``rejected`` names each of them, in request order, beside its reason and resolvable flag,
    unless the caller asked for no reasons while some node fits: then ``reasons`` is false and
    all three are empty. They are kept as plain strings and flags rather than a ``Reject`` per
    node: at thousands of nodes, objects per node are most of the cost and feed the cyclic
    garbage collector (``rejects`` builds them on request). ``fits`` and ``scores`` hold every
    node that fits, unless the caller asked for the chosen one only: then ``all_fits`` is
    false.
    """

    chosen: Fit | None
    fits: dict[str, tuple[str, ...]]
    scores: dict[str, float]
    rejected: tuple[str, ...] = ()
    reject_reasons: tuple[str, ...] = ()
    reject_resolvable: tuple[bool, ...] = ()
    spanning: frozenset[str] = frozenset()
    reject_counts: Mapping[str, int] = dataclasses.field(default_factory=dict)
    reasons: bool = True
    all_fits: bool = True

    @property
    def rejects(self) -> dict[str, Reject]:
        """Each node that does not fit with its ``Reject``, in request order."""
        rejected = self.rejected
        made = map(Reject, rejected, self.reject_reasons, self.reject_resolvable)
        return dict(zip(rejected, made, strict=True))

    def split_rejects(self) -> tuple[dict[str, str], dict[str, str]]:
        """The reasons of the nodes that cannot take the pod now (``failed``) and of those that
        never could (``unresolvable``), each in request order: what a scheduler extender's
        filter reports."""
        return _split(self.rejected, self.reject_reasons, self.reject_resolvable)

    def decision(self) -> Decision:
        """The same result as a ``Decision``, equal to what ``decide()`` returns.

        Raises ``ValueError`` when rejects or fits were left out (``reasons=False``,
        ``all_fits=False``).
        """
        if not (self.reasons and self.all_fits):
            raise ValueError(
                "this FleetDecision was made with reasons=False or all_fits=False and holds "
                "only part of the answer; decide again with both true for a whole Decision"
            )
        return Decision(
            chosen=self.chosen,
            scores=tuple(self.scores.items()),
            fits=tuple(Fit(n, g, n not in self.spanning) for n, g in self.fits.items()),
            rejects=tuple(self.rejects.values()),
        )


def _split(
    rejected: Sequence[str], texts: Sequence[str], resolvable: Sequence[bool]
) -> tuple[dict[str, str], dict[str, str]]:
    """Reasons by node, split into resolvable and unresolvable, in request order."""
    hard = [not r for r in resolvable]
    return (
        dict(zip(compress(rejected, resolvable), compress(texts, resolvable), strict=True)),
        dict(zip(compress(rejected, hard), compress(texts, hard), strict=True)),
    )


# -- array helpers ---------------------------------------------------------------------------


def _count(b: BoolArray) -> IntArray:
    """Per row: how many slots are true."""
    counts: IntArray = b.view(np.uint8).sum(axis=0, dtype=np.int64)
    return counts


def _smallest(key: IntArray, k: int) -> BoolArray:
    """Per row: the ``k`` slots with the smallest keys (distinct within a row; ``_MAX`` for
    slots out of the running). Rows with fewer than ``k`` in the running come out garbage."""
    if k > 2:  # the k-th smallest of each row, from the rows sorted (each row contiguous)
        by_row = key.T.copy()  # a copy: the sort is in place
        by_row.sort(axis=1)
        kth: IntArray = by_row[:, min(k, by_row.shape[1]) - 1]
    else:
        w = key
        for _ in range(k - 1):
            w = np.where(w == w.min(axis=0), _MAX, w)
        kth = w.min(axis=0)
    picked: BoolArray = key <= kth
    return picked


# -- evaluation ------------------------------------------------------------------------------


def _claims_of(
    fleet: Fleet, reservations: Iterable[Reservation], now: float, pod_uid: str
) -> tuple[BoolArray, IntArray]:
    """GPUs hidden by reservations their nodes do not show yet (``slot x row``), and the
    loads in flight per row, over ``span`` rows: the rules of ``fit.hidden_gpus`` and
    ``policies.loads_in_flight``. Reservations of ``pod_uid`` itself are ignored. The fleet's
    own ``claims`` give the same arrays from their sums, without this loop."""
    if reservations is fleet.claims:
        return fleet.claims.resolve(now, pod_uid)
    hidden = np.zeros((fleet.width, fleet.span), dtype=np.bool_)
    index, rows = fleet._index, fleet._rows
    loading: list[int] = []  # a row per load in flight
    slots: list[int] = []  # (slot, row) of each hidden GPU
    slot_rows: list[int] = []
    for res in reservations:
        if res.pod_uid == pod_uid:
            continue
        r = index.get(res.node)
        if r is None or not res.active(now):
            continue
        if res.in_flight():
            loading.append(r)
        row = rows[r]
        assert row is not None  # the index names held rows only
        hidden_slots = row.hidden_by(res)
        slots.extend(hidden_slots)
        slot_rows.extend([r] * len(hidden_slots))
    hidden[slots, slot_rows] = True
    return hidden, np.bincount(loading, minlength=fleet.span).astype(np.int64, copy=False)


@dataclass(slots=True)
class _Evaluation:
    """One request over the rows in use (``Fleet.span``); ``rows`` are the named nodes' rows."""

    names: list[str]  # the named nodes the fleet holds, in request order
    rows: RowArray  # their rows
    named_rows: RowArray  # the row of every named node, -1 where the fleet holds none
    code: IntArray  # by row
    chosen: BoolArray  # slot x row: the GPUs each fit takes
    same_island: BoolArray  # by row
    hidden: BoolArray  # slot x row
    loads: IntArray  # by row
    # What reject reasons quote, by row (island_counts: island x row).
    large: IntArray
    best_island: IntArray
    lease_age: FloatArray
    report_age: FloatArray
    candidates: IntArray
    causes: Callable[[], dict[str, BoolArray]]  # slot x row: the GPUs not free, by cause
    island_counts: IntArray
    max_report_age_s: float
    slot: IntArray  # by row, for one-GPU demands: the chosen slot
    why: dict[str, IntArray] = dataclasses.field(default_factory=dict)  # by row: ``causes`` counted

    def why_counts(self) -> dict[str, IntArray]:
        """By row: how many GPUs each cause keeps from being a candidate (counted when a
        reason needs it, not for every request)."""
        if not self.why:
            self.why = {w: _count(mask) for w, mask in self.causes().items()}
        return self.why


def _evaluate(
    fleet: Fleet,
    names: Sequence[str],
    demand: Demand,
    reservations: Iterable[Reservation],
    *,
    now: float,
    settings: FitSettings,
    pod_uid: str,
) -> _Evaluation:
    """The rules of ``fit()``, checked in its order, over the rows in use at once."""
    all_rows = fleet.rows_of(names)
    found = all_rows >= 0
    if found.all():
        rows, known = all_rows, list(names)
    else:
        rows = all_rows[found]
        known = list(compress(names, found.tolist()))
    hidden, loads = _claims_of(fleet, reservations, now, pod_uid)
    k = demand.gpus
    width, span = fleet.width, fleet.span
    code = np.zeros(span, dtype=np.int64)
    none = np.zeros(span, dtype=np.int64)
    ev = _Evaluation(
        names=known,
        rows=rows,
        named_rows=all_rows,
        code=code,
        chosen=np.zeros((width, span), dtype=np.bool_),
        same_island=np.ones(span, dtype=np.bool_),
        hidden=hidden,
        loads=loads,
        large=none,
        best_island=none,
        lease_age=np.zeros(span),
        report_age=np.zeros(span),
        candidates=none,
        causes=dict,
        island_counts=np.zeros((0, span), dtype=np.int64),  # filled where islands are chosen
        max_report_age_s=settings.max_report_age_s,
        slot=none,
    )
    if k <= 0:
        return ev
    # The arrays cut to the rows in use (views, no copies).
    total: IntArray = fleet.total[:, :span]
    free_key: IntArray = fleet.free_key[:, :span]
    free: IntArray = fleet.free[:, :span]
    free_known: BoolArray = fleet.free_known[:, :span]
    healthy: BoolArray = fleet.healthy[:, :span]
    mig: BoolArray = fleet.mig[:, :span]
    held_any: BoolArray = fleet.held[:, :span]
    present: BoolArray = fleet.present[:, :span]
    error, island_count = fleet.error[:span], fleet.island_count[:span]

    def mark(condition: BoolArray, result: int) -> None:
        code[(code == _OK) & condition] = result

    empty = fleet.gpu_count[:span] == 0
    mark(empty & error, _AGENT_ERROR_NO_GPUS)
    mark(empty, _NO_GPUS)
    matching = present
    if demand.products:
        product = fleet.product[:, :span]
        accepted = np.zeros(product.shape, dtype=np.bool_)
        for i in {fleet.product_id(p) for p in demand.products} - {-1}:
            accepted |= product == i
        matching = matching & accepted
        mark(_count(matching) == 0, _NO_PRODUCT)
    vram = min(demand.vram_per_gpu, int(_MAX))
    large = matching & (total >= vram)
    ev.large = _count(large)
    mark(ev.large < k, _TOO_SMALL)
    nvlink = effective_nvlink(demand, settings)
    if nvlink is NvlinkMode.REQUIRED:
        best = np.zeros(span, dtype=np.int64)
        for i in range(int(island_count.max(initial=0))):
            best = np.maximum(best, _count(large & (fleet.island[:, :span] == i)))
        ev.best_island = best
        mark(best < k, _NO_ISLAND)
    mark(error, _AGENT_ERROR)
    mark(~fleet.lease_seen[:span], _NO_LEASE)
    ev.lease_age = now - fleet.lease_at[:span]
    mark(ev.lease_age > fleet.lease_duration[:span], _LEASE_OLD)
    ev.report_age = now - fleet.observed_at[:span]
    mark(ev.report_age > settings.max_report_age_s, _REPORT_OLD)

    # The candidates: GPUs of the right product and size that are open (or held by the pod
    # itself), not reserved, and free enough.
    own = fleet.held_by(pod_uid) if fleet.holds(pod_uid) else None
    usable = fleet.open[:, :span]
    if own is not None:  # a GPU the pod itself holds is not held against it
        usable = usable | (own & healthy & ~mig & free_known)
    candidate = large & usable & ~hidden & (free >= vram)
    ev.candidates = _count(candidate)
    mark(ev.candidates < k, _NOT_FREE)

    def causes() -> dict[str, BoolArray]:
        """Each GPU of the right product and size that is not a candidate, by the first
        reason it is not, in fit()'s order (for the reasons only)."""
        held = held_any & ~own if own is not None else held_any
        unhealthy = large & ~healthy
        left = large & healthy
        mig_now = left & mig
        left &= ~mig
        held_now = left & held
        left &= ~held
        reserved = left & hidden
        left &= ~hidden
        unknown = left & ~free_known
        left &= free_known
        busy = left & (free < vram)
        return {
            BUSY: busy,
            HELD: held_now,
            MIG_ENABLED: mig_now,
            RESERVED: reserved,
            UNHEALTHY: unhealthy,
            UNKNOWN: unknown,
        }

    ev.causes = causes

    # Choose: inside the smallest island that holds the pod (ties: the smallest candidate
    # UUID), else across islands; the tightest GPUs (least free, then lowest index). Keys are
    # made distinct within a row by their low digits (the slot or island), so a minimum says
    # where it is.
    pool = candidate
    # Only rows with several islands have an island to choose (taken out, chosen, put back).
    multi = np.flatnonzero((code == _OK) & (island_count > 1)) if k > 1 else _NO_ROWS
    if len(multi):
        theirs = candidate[:, multi]
        island = fleet.island[:, multi]
        # island x slot x row: the candidates on each island
        ids = np.arange(int(island_count[multi].max()))[:, None, None]
        on = theirs & (island == ids)
        counts: IntArray = on.view(np.uint8).sum(axis=1, dtype=np.int64)
        first = np.where(on, fleet.uuid_rank[:, multi], width).min(axis=1)
        key = np.where(counts >= k, (counts * (width + 1) + first) * width + ids[:, 0], _MAX)
        lowest = key.min(axis=0)
        whole = lowest < _MAX
        ev.same_island[multi] = whole
        pool = candidate.copy()
        pool[:, multi] = theirs & (~whole | (island == lowest % width))
        ev.island_counts = np.zeros((len(counts), span), dtype=np.int64)
        ev.island_counts[:, multi] = counts
    tight = np.where(pool, free_key, _MAX)
    if k == 1:
        lowest = tight.min(axis=0)
        ev.slot = lowest % _SLOT_RADIX
        chosen = tight == lowest
    else:
        chosen = _smallest(tight, k)
    if nvlink is NvlinkMode.REQUIRED:
        mark(~ev.same_island, _SPLIT)
    ev.chosen = chosen & (code == _OK)
    return ev


def _fitting(ev: _Evaluation) -> tuple[list[str], RowArray]:
    """The named nodes that fit and their rows, in request order."""
    fit = ev.code[ev.rows] == _OK
    if fit.all():
        return ev.names, ev.rows
    return list(compress(ev.names, fit.tolist())), ev.rows[fit]


def _gpus_of(
    fleet: Fleet, ev: _Evaluation, k: int, names: list[str], rows: RowArray
) -> dict[str, tuple[str, ...]]:
    """The chosen GPU UUIDs of the fits ``names`` (in ``rows``), in GPU index order."""
    if k <= 0:
        return dict.fromkeys(names, ())
    if k == 1:
        return dict(zip(names, fleet.uuid_1[ev.slot[rows], rows].tolist(), strict=True))
    return dict(zip(names, fleet.chosen_uuids(ev.chosen, rows), strict=True))


def _fits(fleet: Fleet, ev: _Evaluation, k: int) -> dict[str, tuple[str, ...]]:
    """The chosen GPU UUIDs of each fit, in GPU index order, in request order."""
    return _gpus_of(fleet, ev, k, *_fitting(ev))


def _reject_counts(names: Sequence[str], ev: _Evaluation) -> dict[str, int]:
    """The named nodes that do not fit, counted by reject class (from the result codes, with
    no reason worded)."""
    tally = np.bincount(ev.code[ev.rows], minlength=len(_CLASS_OF) + 1).tolist()
    counts: dict[str, int] = {}
    for c, n in enumerate(tally):
        if c != _OK and n:
            name = _CLASS_OF[c]
            counts[name] = counts.get(name, 0) + n
    missing = len(names) - len(ev.names)
    if missing:
        counts[NO_REPORT] = missing
    return counts


def _group(keys: npt.NDArray[Any]) -> tuple[list[int], IntArray]:
    """Where each distinct key first occurs, and which distinct key each entry has.

    Keys with several columns become one integer when their digits fit (a mixed radix over
    small non-negative counts), else one opaque byte string each.
    """
    if keys.ndim > 1:
        low, high = keys.min(initial=0), keys.max(initial=0)
        radix = [int(x) + 1 for x in keys.max(axis=0, initial=0).tolist()]
        if low >= 0 and high < 2**31 and math.prod(radix) < 2**62:
            flat = np.zeros(len(keys), dtype=np.int64)
            for column, base in zip(keys.T, radix, strict=True):
                flat = flat * base + column
            keys = flat
        else:
            packed = np.ascontiguousarray(keys)
            keys = packed.view(np.dtype((np.void, packed.dtype.itemsize * packed.shape[1])))
            keys = keys.ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first.tolist(), inverse.reshape(-1)


def _reject_keys(c: int, rows: RowArray, fleet: Fleet, ev: _Evaluation) -> npt.NDArray[Any]:
    """A key per row, equal exactly where fit() words the reason the same."""
    if c in (_NO_GPUS, _NO_LEASE):
        return np.zeros(len(rows), dtype=np.int64)
    if c in (_AGENT_ERROR, _AGENT_ERROR_NO_GPUS):
        return rows.astype(np.int64)
    if c == _NO_PRODUCT:
        return fleet.described[rows]
    if c == _TOO_SMALL:
        return np.stack([ev.large[rows], fleet.described[rows]], axis=1)
    if c == _NO_ISLAND:
        return ev.best_island[rows]
    if c == _LEASE_OLD:
        return np.stack([ev.lease_age[rows], fleet.lease_duration[rows]], axis=1).view(np.int64)
    if c == _REPORT_OLD:
        return ev.report_age[rows].view(np.int64)
    if c == _NOT_FREE:
        why = ev.why_counts()
        return np.stack([ev.candidates[rows], *(why[w][rows] for w in _CAUSES)], axis=1)
    return -np.sort(-ev.island_counts[:, rows].T, axis=1)  # split: sizes, largest first


def _word(c: int, r: int, fleet: Fleet, ev: _Evaluation, demand: Demand) -> str:
    """The reason for the node in row ``r``, by fit()'s own reason functions."""
    k, vram = demand.gpus, demand.vram_per_gpu
    row = fleet.row(r)
    if c == _NO_GPUS:
        return REASON_NO_GPUS
    if c in (_AGENT_ERROR, _AGENT_ERROR_NO_GPUS):
        return reason_agent_error(row.node.agent_error)
    if c == _NO_PRODUCT:
        return reason_no_product(demand.products, row.described)
    if c == _TOO_SMALL:
        return reason_too_small(k, vram, int(ev.large[r]), row.described)
    if c == _NO_ISLAND:
        return reason_no_island(k, int(ev.best_island[r]))
    if c == _NO_LEASE:
        return REASON_NO_LEASE
    if c == _LEASE_OLD:
        return reason_lease_expired(float(ev.lease_age[r]), row.node.lease_duration_s)
    if c == _REPORT_OLD:
        return reason_report_old(float(ev.report_age[r]), ev.max_report_age_s)
    if c == _NOT_FREE:
        why = {w: int(v[r]) for w, v in ev.why_counts().items()}
        return reason_not_free(k, vram, int(ev.candidates[r]), why)
    return reason_split(k, ev.island_counts[:, r].tolist())


def _reasons(
    fleet: Fleet, names: Sequence[str], ev: _Evaluation, demand: Demand
) -> tuple[list[str], list[str], list[bool]]:
    """Each named node that does not fit, its reason and whether it is resolvable, in request
    order. Nodes are grouped by what their reason quotes; each distinct reason is worded once."""
    codes = ev.code[ev.rows]
    rejected = np.flatnonzero(codes != _OK)
    if not len(rejected) and len(ev.names) == len(names):
        return [], [], []
    codes = codes[rejected]
    rows = ev.rows[rejected]
    texts = np.empty(len(rejected), dtype=object)
    for c in np.unique(codes).tolist():
        where = np.flatnonzero(codes == c)
        first, inverse = _group(_reject_keys(c, rows[where], fleet, ev))
        words = [_word(c, int(rows[where[j]]), fleet, ev, demand) for j in first]
        texts[where] = np.array(words, dtype=object)[inverse]
    at = rejected.tolist()
    known = [ev.names[i] for i in at] if len(at) < len(ev.names) else ev.names
    text_list: list[str] = texts.tolist()
    resolvable: list[bool] = (~np.isin(codes, _UNRESOLVABLE)).tolist()
    if len(ev.names) == len(names):
        return known, text_list, resolvable
    # Some names are not in the fleet: put them in request order among the others.
    found = dict(zip(known, zip(text_list, resolvable, strict=True), strict=True))
    out: tuple[list[str], list[str], list[bool]] = ([], [], [])
    for name in names:
        text, res = (REASON_NO_REPORT, True) if name not in fleet else found.get(name, ("", None))
        if res is not None:
            out[0].append(name)
            out[1].append(text)
            out[2].append(res)
    return out


def _rejects(
    fleet: Fleet, names: Sequence[str], ev: _Evaluation, demand: Demand
) -> dict[str, Reject]:
    """A ``Reject`` for each named node that does not fit, in request order."""
    rejected, texts, resolvable = _reasons(fleet, names, ev, demand)
    return dict(zip(rejected, map(Reject, rejected, texts, resolvable), strict=True))


@dataclass(frozen=True, slots=True)
class FleetVerdict:
    """A filter's answer in the terms of the scheduler extender protocol, built without a
    ``Reject`` per node: the fits with their GPUs, and the reasons of the nodes that do not
    fit, split into resolvable (``failed``) and ``unresolvable``. Each keeps request order."""

    fits: dict[str, tuple[str, ...]]
    failed: dict[str, str]
    unresolvable: dict[str, str]


def verdict(
    fleet: Fleet,
    names: Sequence[str],
    demand: Demand,
    reservations: Iterable[Reservation],
    *,
    now: float,
    settings: FitSettings = FitSettings(),
    pod_uid: str = "",
) -> FleetVerdict:
    """``evaluate()``'s answer as reason strings (pure): the same fits, the same reasons, the
    same resolvable flags, for a response that carries text, at a fraction of the cost."""
    ev = _evaluate(fleet, names, demand, reservations, now=now, settings=settings, pod_uid=pod_uid)
    failed, unresolvable = _split(*_reasons(fleet, names, ev, demand))
    return FleetVerdict(
        fits=_fits(fleet, ev, demand.gpus), failed=failed, unresolvable=unresolvable
    )


def evaluate(
    fleet: Fleet,
    names: Sequence[str],
    demand: Demand,
    reservations: Iterable[Reservation],
    *,
    now: float,
    settings: FitSettings = FitSettings(),
    pod_uid: str = "",
    reasons: bool = True,
) -> tuple[dict[str, tuple[str, ...]], dict[str, Reject]]:
    """``fit()`` for every named node at once (pure): the fits with their GPUs, and the rejects.

    Each node gets exactly what ``fit(fleet.node(name), ...)`` gives: the same GPUs in the same
    order, the same reason, the same resolvable flag. A name the fleet does not hold is
    rejected with ``REASON_NO_REPORT`` (resolvable). Both dictionaries keep request order.
    With ``reasons=False`` the rejects are left out (empty) when some node fits: wording a
    reason per node is most of the cost, and a caller that only needs a node may skip it.
    """
    ev = _evaluate(fleet, names, demand, reservations, now=now, settings=settings, pod_uid=pod_uid)
    fits = _fits(fleet, ev, demand.gpus)
    return fits, _rejects(fleet, names, ev, demand) if reasons or not fits else {}


def decide_fleet(
    fleet: Fleet,
    names: Sequence[str],
    demand: Demand,
    reservations: Iterable[Reservation],
    *,
    now: float,
    settings: FitSettings = FitSettings(),
    profile: Profile | None = None,
    pod_uid: str = "",
    reasons: bool = True,
    all_fits: bool = True,
) -> FleetDecision:
    """``decide()`` over the named nodes of ``fleet`` (pure): evaluate, score, choose.

    The chosen node, its GPUs, every score and every reject equal ``decide()``'s on the same
    nodes (``FleetDecision.decision()`` is its very ``Decision``); ties go to the name that
    sorts first. ``reject_counts`` counts the rejected nodes by class.

    Two switches leave out what a caller does not need, at thousands of nodes most of the
    cost: ``reasons=False`` words the rejects only when no node fits (a scheduler extender
    reports them only then), ``all_fits=False`` keeps only the chosen node in ``fits`` and
    ``scores``. Neither changes the choice.
    """
    prof = profile or resolve_profile(demand)
    ev = _evaluate(fleet, names, demand, reservations, now=now, settings=settings, pod_uid=pod_uid)
    counts = _reject_counts(names, ev)
    fit = ev.code[ev.rows] == _OK
    fit_rows = ev.rows if fit.all() else ev.rows[fit]
    if not len(fit_rows):
        rejected, texts, resolvable = _reasons(fleet, names, ev, demand)
        return FleetDecision(
            None, {}, {}, tuple(rejected), tuple(texts), tuple(resolvable), reject_counts=counts
        )
    rejected, texts, resolvable = _reasons(fleet, names, ev, demand) if reasons else ([], [], [])
    values = _scores(fleet, ev, demand, prof)[fit_rows]
    tied = np.flatnonzero(values == values.max())
    at = int(tied[np.argmin(fleet.name_rank[fit_rows[tied]])])  # the name that sorts first
    best = fleet.row(int(fit_rows[at])).node.name
    if all_fits:
        fit_names = ev.names if fit.all() else list(compress(ev.names, fit.tolist()))
        fits = _gpus_of(fleet, ev, demand.gpus, fit_names, fit_rows)
        scores = dict(zip(fit_names, values.tolist(), strict=True))
        spanning = frozenset(compress(fit_names, (~ev.same_island[fit_rows]).tolist()))
    else:
        fits = _gpus_of(fleet, ev, demand.gpus, [best], fit_rows[at : at + 1])
        scores = {best: float(values[at])}
        spanning = frozenset() if ev.same_island[fit_rows[at]] else frozenset((best,))
    return FleetDecision(
        Fit(best, fits[best], best not in spanning),
        fits,
        scores,
        tuple(rejected),
        tuple(texts),
        tuple(resolvable),
        spanning,
        reject_counts=counts,
        reasons=reasons or not counts,
        all_fits=all_fits or len(fit_rows) == 1,
    )


def score_nodes(
    fleet: Fleet,
    names: Sequence[str],
    demand: Demand,
    reservations: Iterable[Reservation],
    *,
    now: float,
    settings: FitSettings = FitSettings(),
    profile: Profile | None = None,
    pod_uid: str = "",
) -> FloatArray:
    """By named node, in request order: the score ``decide_fleet`` gives it, NaN where it
    does not fit or the fleet does not hold it (pure). What a scheduler extender's prioritize
    needs, without a fit, a reject or a dictionary entry per node."""
    prof = profile or resolve_profile(demand)
    ev = _evaluate(fleet, names, demand, reservations, now=now, settings=settings, pod_uid=pod_uid)
    out = np.full(len(names), np.nan)
    if not len(ev.rows):
        return out
    values = _scores(fleet, ev, demand, prof)
    known = ev.named_rows >= 0
    rows = ev.named_rows[known]
    out[known] = np.where(ev.code[rows] == _OK, values[rows], np.nan)
    return out


def _clamp(x: FloatArray) -> FloatArray:
    return np.maximum(0.0, np.minimum(MAX_SCORE, x))


def _scores(fleet: Fleet, ev: _Evaluation, demand: Demand, profile: Profile) -> FloatArray:
    """The profile's score by row, with the arithmetic of ``policies.score`` (same bits)."""
    span = len(ev.code)
    chosen = ev.chosen
    present: BoolArray = fleet.present[:, :span]
    healthy: BoolArray = fleet.healthy[:, :span]
    held: BoolArray = fleet.held[:, :span]
    free: IntArray = fleet.free[:, :span]
    total_sum = fleet.total_sum[:span]
    free_after = present & healthy & ~held & ~ev.hidden & ~chosen
    free_now = np.where(free_after, free, 0).sum(axis=0)
    some = total_sum > 0
    fraction = np.zeros(span)
    fraction[some] = np.maximum(0.0, np.minimum(1.0, free_now[some] / total_sum[some]))
    k = demand.gpus
    pairs = k * (k - 1) // 2
    link_fraction = np.ones(span)  # every pair of a complete row's GPUs is linked
    partial = np.flatnonzero(~fleet.complete[:span] & chosen.any(axis=0)) if pairs else _NO_ROWS
    if len(partial):
        picked = chosen[:, partial].T  # row x slot
        # Ordered pairs (a, b) of chosen GPUs joined by NVLink, per row: twice the pairs.
        both = picked[:, :, None] & fleet.linked[partial] & picked[:, None, :]
        linked = both.view(np.uint8).sum(axis=(1, 2), dtype=np.int64)
        link_fraction[partial] = (linked // 2) / pairs
    loads = np.maximum(0, ev.loads).astype(np.float64)
    policy_values: dict[str, Callable[[], FloatArray]] = {
        "vram-binpack": lambda: _clamp(MAX_SCORE * (1.0 - fraction)),
        "vram-spread": lambda: _clamp(MAX_SCORE * fraction),
        "in-flight-penalty": lambda: _clamp(MAX_SCORE * np.power(0.5, loads)),
        "cache-affinity": lambda: np.where(fleet.cached(demand.model_id), MAX_SCORE, 0.0),
        "nvlink-quality": lambda: _clamp(MAX_SCORE * link_fraction),
    }
    total = np.zeros(span)
    for name, weight in profile.weights:
        if name not in policy_values:  # a policy registered without its fleet form
            raise NotImplementedError(f"policy {name!r} has no fleet form in placement.fleet")
        total = total + policy_values[name]() * weight
    return _clamp(total / profile.total_weight)


__all__ = [
    "AGENT_ERROR",
    "GPUS_BUSY",
    "GPU_PRODUCT",
    "GPU_TOO_SMALL",
    "LEASE_EXPIRED",
    "MAX_GPUS_PER_NODE",
    "NO_GPUS",
    "NO_LEASE",
    "NO_REPORT",
    "NVLINK_ISLAND_TOO_SMALL",
    "NVLINK_SPLIT",
    "REASON_NO_REPORT",
    "REJECT_CLASSES",
    "REPORT_STALE",
    "Fleet",
    "FleetDecision",
    "FleetError",
    "FleetRow",
    "FleetVerdict",
    "decide_fleet",
    "evaluate",
    "score_nodes",
    "verdict",
]
