"""The fleet's row store: every node's GPU state as numpy arrays, updated one node at a time.

Layout: per-GPU arrays are ``slot x row`` (slot = the node's GPUs in index order, row = one
node), so a reduction over a node's GPUs is a handful of additions of long contiguous vectors,
which numpy does fast; per-node arrays are indexed by row. Rows are reused lowest first, and a
request is evaluated over every row in use at once (``span``); the named rows are picked out at
the end (``rows_of``). Byte counts are exact in float64 (a node's total at most 2**53 bytes, as
in reports), which lets the scores match ``placement.reference`` bit for bit.

The store keeps the reservations its requests count in ``claims`` (``placement.claims``: kept
resolved against the rows); ``claims_of`` gives the same arrays from any other iterable of
reservations by looping over it.

Pure: no I/O, no clock. A ``Fleet`` is mutable (rows change as reports arrive) and not locked:
a caller that updates it from one thread while another evaluates must serialize the two.
Reading changes nothing but caches (UUID tuples, the rows of the last names asked for).
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import math
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any, cast

import numpy as np

from placement.claims import Claims, Sums, plain_sums
from placement.fit import describe_gpus, product_key
from placement.fleet.rows import (
    SLOT_RADIX,
    BoolArray,
    FleetError,
    FleetRow,
    FloatArray,
    IntArray,
    ObjectArray,
    RowArray,
    topology,
    validate,
)
from placement.model import GpuState, NodeState, Reservation
from placement.shape import NvLink
from placement.topology import layout_of

LOW = np.iinfo(np.int64).min
"""A byte count below any: a slot past a row's GPUs in the per-row tables."""
HIGH = np.iinfo(np.int64).max
"""A byte count above any: the least free memory of a row with no GPU unallocated."""


def names_hash(names: Iterable[str]) -> int:
    """``hash()`` of the set of ``names`` (Python's, keyed per process): equal for two orders of
    one set of names, and for two different sets only by a collision of that keyed hash. A
    ``frozenset`` keeps each name's hash as a machine word, with no int object per name: at
    thousands of names that is about a third cheaper than summing ``hash()`` of each."""
    return hash(frozenset(names))


class Fleet:
    """Every node's GPU state as arrays, updated one node at a time.

    Per GPU (``slot x row``): total and free bytes, whether free is known, healthy, in MIG
    mode, held by a pod, not allocated to any pod, present, product id, NVLink island id, UUID
    rank; NVLink adjacency is ``row x slot x slot``. Per node (``row``): GPU count, lease
    renewed at (and whether seen), lease duration, observed at, remote bandwidth, agent error,
    described-GPUs id, name rank. Beside them, what ``fit()``'s first rules read of a row for a
    pod that holds no GPU (its totals in order, its best island's, its unallocated GPUs' count
    and least free memory: the lean path of ``evaluation``), kept as reports arrive rather than
    worked out per request. Cached models and GPU holders are indexed by id. ``replace`` swaps
    one node's row when a report arrives, ``renew`` records a Lease event, ``remove`` drops a
    node. Rows are reused lowest first, and a request reads only the rows up to the highest one
    in use (``span``). What a request computes from these arrays lives beside the store
    (``placement.fleet.evaluation`` and the modules after it).
    """

    def __init__(self, nodes: Iterable[NodeState] = (), *, capacity: int = 64, width: int = 8):
        self._index: dict[str, int] = {}
        self._rows: list[FleetRow | None] = []
        self._spare: list[int] = []
        self._products: dict[str, int] = {}
        self._nvlinks: dict[NvLink, int] = {}
        self.nvlinks: list[NvLink] = []  # by id: each NVLink layout a node has had
        # The device plugin's answers by (NVLink id, ...): ids are cheaper keys than layouts.
        self.plugin_memo: dict[tuple[int, ...], Any] = {}
        # Reasons worded once per demand and row version (``placement.fleet.rejects``).
        self.reason_memo: dict[tuple[Any, ...], dict[int, str]] = {}
        # Lean answers per demand shape, kept across requests (``placement.fleet.standing``).
        self.standing_memo: dict[tuple[Any, ...], Any] = {}
        # Whether a whole-fleet decision for a demand last found no node (``decide_fleet``).
        self.refused_memo: dict[tuple[Any, ...], bool] = {}
        self._described: dict[str, int] = {}
        self._model_rows: dict[str, set[int]] = {}
        # By model asked for (256 at most): its rows as a mask, kept current row by row.
        self._model_masks: dict[str, BoolArray] = {}
        self._holder_rows: dict[str, set[int]] = {}
        self._combos: dict[int, tuple[str, ...]] = {}  # (generation, slot mask) -> UUIDs
        self._generations = 0
        self._span = 0
        self._sorted: list[str] = []  # the names held, sorted
        self._layout = 0  # changes whenever a node is added or removed (rows_of's memo)
        self._last_rows: tuple[int, tuple[str, ...], RowArray] | None = None
        self._every: tuple[int, tuple[str, ...], RowArray] | None = None  # every_name's memo
        self._every_hash: tuple[int, int] | None = None  # every_hash's memo
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
        # free * SLOT_RADIX + slot: the "tightest GPU" sort key, distinct within a row.
        self.free_key: IntArray = grow("free_key", g, 0, np.int64)
        self.free_known: BoolArray = grow("free_known", g, False, np.bool_)
        self.healthy: BoolArray = grow("healthy", g, False, np.bool_)
        self.mig: BoolArray = grow("mig", g, False, np.bool_)
        # healthy, not in MIG mode, held by no pod, free memory known: a candidate if it is
        # large enough, unreserved and free enough
        self.open: BoolArray = grow("open", g, False, np.bool_)
        self.held: BoolArray = grow("held", g, False, np.bool_)
        self.present: BoolArray = grow("present", g, False, np.bool_)
        # Not allocated to any pod: healthy, not in MIG mode, held by no pod (the GPUs the
        # kubelet may hand out, for a pod that holds none itself).
        self.unalloc: BoolArray = grow("unalloc", g, False, np.bool_)
        self.product: IntArray = grow("product", g, -1, np.int64)
        self.island: IntArray = grow("island", g, -1, np.int64)
        self.uuid_rank: IntArray = grow("uuid_rank", g, 0, np.int64)
        self.uuid_1: ObjectArray = grow("uuid_1", g, None, object)  # (uuid,) tuples
        # row x slot x slot: a row's adjacency is one block, gathered fast for a few rows
        self.linked: BoolArray = grow("linked", (capacity, width, width), False, np.bool_)
        self.gpu_count: IntArray = grow("gpu_count", (capacity,), 0, np.int64)
        self.island_count: IntArray = grow("island_count", (capacity,), 0, np.int64)
        self.nvlink_id: IntArray = grow("nvlink_id", (capacity,), -1, np.int64)  # nvlinks[id]
        self.complete: BoolArray = grow("complete", (capacity,), True, np.bool_)  # all linked
        self.total_sum: IntArray = grow("total_sum", (capacity,), 0, np.int64)
        # What fit()'s rules read of a row that no pod changes, kept as its report arrives so
        # that a request checks them per row, not per GPU (``evaluation``'s lean path):
        # the totals in descending order, slot j the (j+1)-th largest (LOW past the GPUs);
        # per j, the largest (j+1)-th total of any NVLink island with more than j GPUs (LOW
        # where none has) and the size of the largest island; the unallocated GPUs' count,
        # whether one has no known free memory, and the least free memory among the others.
        self.total_desc: IntArray = grow("total_desc", g, LOW, np.int64)
        self.island_desc: IntArray = grow("island_desc", g, LOW, np.int64)
        self.island_max: IntArray = grow("island_max", (capacity,), 0, np.int64)
        self.unalloc_count: IntArray = grow("unalloc_count", (capacity,), 0, np.int64)
        self.unalloc_unknown: BoolArray = grow("unalloc_unknown", (capacity,), False, np.bool_)
        self.unalloc_min_free: IntArray = grow("unalloc_min_free", (capacity,), HIGH, np.int64)
        self.lease_seen: BoolArray = grow("lease_seen", (capacity,), False, np.bool_)
        self.lease_at: FloatArray = grow("lease_at", (capacity,), 0.0, np.float64)
        self.lease_duration: FloatArray = grow("lease_duration", (capacity,), 0.0, np.float64)
        self.observed_at: FloatArray = grow("observed_at", (capacity,), 0.0, np.float64)
        # bytes per second from remote storage, 0 when the node reports none (no load budget)
        self.remote_bw: FloatArray = grow("remote_bw", (capacity,), 0.0, np.float64)
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

    def every_name(self) -> tuple[str, ...]:
        """Every node the fleet holds, as one tuple kept until a node is added or removed:
        ``rows_of`` answers that tuple from memory whatever it was asked in between (a decision
        over the whole fleet, as ``extender.ahead`` makes, between filters over a few nodes)."""
        every = self._every
        if every is None or every[0] != self._layout:
            names = tuple(self._index)
            rows = np.fromiter(self._index.values(), np.intp, len(names))
            rows.flags.writeable = False
            every = self._every = (self._layout, names, rows)
        return every[1]

    def every_hash(self) -> int:
        """``names_hash`` of every name the fleet holds, kept until a node is added or
        removed: what ``names_hash`` of a request that names every node, in any order, comes
        to."""
        memo = self._every_hash
        if memo is None or memo[0] != self._layout:
            memo = self._every_hash = (self._layout, names_hash(self.every_name()))
        return memo[1]

    def node(self, name: str) -> NodeState:
        """The node state behind ``name``, with its Lease as last recorded; ``KeyError`` when
        the fleet does not hold it."""
        r = self._index[name]
        node = self.row(r).node
        renewed = float(self.lease_at[r]) if self.lease_seen[r] else None
        duration = float(self.lease_duration[r])
        if node.lease_renewed_at == renewed and node.lease_duration_s == duration:
            return node
        return dataclasses.replace(node, lease_renewed_at=renewed, lease_duration_s=duration)

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
        problems = validate(node)
        if problems:
            raise FleetError(f"node {node.name}: {'; '.join(problems)}")
        if len(node.gpus) > self.width:
            self._allocate(self.capacity, len(node.gpus))
        r = self._row_for(node.name)
        gpus = sorted(node.gpus, key=lambda g: g.index)
        uuids = [g.uuid for g in gpus]
        links = tuple((g.uuid, g.nvlink_peers) for g in gpus)
        old = self._rows[r]
        if old is not None and old.topology == links:
            island_of, linked, layout = old.island_of, old.linked, old.layout
        else:
            island_of, linked = topology(node, uuids)
            n = len(uuids)
            layout = layout_of(island_of, bool(linked.sum() == n * (n - 1)))

        self._clear(r)
        self._generations += 1
        self.generation[r] = self._generations
        if len(self._combos) > 4 * self.capacity + 65536:
            self._combos.clear()
        self._write_gpus(r, gpus, island_of, linked)
        self.error[r] = bool(node.agent_error)
        self.observed_at[r] = node.observed_at
        self.remote_bw[r] = node.remote_bytes_per_s or 0.0
        self._set_lease(r, node.lease_renewed_at, node.lease_duration_s)
        described = describe_gpus(node.gpus)
        self.described[r] = self._described.setdefault(described, len(self._described))
        row = FleetRow(
            node=node,
            uuids=tuple(uuids),
            slot={u: s for s, u in enumerate(uuids)},
            holders=tuple(g.holder_pod_uid for g in gpus),
            described=described,
            topology=links,
            island_of=island_of,
            linked=linked,
            layout=layout,
        )
        if layout not in self._nvlinks:
            self._nvlinks[layout] = len(self.nvlinks)
            self.nvlinks.append(layout)
        self.nvlink_id[r] = self._nvlinks[layout]
        self._rows[r] = row
        self._index_row(r, row)
        self.claims.node_changed(node.name)

    def _row_for(self, name: str) -> int:
        """The row ``name`` holds, taken out of the indexes; a new one (the lowest free, the
        name ranked among the others) when the fleet does not hold it yet."""
        r = self._index.get(name)
        if r is not None:
            self._unindex(r)
            return r
        if not self._spare:
            self._allocate(2 * self.capacity, self.width)
        r = heapq.heappop(self._spare)
        self._index[name] = r
        self._layout += 1
        self._span = max(self._span, r + 1)
        at = bisect.bisect_left(self._sorted, name)
        self._sorted.insert(at, name)
        self.name_rank[self.name_rank >= at] += 1  # rows not in use hold stale ranks
        self.name_rank[r] = at
        return r

    def _write_gpus(
        self, r: int, gpus: list[GpuState], island_of: tuple[int, ...], linked: BoolArray
    ) -> None:
        """Fill row ``r``'s per-GPU arrays (``gpus`` in index order) and its GPU sums."""
        n = len(gpus)
        uuids = [g.uuid for g in gpus]
        rank = [0] * n
        for position, s in enumerate(sorted(range(n), key=lambda s: uuids[s])):
            rank[s] = position
        self.total[:n, r] = [g.total_bytes for g in gpus]
        self.free[:n, r] = [g.free_bytes or 0 for g in gpus]
        self.free_key[:n, r] = [(g.free_bytes or 0) * SLOT_RADIX + s for s, g in enumerate(gpus)]
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
        unalloc = [g.healthy and not g.mig_enabled and g.holder_pod_uid is None for g in gpus]
        self.unalloc[:n, r] = unalloc
        self.unalloc_count[r] = sum(unalloc)
        known = [g.free_bytes for g, u in zip(gpus, unalloc, strict=True) if u]
        self.unalloc_unknown[r] = None in known
        self.unalloc_min_free[r] = min((f for f in known if f is not None), default=HIGH)
        self.total_desc[:n, r] = sorted((g.total_bytes for g in gpus), reverse=True)
        by_island: dict[int, list[int]] = {}
        for g, island in zip(gpus, island_of, strict=True):
            by_island.setdefault(island, []).append(g.total_bytes)
        for totals in by_island.values():
            totals.sort(reverse=True)
            for j, t in enumerate(totals):
                self.island_desc[j, r] = max(int(self.island_desc[j, r]), t)
        self.island_max[r] = max((len(t) for t in by_island.values()), default=0)
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

    def renew(self, name: str, renewed_at: float | None, duration_s: float) -> None:
        """Record a Lease event for ``name`` without touching its GPUs."""
        r = self._index[name]
        bad = [
            f"{field} must be finite, got {value!r}"
            for field, value in (("lease_renewed_at", renewed_at), ("lease_duration_s", duration_s))
            if value is not None and not math.isfinite(value)
        ]
        if bad:
            raise FleetError(f"node {name}: {'; '.join(bad)}")
        # Only the arrays (``node()`` reads the Lease back): agents renew every few seconds,
        # and a new node state and row per renewal took 8 us under the state lock.
        self._set_lease(r, renewed_at, duration_s)

    def reobserve(self, node: NodeState) -> None:
        """Take a report of ``node`` that differs from the one held only in its times (the same
        GPUs published again, a Lease renewed): write the times and redo nothing else. Any other
        report goes through ``replace``."""
        r = self._index.get(node.name)
        held = None if r is None else self._rows[r]
        if (
            r is None
            or held is None
            or not math.isfinite(node.observed_at)
            or (
                dataclasses.replace(
                    held.node,
                    observed_at=node.observed_at,
                    lease_renewed_at=node.lease_renewed_at,
                    lease_duration_s=node.lease_duration_s,
                )
                != node
            )
        ):
            self.replace(node)
        else:
            self.renew(node.name, node.lease_renewed_at, node.lease_duration_s)
            self._rows[r] = dataclasses.replace(self.row(r), node=node)
            self.observed_at[r] = node.observed_at

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
        self._generations += 1  # a new version of the row: empty
        self.generation[r] = self._generations
        self._rows[r] = None
        heapq.heappush(self._spare, r)
        while self._span and self._rows[self._span - 1] is None:
            self._span -= 1
        self.claims.node_changed(name)

    def _clear(self, r: int) -> None:
        for a in (self.total, self.free, self.free_key, self.uuid_rank):
            a[:, r] = 0
        for b in (
            self.free_known, self.healthy, self.mig, self.open, self.held, self.present,
            self.unalloc,
        ):  # fmt: skip
            b[:, r] = False
        self.total_desc[:, r] = LOW
        self.island_desc[:, r] = LOW
        self.island_max[r] = 0
        self.unalloc_count[r] = 0
        self.unalloc_unknown[r] = False
        self.unalloc_min_free[r] = HIGH
        self.product[:, r] = -1
        self.island[:, r] = -1
        self.nvlink_id[r] = -1
        self.remote_bw[r] = 0.0
        self.uuid_1[:, r] = None
        self.linked[r] = False

    def _set_lease(self, r: int, renewed_at: float | None, duration_s: float) -> None:
        self.lease_seen[r] = renewed_at is not None
        self.lease_at[r] = 0.0 if renewed_at is None else renewed_at
        self.lease_duration[r] = duration_s

    def _index_row(self, r: int, row: FleetRow) -> None:
        """Put row ``r`` into the model and holder indexes."""
        for m in row.node.cached_models:
            self._model_rows.setdefault(m.model_id, set()).add(r)
            self._mark_model(m.model_id, r, True)
        for h in row.holders:
            if h is not None:
                self._holder_rows.setdefault(h, set()).add(r)

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
        for m in row.node.cached_models:
            self._mark_model(m.model_id, r, False)

    def _mark_model(self, model_id: str, r: int, cached: bool) -> None:
        if (mask := self._model_masks.get(model_id)) is not None and r < len(mask):
            mask[r] = cached

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
        every = self._every
        if every is not None and names is every[1] and every[0] == self._layout:
            return every[2]
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
        """By row (``span`` rows): whether the node has ``model_id``'s weights on local disk
        (read-only: kept per model and updated as reports arrive, not built per request)."""
        mask = self._model_masks.get(model_id)
        if mask is None or len(mask) != self.span:
            mask = np.zeros(self.span, dtype=np.bool_)
            rows = self._model_rows.get(model_id)
            if model_id and rows:
                mask[list(rows)] = True
            if len(self._model_masks) > 256:  # model ids come from pods: keep a few
                self._model_masks.clear()
            self._model_masks[model_id] = mask
        view = mask[:]
        view.flags.writeable = False
        return view

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

    def claims_of(self, reservations: Iterable[Reservation], now: float, pod_uid: str) -> Sums:
        """What the active reservations other than ``pod_uid``'s add up to over ``span`` rows
        (``claims.Sums``): the fleet's own ``claims`` from their sums, any other reservations
        by the plain loop (``claims.plain_sums``)."""
        if reservations is self.claims:
            return self.claims.resolve(now, pod_uid)
        return plain_sums(self, reservations, now, pod_uid)


__all__ = ["Fleet"]
