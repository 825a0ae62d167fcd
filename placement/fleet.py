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
which numpy does fast; per-node arrays are indexed by row. A request is evaluated over every
row at once and the named rows are picked out at the end.

Pure: no I/O, no clock; ``now`` is an argument. A ``Fleet`` is mutable (rows change as reports
arrive) and not locked: a caller that updates it from one thread while another evaluates must
serialize the two. Evaluating changes nothing but a cache of UUID tuples. Byte counts are exact in float64 (a
node's total at most 2**53 bytes, as in reports), which lets the scores match bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from placement.decide import resolve_profile
from placement.fit import (
    BUSY,
    HELD,
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
from placement.policies import MAX_SCORE, Profile
from placement.report import MAX_REPORT_BYTES
from placement.topology import islands, nvlink_graph

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
RowArray = npt.NDArray[np.intp]
ObjectArray = npt.NDArray[np.object_]

REASON_NO_REPORT = "no GPU report from the vramfit node agent for this node"
"""Why a node the fleet does not hold is rejected (resolvable: its agent may yet report)."""

FLEET_POLICIES = frozenset(
    {"vram-binpack", "vram-spread", "in-flight-penalty", "cache-affinity", "nvlink-quality"}
)
"""The policies ``decide_fleet`` computes array-wise; a test keeps it equal to ``POLICIES``."""

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
_CAUSES = (BUSY, HELD, RESERVED, UNHEALTHY, UNKNOWN)


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

    Per GPU (``slot x row``): total and free bytes, whether free is known, healthy, held by a
    pod, present, product id, NVLink island id and island membership, UUID rank, NVLink
    adjacency. Per node (``row``): GPU count, lease renewed at (and whether seen), lease
    duration, observed at, agent error, described-GPUs id; cached models and GPU holders are
    indexed by id. ``replace`` swaps one node's row when a report arrives, ``renew`` records a
    Lease event, ``remove`` drops a node.
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
        self._allocate(max(1, capacity), max(1, width))
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
        gg = (width, width, capacity)
        self.total: IntArray = grow("total", g, 0, np.int64)
        self.free: IntArray = grow("free", g, 0, np.int64)
        self.free_known: BoolArray = grow("free_known", g, False, np.bool_)
        self.healthy: BoolArray = grow("healthy", g, False, np.bool_)
        self.held: BoolArray = grow("held", g, False, np.bool_)
        self.present: BoolArray = grow("present", g, False, np.bool_)
        self.product: IntArray = grow("product", g, -1, np.int64)
        self.island: IntArray = grow("island", g, -1, np.int64)
        self.uuid_rank: IntArray = grow("uuid_rank", g, 0, np.int64)
        self.uuid: ObjectArray = grow("uuid", g, None, object)
        self.uuid_1: ObjectArray = grow("uuid_1", g, None, object)  # (uuid,) tuples
        self.in_island: BoolArray = grow("in_island", gg, False, np.bool_)  # island x slot x row
        self.linked: BoolArray = grow("linked", gg, False, np.bool_)  # slot x slot x row
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
        self._spare.extend(range(capacity - 1, len(self._rows) - 1, -1))
        self._rows.extend([None] * (capacity - len(self._rows)))

    @property
    def width(self) -> int:
        """GPU slots per row: the most GPUs any node has had."""
        return int(self.total.shape[0])

    @property
    def capacity(self) -> int:
        """Rows allocated (held nodes plus spare rows)."""
        return len(self._rows)

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
            r = self._spare.pop()
            self._index[node.name] = r
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
        self.free_known[:n, r] = [g.free_bytes is not None for g in gpus]
        self.healthy[:n, r] = [g.healthy for g in gpus]
        self.held[:n, r] = [g.holder_pod_uid is not None for g in gpus]
        self.present[:n, r] = True
        self.product[:n, r] = [self._product_id(g.product) for g in gpus]
        self.island[:n, r] = island_of
        self.uuid_rank[:n, r] = rank
        for s, (u, i) in enumerate(zip(uuids, island_of, strict=True)):
            self.uuid[s, r] = u
            self.uuid_1[s, r] = (u,)
            self.in_island[i, s, r] = True
        self.linked[:n, :n, r] = linked
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
        self._unindex(r)
        self._clear(r)
        self.gpu_count[r] = 0
        self._rows[r] = None
        self._spare.append(r)

    def _clear(self, r: int) -> None:
        for a in (self.total, self.free, self.uuid_rank):
            a[:, r] = 0
        for b in (self.free_known, self.healthy, self.held, self.present):
            b[:, r] = False
        self.product[:, r] = -1
        self.island[:, r] = -1
        self.uuid[:, r] = None
        self.uuid_1[:, r] = None
        self.in_island[:, :, r] = False
        self.linked[:, :, r] = False

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

    def rows_of(self, names: Sequence[str]) -> RowArray:
        """Row of each name, -1 for a name the fleet does not hold."""
        try:
            return np.fromiter(map(self._index.__getitem__, names), np.intp, len(names))
        except KeyError:
            get = self._index.get
            return np.fromiter((get(n, -1) for n in names), np.intp, len(names))

    def cached(self, model_id: str) -> BoolArray:
        """By row: whether the node has ``model_id``'s weights on local disk."""
        mask = np.zeros(self.capacity, dtype=np.bool_)
        rows = self._model_rows.get(model_id)
        if model_id and rows:
            mask[list(rows)] = True
        return mask

    def claims(
        self, reservations: Iterable[Reservation], now: float, pod_uid: str
    ) -> tuple[BoolArray, IntArray]:
        """GPUs hidden by reservations their nodes do not show yet (``slot x row``), and the
        loads in flight per row: the rules of ``fit.hidden_gpus`` and
        ``policies.loads_in_flight``. Reservations of ``pod_uid`` itself are ignored."""
        hidden = np.zeros(self.total.shape, dtype=np.bool_)
        loads = np.zeros(self.capacity, dtype=np.int64)
        index = self._index
        for res in reservations:
            if res.pod_uid == pod_uid:
                continue
            r = index.get(res.node)
            if r is None or not res.active(now):
                continue
            if res.in_flight():
                loads[r] += 1
            row = self.row(r)
            for uuid in res.gpu_uuids:
                s = row.slot.get(uuid)
                if s is not None and row.holders[s] != res.pod_uid:
                    hidden[s, r] = True
        return hidden, loads

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
        masks = np.zeros(len(rows), dtype=np.int64)
        for s in range(width):
            masks |= chosen[s, rows].astype(np.int64) << s
        keys = ((self.generation[rows] << width) | masks).tolist()
        get = self._combos.get
        found = [get(key) for key in keys]
        if None in found:
            for i, r, mask in zip(range(len(keys)), rows.tolist(), masks.tolist(), strict=True):
                if found[i] is None:
                    uuids = self.row(r).uuids
                    found[i] = self._combos[keys[i]] = tuple(
                        u for s, u in enumerate(uuids) if mask >> s & 1
                    )
        return cast(list[tuple[str, ...]], found)  # no None is left

    def held_by(self, pod_uid: str) -> BoolArray:
        """``slot x row``: the GPUs that ``pod_uid`` itself holds."""
        own = np.zeros(self.total.shape, dtype=np.bool_)
        for r in self._holder_rows.get(pod_uid, ()):
            for s, h in enumerate(self.row(r).holders):
                own[s, r] = h == pod_uid
        return own


@dataclass(frozen=True, slots=True)
class FleetDecision:
    """What ``decide_fleet`` found, keyed by node name in request order.

    ``spanning`` names the fits whose GPUs are not all on one NVLink island.
    """

    chosen: Fit | None
    fits: dict[str, tuple[str, ...]]
    scores: dict[str, float]
    rejects: dict[str, Reject]
    spanning: frozenset[str] = frozenset()

    def decision(self) -> Decision:
        """The same result as a ``Decision``, equal to what ``decide()`` returns."""
        return Decision(
            chosen=self.chosen,
            scores=tuple(self.scores.items()),
            fits=tuple(Fit(n, g, n not in self.spanning) for n, g in self.fits.items()),
            rejects=tuple(self.rejects.values()),
        )


# -- array helpers ---------------------------------------------------------------------------


def _count(b: BoolArray) -> IntArray:
    """Per row: how many slots are true."""
    counts: IntArray = b.view(np.uint8).sum(axis=0, dtype=np.int64)
    return counts


def _smallest(key: IntArray, k: int) -> BoolArray:
    """Per row: the ``k`` slots with the smallest keys (distinct within a row; ``_MAX`` for
    slots out of the running). Rows with fewer than ``k`` in the running come out garbage."""
    w = key
    for _ in range(k - 1):
        w = np.where(w == w.min(axis=0), _MAX, w)
    picked: BoolArray = key <= w.min(axis=0)
    return picked


# -- evaluation ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Evaluation:
    """One request over every row of the fleet; ``rows`` are the named nodes' rows."""

    names: list[str]  # the named nodes the fleet holds, in request order
    rows: RowArray  # their rows
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
    why: dict[str, IntArray]
    island_counts: IntArray
    max_report_age_s: float
    slot: IntArray  # by row, for one-GPU demands: the chosen slot


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
    """The rules of ``fit()``, checked in its order, over all rows at once."""
    all_rows = fleet.rows_of(names)
    rows = all_rows[all_rows >= 0]
    if len(rows) == len(names):
        known = list(names)
    else:
        known = [n for n, r in zip(names, all_rows.tolist(), strict=True) if r >= 0]
    hidden, loads = fleet.claims(reservations, now, pod_uid)
    k = demand.gpus
    width, capacity = fleet.width, fleet.capacity
    code = np.zeros(capacity, dtype=np.int64)
    none = np.zeros(capacity, dtype=np.int64)
    ev = _Evaluation(
        names=known,
        rows=rows,
        code=code,
        chosen=np.zeros((width, capacity), dtype=np.bool_),
        same_island=np.ones(capacity, dtype=np.bool_),
        hidden=hidden,
        loads=loads,
        large=none,
        best_island=none,
        lease_age=np.zeros(capacity),
        report_age=np.zeros(capacity),
        candidates=none,
        why={},
        island_counts=np.zeros((width, capacity), dtype=np.int64),
        max_report_age_s=settings.max_report_age_s,
        slot=none,
    )
    if k <= 0:
        return ev

    def mark(condition: BoolArray, result: int) -> None:
        code[(code == _OK) & condition] = result

    empty = fleet.gpu_count == 0
    mark(empty & fleet.error, _AGENT_ERROR_NO_GPUS)
    mark(empty, _NO_GPUS)
    matching = fleet.present
    if demand.products:
        accepted = np.zeros(fleet.product.shape, dtype=np.bool_)
        for i in {fleet.product_id(p) for p in demand.products} - {-1}:
            accepted |= fleet.product == i
        matching = matching & accepted
        mark(_count(matching) == 0, _NO_PRODUCT)
    vram = min(demand.vram_per_gpu, int(_MAX))
    large = matching & (fleet.total >= vram)
    ev.large = _count(large)
    mark(ev.large < k, _TOO_SMALL)
    nvlink = effective_nvlink(demand, settings)
    if nvlink is NvlinkMode.REQUIRED:
        best = np.zeros(capacity, dtype=np.int64)
        for i in range(width):
            best = np.maximum(best, _count(large & fleet.in_island[i]))
        ev.best_island = best
        mark(best < k, _NO_ISLAND)
    mark(fleet.error, _AGENT_ERROR)
    mark(~fleet.lease_seen, _NO_LEASE)
    ev.lease_age = now - fleet.lease_at
    mark(ev.lease_age > fleet.lease_duration, _LEASE_OLD)
    ev.report_age = now - fleet.observed_at
    mark(ev.report_age > settings.max_report_age_s, _REPORT_OLD)

    # Each GPU of the right product and size: the first reason it is not a candidate.
    held = fleet.held & ~fleet.held_by(pod_uid)
    unhealthy = large & ~fleet.healthy
    left = large & fleet.healthy
    held_now = left & held
    left &= ~held
    reserved = left & hidden
    left &= ~hidden
    unknown = left & ~fleet.free_known
    left &= fleet.free_known
    busy = left & (fleet.free < vram)
    candidate = left & ~busy
    ev.candidates = _count(candidate)
    ev.why = {
        BUSY: _count(busy),
        HELD: _count(held_now),
        RESERVED: _count(reserved),
        UNHEALTHY: _count(unhealthy),
        UNKNOWN: _count(unknown),
    }
    mark(ev.candidates < k, _NOT_FREE)

    # Choose: inside the smallest island that holds the pod (ties: the smallest candidate
    # UUID), else across islands; the tightest GPUs (least free, then lowest index). Keys are
    # made distinct within a row by their low digits (the slot or island), so a minimum says
    # where it is.
    slot = np.arange(width)[:, None]
    standing = code == _OK
    pool = candidate
    if k > 1 and (fleet.island_count[standing] > 1).any():
        counts = np.zeros((width, capacity), dtype=np.int64)
        key = np.full((width, capacity), _MAX, dtype=np.int64)
        for i in range(width):
            in_i = candidate & fleet.in_island[i]
            counts[i] = _count(in_i)
            first = np.where(in_i, fleet.uuid_rank, width).min(axis=0)
            key[i] = np.where(counts[i] >= k, (counts[i] * (width + 1) + first) * width + i, _MAX)
        lowest = key.min(axis=0)
        ev.same_island = whole = lowest < _MAX
        pool = candidate & (~whole | (fleet.island == lowest % width))
        ev.island_counts = counts
    tight = np.where(pool, fleet.free * width + slot, _MAX)
    if k == 1:
        lowest = tight.min(axis=0)
        ev.slot = lowest % width
        chosen = tight == lowest
    else:
        chosen = _smallest(tight, k)
    if nvlink is NvlinkMode.REQUIRED:
        mark(~ev.same_island, _SPLIT)
    ev.chosen = chosen & (code == _OK)
    return ev


def _fits(fleet: Fleet, ev: _Evaluation, k: int) -> dict[str, tuple[str, ...]]:
    """The chosen GPU UUIDs of each fit, in GPU index order, in request order."""
    fit = ev.code[ev.rows] == _OK
    names = ev.names if fit.all() else [n for n, f in zip(ev.names, fit.tolist(), strict=True) if f]
    rows = ev.rows[fit]
    if k <= 0:
        return dict.fromkeys(names, ())
    if k == 1:
        return dict(zip(names, fleet.uuid_1[ev.slot[rows], rows].tolist(), strict=True))
    return dict(zip(names, fleet.chosen_uuids(ev.chosen, rows), strict=True))


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
        return np.stack([ev.candidates[rows], *(ev.why[w][rows] for w in _CAUSES)], axis=1)
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
        why = {w: int(v[r]) for w, v in ev.why.items()}
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
    rejected, texts, resolvable = _reasons(fleet, names, ev, demand)
    hard = [not r for r in resolvable]
    return FleetVerdict(
        fits=_fits(fleet, ev, demand.gpus),
        failed=dict(zip(compress(rejected, resolvable), compress(texts, resolvable), strict=True)),
        unresolvable=dict(zip(compress(rejected, hard), compress(texts, hard), strict=True)),
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
) -> tuple[dict[str, tuple[str, ...]], dict[str, Reject]]:
    """``fit()`` for every named node at once (pure): the fits with their GPUs, and the rejects.

    Each node gets exactly what ``fit(fleet.node(name), ...)`` gives: the same GPUs in the same
    order, the same reason, the same resolvable flag. A name the fleet does not hold is
    rejected with ``REASON_NO_REPORT`` (resolvable). Both dictionaries keep request order.
    """
    ev = _evaluate(fleet, names, demand, reservations, now=now, settings=settings, pod_uid=pod_uid)
    return _fits(fleet, ev, demand.gpus), _rejects(fleet, names, ev, demand)


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
) -> FleetDecision:
    """``decide()`` over the named nodes of ``fleet`` (pure): evaluate, score, choose.

    The chosen node, its GPUs, every score and every reject equal ``decide()``'s on the same
    nodes (``FleetDecision.decision()`` is its very ``Decision``); ties go to the name that
    sorts first.
    """
    prof = profile or resolve_profile(demand)
    ev = _evaluate(fleet, names, demand, reservations, now=now, settings=settings, pod_uid=pod_uid)
    fits = _fits(fleet, ev, demand.gpus)
    rejects = _rejects(fleet, names, ev, demand)
    fit_rows = ev.rows[ev.code[ev.rows] == _OK]
    fit_names = list(fits)
    spanning = frozenset(compress(fit_names, (~ev.same_island[fit_rows]).tolist()))
    if not fit_names:
        return FleetDecision(None, fits, {}, rejects, spanning)
    values = _scores(fleet, ev, demand, prof)[fit_rows]
    scores = dict(zip(fit_names, values.tolist(), strict=True))
    best = min(fit_names[i] for i in np.flatnonzero(values == values.max()).tolist())
    return FleetDecision(
        Fit(best, fits[best], best not in spanning), fits, scores, rejects, spanning
    )


def _clamp(x: FloatArray) -> FloatArray:
    return np.maximum(0.0, np.minimum(MAX_SCORE, x))


def _scores(fleet: Fleet, ev: _Evaluation, demand: Demand, profile: Profile) -> FloatArray:
    """The profile's score by row, with the arithmetic of ``policies.score`` (same bits)."""
    chosen = ev.chosen
    free_after = fleet.present & fleet.healthy & ~fleet.held & ~ev.hidden & ~chosen
    free = np.where(free_after, fleet.free, 0).sum(axis=0)
    some = fleet.total_sum > 0
    fraction = np.zeros(fleet.capacity)
    fraction[some] = np.maximum(0.0, np.minimum(1.0, free[some] / fleet.total_sum[some]))
    k = demand.gpus
    pairs = k * (k - 1) // 2
    link_fraction = np.ones(fleet.capacity)
    if pairs and not fleet.complete[ev.chosen.any(axis=0)].all():
        linked = np.zeros(fleet.capacity, dtype=np.int64)
        for a in range(fleet.width):
            linked += chosen[a] * _count(chosen & fleet.linked[a])
        link_fraction = (linked // 2) / pairs
    loads = np.maximum(0, ev.loads).astype(np.float64)
    policy_values: dict[str, Callable[[], FloatArray]] = {
        "vram-binpack": lambda: _clamp(MAX_SCORE * (1.0 - fraction)),
        "vram-spread": lambda: _clamp(MAX_SCORE * fraction),
        "in-flight-penalty": lambda: _clamp(MAX_SCORE * np.power(0.5, loads)),
        "cache-affinity": lambda: np.where(fleet.cached(demand.model_id), MAX_SCORE, 0.0),
        "nvlink-quality": lambda: _clamp(MAX_SCORE * link_fraction),
    }
    total = np.zeros(fleet.capacity)
    for name, weight in profile.weights:
        if name not in policy_values:  # a policy registered without its fleet form
            raise NotImplementedError(f"policy {name!r} has no fleet form in placement.fleet")
        total = total + policy_values[name]() * weight
    return _clamp(total / profile.total_weight)


__all__ = [
    "FLEET_POLICIES",
    "MAX_GPUS_PER_NODE",
    "REASON_NO_REPORT",
    "Fleet",
    "FleetDecision",
    "FleetError",
    "FleetRow",
    "FleetVerdict",
    "decide_fleet",
    "evaluate",
    "verdict",
]
