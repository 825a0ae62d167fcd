"""Reservations resolved against a fleet's rows once, and kept current, for the hot path.

A filter request needs from the reservations: the GPUs they predict for pods that have not got
their GPUs yet (hidden from the prediction and the scores), how many GPUs each such pod still
waits for on each node (the kubelet will hand those out before or beside the next pod's), and
the loads in flight on each node. Resolving each reservation's UUIDs to array slots on every
request costs a Python loop over all of them, and a burst of scale-ups holds hundreds at once.
``Claims`` resolves a reservation when it is put, and again only when its node's row changes
(the fleet tells it), and keeps the sums as arrays: per GPU, how many reservations hide it; per
node, how many GPUs are promised, which counts are waiting (as an id, ``sizes_of``), how
many loads are in flight, and how many cold loads and the bytes they have still to move (the
load budget, ``placement.loadbudget``). A request then reads the sums and subtracts the few reservations that
do not count for it: the pod's own, and those expired since the last purge.

Resolving a reservation also reconciles it (``placement.lifecycle.reconcile``): once its node
shows the pod holding GPUs, the reservation names those, not the predicted ones.

The rules are ``fit.hidden_gpus``, ``fit.pending_counts``, ``policies.loads_in_flight`` and
``loadbudget.cold_in_flight``, the
same as the fleet's plain loop over a list of reservations; a hypothesis test keeps the two
equal under any order of puts, drops, reports and removals. Pure: no clock (``now`` is an
argument), not locked (the fleet's owner serializes updates and reads, as for the fleet itself).
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from placement.lifecycle import reconcile
from placement.loadbudget import left_to_load
from placement.model import NodeState, Reservation

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
CountArray = npt.NDArray[np.int32]


_SIZES: dict[tuple[int, ...], int] = {(): 0}
_SIZE_LIST: list[tuple[int, ...]] = [()]


def sizes_id(sizes: Iterable[int]) -> int:
    """A small integer for a multiset of GPU counts (sorted), the same in every fleet."""
    key = tuple(sorted(sizes))
    found = _SIZES.get(key)
    if found is None:
        found = _SIZES[key] = len(_SIZE_LIST)
        _SIZE_LIST.append(key)
    return found


def sizes_of(size_id: int) -> tuple[int, ...]:
    """The GPU counts (sorted) behind ``sizes_id``."""
    return _SIZE_LIST[size_id]


class Sums(NamedTuple):
    """What the reservations that count for one request add up to, over ``span`` rows.

    ``hidden`` (``slot x row``): GPUs predicted for pods that have not got theirs yet;
    ``loads``: loads in flight per row; ``pending``: GPUs promised to such pods per row;
    ``sizes``: the promised counts per row, one per pod, as a ``sizes_id``; ``cold_loads``
    and ``cold_bytes``: per row, the cold loads in flight and the bytes they have still to
    move (``loadbudget.cold_in_flight``).
    """

    hidden: BoolArray
    loads: IntArray
    pending: IntArray
    sizes: IntArray
    cold_loads: IntArray
    cold_bytes: IntArray


class Row(Protocol):
    """What the claims read of one row: which of a reservation's GPUs it hides there, and the
    node's report (to reconcile a reservation with the GPUs its pod got)."""

    @property
    def node(self) -> NodeState: ...

    def hidden_by(self, r: Reservation) -> set[int]: ...


class Rows(Protocol):
    """What the claims read of the fleet that owns them (``placement.fleet.Fleet``): its shape
    and where each node's row is. A protocol, so that the fleet may hold its claims without
    this module importing the fleet."""

    @property
    def width(self) -> int: ...

    @property
    def capacity(self) -> int: ...

    @property
    def span(self) -> int: ...

    def row_at(self, name: str) -> int | None: ...

    def row(self, r: int) -> Row: ...


@dataclass(frozen=True, slots=True)
class _Share:
    """What one reservation adds to the sums: the slots it hides on its row, whether its
    load counts as in flight there, and the bytes its cold load has still to move (0: none)."""

    row: int
    slots: tuple[int, ...]
    loading: bool
    cold: int = 0


class Claims:
    """The reservations a fleet's requests count, keyed by pod UID, with their sums.

    Iterating yields the reservations (active or not: readers check ``active(now)``), so a
    ``Claims`` is also what ``fit()`` and the fleet's functions take as ``reservations``; the
    fleet's own ``claims`` is read from its sums instead of looped over.
    """

    def __init__(self, fleet: Rows) -> None:
        self._fleet = fleet
        self._by_uid: dict[str, Reservation] = {}
        self._by_node: dict[str, set[str]] = {}
        self._shares: dict[str, _Share] = {}  # only reservations whose node the fleet holds
        self._hidden: CountArray = np.zeros((fleet.width, fleet.capacity), dtype=np.int32)
        self._hidden_any: BoolArray = np.zeros((fleet.width, fleet.capacity), dtype=np.bool_)
        self._loads: IntArray = np.zeros(fleet.capacity, dtype=np.int64)
        self._pending: IntArray = np.zeros(fleet.capacity, dtype=np.int64)
        self._sizes: IntArray = np.zeros(fleet.capacity, dtype=np.int64)
        self._cold_loads: IntArray = np.zeros(fleet.capacity, dtype=np.int64)
        self._cold_bytes: IntArray = np.zeros(fleet.capacity, dtype=np.int64)
        # By row: bumped whenever a reservation comes into or leaves the row's sums, so a
        # reader that keeps answers per row knows which to redo (``placement.fleet.standing``).
        self._version: IntArray = np.zeros(fleet.capacity, dtype=np.int64)
        self._changes = 0
        self._views: tuple[int, Sums] | None = None  # (span, the sums as read-only views)
        self._counts: dict[int, Counter[int]] = {}  # by row: the promised counts, one per pod
        # Reservations that expire, sorted by expiry: those at or before ``now`` are the only
        # ones a request must take out of the sums.
        self._expiry: list[float] = []
        self._expiring: list[str] = []
        # Told (pod UID, holds now) whenever a pod comes to hold a reservation or stops
        # holding one: a reader that counts by membership keeps its count without a scan.
        self.on_membership: Callable[[str, bool], None] | None = None

    # -- the mapping ------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Reservation]:
        return iter(self._by_uid.values())

    def __len__(self) -> int:
        return len(self._by_uid)

    def __contains__(self, pod_uid: object) -> bool:
        return pod_uid in self._by_uid

    def get(self, pod_uid: str) -> Reservation | None:
        """The pod's reservation, or ``None``."""
        return self._by_uid.get(pod_uid)

    def on_node(self, node: str) -> list[Reservation]:
        """The reservations on ``node``."""
        return [self._by_uid[u] for u in self._by_node.get(node, ())]

    def put(self, r: Reservation) -> None:
        """Add ``r``, replacing the pod's previous reservation."""
        replaced = self._remove(r.pod_uid) is not None
        self._by_uid[r.pod_uid] = r
        self._by_node.setdefault(r.node, set()).add(r.pod_uid)
        if r.expires_at is not None:
            at = bisect.bisect_right(self._expiry, r.expires_at)
            self._expiry.insert(at, r.expires_at)
            self._expiring.insert(at, r.pod_uid)
        self._share(r)
        if not replaced and self.on_membership is not None:
            self.on_membership(r.pod_uid, True)

    def pop(self, pod_uid: str) -> Reservation | None:
        """Remove the pod's reservation and return it (``None`` when it has none)."""
        r = self._remove(pod_uid)
        if r is not None and self.on_membership is not None:
            self.on_membership(pod_uid, False)
        return r

    def _remove(self, pod_uid: str) -> Reservation | None:
        r = self._by_uid.pop(pod_uid, None)
        if r is None:
            return None
        uids = self._by_node[r.node]
        uids.discard(pod_uid)
        if not uids:
            del self._by_node[r.node]
        if r.expires_at is not None:
            # Equal expiries sit side by side; search from the first of them.
            start = bisect.bisect_left(self._expiry, r.expires_at)
            try:
                at = self._expiring.index(pod_uid, start)
            except ValueError:  # an expiry that does not sort (NaN): anywhere
                at = self._expiring.index(pod_uid)
            del self._expiry[at], self._expiring[at]
        self._unshare(pod_uid)
        return r

    def clear(self) -> None:
        """Remove every reservation."""
        for uid in list(self._by_uid):
            self.pop(uid)

    def expired(self, now: float) -> list[str]:
        """The pods whose reservations are no longer active at ``now``, soonest expired first."""
        return self._expiring[: bisect.bisect_right(self._expiry, now)]

    # -- the sums -----------------------------------------------------------------------------

    def _fit_shape(self) -> None:
        """Grow the sums with the fleet (rows and slots keep their places when it grows)."""
        shape = (self._fleet.width, self._fleet.capacity)
        if self._hidden.shape != shape:
            hidden = np.zeros(shape, dtype=np.int32)
            old_w, old_c = self._hidden.shape
            hidden[:old_w, :old_c] = self._hidden
            loads = np.zeros(shape[1], dtype=np.int64)
            loads[:old_c] = self._loads
            pending = np.zeros(shape[1], dtype=np.int64)
            pending[:old_c] = self._pending
            sizes = np.zeros(shape[1], dtype=np.int64)
            sizes[:old_c] = self._sizes
            cold_loads = np.zeros(shape[1], dtype=np.int64)
            cold_loads[:old_c] = self._cold_loads
            cold_bytes = np.zeros(shape[1], dtype=np.int64)
            cold_bytes[:old_c] = self._cold_bytes
            version = np.zeros(shape[1], dtype=np.int64)
            version[:old_c] = self._version
            self._version = version
            self._views = None
            self._hidden, self._loads, self._hidden_any = hidden, loads, hidden > 0
            self._pending, self._sizes = pending, sizes
            self._cold_loads, self._cold_bytes = cold_loads, cold_bytes

    def _share(self, r: Reservation) -> None:
        """Resolve ``r`` against its node's row and add it to the sums."""
        row_at = self._fleet.row_at(r.node)
        if row_at is None:
            return  # not held: it counts nowhere until its node is reported
        self._fit_shape()
        row = self._fleet.row(row_at)
        self._by_uid[r.pod_uid] = reconcile(r, row.node)
        slots = row.hidden_by(r)
        cold = left_to_load(row.node, r)
        share = _Share(row_at, tuple(sorted(slots)), r.in_flight(), cold)
        self._shares[r.pod_uid] = share
        self._bump(row_at)
        self._add(self._hidden, self._loads, share, 1)
        self._add_cold(self._cold_loads, self._cold_bytes, share, 1)
        self._mark(share)
        self._count(share, 1)

    def _count(self, share: _Share, sign: int) -> None:
        """Keep the row's promised counts (``_pending``, ``_sizes``) with ``share`` in or out."""
        if not share.slots:
            return
        counts = self._counts.setdefault(share.row, Counter())
        counts[len(share.slots)] += sign
        if counts[len(share.slots)] <= 0:
            del counts[len(share.slots)]
        self._pending[share.row] += sign * len(share.slots)
        self._sizes[share.row] = sizes_id(counts.elements())
        if not counts:
            del self._counts[share.row]

    def _mark(self, share: _Share) -> None:
        """Keep ``_hidden_any`` (any reservation hides the GPU) equal to ``_hidden > 0``."""
        if share.slots:
            at = (list(share.slots), share.row)
            self._hidden_any[at] = self._hidden[at] > 0

    def _unshare(self, pod_uid: str) -> None:
        share = self._shares.pop(pod_uid, None)
        if share is not None:
            self._bump(share.row)
            self._add(self._hidden, self._loads, share, -1)
            self._add_cold(self._cold_loads, self._cold_bytes, share, -1)
            self._mark(share)
            self._count(share, -1)

    def _bump(self, row: int) -> None:
        self._changes += 1
        self._version[row] = self._changes

    def versions(self) -> IntArray:
        """By row (``span`` rows, read-only): a number that changes whenever a reservation
        comes into or leaves the row's sums."""
        self._fit_shape()
        view = self._version[: self._fleet.span]
        view.flags.writeable = False
        return view

    @staticmethod
    def _add(hidden: CountArray, loads: IntArray, share: _Share, sign: int) -> None:
        if share.slots:
            hidden[list(share.slots), share.row] += sign
        if share.loading:
            loads[share.row] += sign

    @staticmethod
    def _add_cold(cold_loads: IntArray, cold_bytes: IntArray, share: _Share, sign: int) -> None:
        if share.cold:
            cold_loads[share.row] += sign
            cold_bytes[share.row] += sign * share.cold

    def node_changed(self, node: str) -> None:
        """The fleet replaced or removed ``node``'s row: resolve its reservations again."""
        uids = self._by_node.get(node)
        if not uids:
            return
        for uid in uids:
            self._unshare(uid)
        for uid in uids:
            self._share(self._by_uid[uid])

    def _left_out(self, now: float, pod_uid: str) -> list[str]:
        """The reservations in the sums that do not count for ``pod_uid`` at ``now``: the
        expired ones and its own."""
        left_out = [u for u in self.expired(now) if u in self._shares]
        if pod_uid in self._shares and pod_uid not in left_out:
            left_out.append(pod_uid)
        return left_out

    def rows_left_out(self, now: float, pod_uid: str) -> list[int]:
        """The rows whose sums ``resolve(now, pod_uid)`` gives differ from the sums kept (their
        ``versions`` say nothing of it)."""
        return [self._shares[u].row for u in self._left_out(now, pod_uid)]

    def resolve(self, now: float, pod_uid: str) -> Sums:
        """The sums of the active reservations other than ``pod_uid``'s (``Sums``). The
        fleet's plain loop gives the same arrays. They may be read-only views of the sums,
        valid until the claims or the fleet change."""
        self._fit_shape()
        span = self._fleet.span
        left_out = self._left_out(now, pod_uid)
        if not left_out:  # the sums as they are: read-only views, no copy
            if self._views is not None and self._views[0] == span:
                return self._views[1]
            views = Sums(
                self._hidden_any[:, :span],
                self._loads[:span],
                self._pending[:span],
                self._sizes[:span],
                self._cold_loads[:span],
                self._cold_bytes[:span],
            )
            for view in views:
                view.flags.writeable = False
            self._views = (span, views)
            return views
        hidden, loads = self._hidden[:, :span].copy(), self._loads[:span].copy()
        pending, sizes = self._pending[:span].copy(), self._sizes[:span].copy()
        cold_loads, cold_bytes = self._cold_loads[:span].copy(), self._cold_bytes[:span].copy()
        taken: dict[int, Counter[int]] = {}
        for uid in left_out:
            share = self._shares[uid]
            self._add(hidden, loads, share, -1)
            self._add_cold(cold_loads, cold_bytes, share, -1)
            if share.slots:
                pending[share.row] -= len(share.slots)
                taken.setdefault(share.row, Counter())[len(share.slots)] += 1
        for row, out in taken.items():
            sizes[row] = sizes_id((self._counts[row] - out).elements())
        return Sums(hidden > 0, loads, pending, sizes, cold_loads, cold_bytes)


def plain_sums(fleet: Rows, reservations: Iterable[Reservation], now: float, pod_uid: str) -> Sums:
    """What the active reservations other than ``pod_uid``'s add up to over the fleet's
    ``span`` rows, by a plain loop over them (pure): the rules of ``fit.hidden_gpus``,
    ``fit.pending_counts``, ``policies.loads_in_flight`` and ``loadbudget.cold_in_flight``, which
    a ``Claims`` keeps as sums."""
    span = fleet.span
    hidden = np.zeros((fleet.width, span), dtype=np.bool_)
    loading: list[int] = []  # a row per load in flight
    cold_loads = np.zeros(span, dtype=np.int64)
    cold_bytes = np.zeros(span, dtype=np.int64)
    slots: list[int] = []  # (slot, row) of each hidden GPU
    slot_rows: list[int] = []
    counts: dict[int, list[int]] = {}  # by row: the GPUs promised, one count per pod
    for res in reservations:
        if res.pod_uid == pod_uid:
            continue
        r = fleet.row_at(res.node)
        if r is None or not res.active(now):
            continue
        if res.in_flight():
            loading.append(r)
        row = fleet.row(r)
        cold = left_to_load(row.node, res)
        if cold:
            cold_loads[r] += 1
            cold_bytes[r] += cold
        hidden_slots = row.hidden_by(res)
        slots.extend(hidden_slots)
        slot_rows.extend([r] * len(hidden_slots))
        if hidden_slots:
            counts.setdefault(r, []).append(len(hidden_slots))
    hidden[slots, slot_rows] = True
    pending = np.zeros(span, dtype=np.int64)
    sizes = np.zeros(span, dtype=np.int64)
    for r, promised_counts in counts.items():
        pending[r] = sum(promised_counts)
        sizes[r] = sizes_id(promised_counts)
    loads = np.bincount(loading, minlength=span).astype(np.int64, copy=False)
    return Sums(hidden, loads, pending, sizes, cold_loads, cold_bytes)


__all__ = ["Claims", "Sums", "plain_sums", "sizes_id", "sizes_of"]
