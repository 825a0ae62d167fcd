"""The rules of ``fit()`` over every row of a fleet at once: one query, one evaluation.

A ``Query`` is what every fleet answer takes (the named nodes, the pod's demand, the
reservations, the time, the fit settings, the pod). ``evaluate_rows`` checks ``fit()``'s rules
in ``fit()``'s order over the rows in use, as a few dozen vector operations, and leaves a
result code per row (``CODE_OK`` or the first rule that fails), the GPUs each fit takes, and what
the reasons quote, for the modules that word reasons (``rejects``), score (``scores``) and
choose (``decision``). ``placement.reference`` is the readable definition it is held to.

Reservations are read from the fleet's own ``claims`` when a query passes those, else looped
over (``Fleet.claims_of``); both give the same arrays. Pure: ``now`` is an argument.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import compress

import numpy as np

from placement.fit import BUSY, HELD, MIG_ENABLED, RESERVED, UNHEALTHY, UNKNOWN, effective_nvlink
from placement.fleet.rows import NO_ROWS, SLOT_RADIX, BoolArray, FloatArray, IntArray, RowArray
from placement.fleet.store import Fleet
from placement.model import Demand, FitSettings, NvlinkMode, Reservation


@dataclass(frozen=True, slots=True)
class Query:
    """One pod's question to a fleet: which of ``names`` can take ``demand`` at ``now``.

    ``names`` are in request order; a name the fleet does not hold is rejected as having no
    report. ``reservations`` are the fleet's own ``claims`` (read from their sums) or any
    iterable of reservations (looped over); those of ``pod_uid`` itself are ignored, as in
    ``fit()``. ``verdict``, ``evaluate``, ``decide_fleet`` and ``score_nodes`` all take one.
    """

    names: Sequence[str]
    demand: Demand
    reservations: Iterable[Reservation]
    now: float
    settings: FitSettings = FitSettings()
    pod_uid: str = ""


MAX = np.iinfo(np.int64).max
"""A sort key out of the running."""

# Result codes, in the order fit() checks them.
CODE_OK = 0
CODE_AGENT_ERROR_NO_GPUS = 1
CODE_NO_GPUS = 2
CODE_NO_PRODUCT = 3
CODE_TOO_SMALL = 4
CODE_NO_ISLAND = 5
CODE_AGENT_ERROR = 6
CODE_NO_LEASE = 7
CODE_LEASE_OLD = 8
CODE_REPORT_OLD = 9
CODE_NOT_FREE = 10
CODE_SPLIT = 11
CODE_UNRESOLVABLE = (CODE_NO_GPUS, CODE_NO_PRODUCT, CODE_TOO_SMALL, CODE_NO_ISLAND)
CAUSES = (BUSY, HELD, MIG_ENABLED, RESERVED, UNHEALTHY, UNKNOWN)


def count(b: BoolArray) -> IntArray:
    """Per row: how many slots are true."""
    counts: IntArray = b.view(np.uint8).sum(axis=0, dtype=np.int64)
    return counts


def _smallest(key: IntArray, k: int) -> BoolArray:
    """Per row: the ``k`` slots with the smallest keys (distinct within a row; ``MAX`` for
    slots out of the running). Rows with fewer than ``k`` in the running come out garbage."""
    if k > 2:  # the k-th smallest of each row, from the rows sorted (each row contiguous)
        by_row = key.T.copy()  # a copy: the sort is in place
        by_row.sort(axis=1)
        kth: IntArray = by_row[:, min(k, by_row.shape[1]) - 1]
    else:
        w = key
        for _ in range(k - 1):
            w = np.where(w == w.min(axis=0), MAX, w)
        kth = w.min(axis=0)
    picked: BoolArray = key <= kth
    return picked


def _mark(code: IntArray, condition: BoolArray, result: int) -> None:
    """Give ``result`` to the rows that meet ``condition`` and no earlier rule."""
    code[(code == CODE_OK) & condition] = result


@dataclass(slots=True)
class Evaluation:
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
            self.why = {w: count(mask) for w, mask in self.causes().items()}
        return self.why


def evaluate_rows(fleet: Fleet, query: Query) -> Evaluation:
    """The rules of ``fit()``, checked in its order, over the rows in use at once."""
    names, demand, settings = query.names, query.demand, query.settings
    all_rows = fleet.rows_of(names)
    found = all_rows >= 0
    if found.all():
        rows, known = all_rows, list(names)
    else:
        rows = all_rows[found]
        known = list(compress(names, found.tolist()))
    hidden, loads = fleet.claims_of(query.reservations, query.now, query.pod_uid)
    k = demand.gpus
    width, span = fleet.width, fleet.span
    none = np.zeros(span, dtype=np.int64)
    ev = Evaluation(
        names=known,
        rows=rows,
        named_rows=all_rows,
        code=np.zeros(span, dtype=np.int64),
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
    vram = min(demand.vram_per_gpu, int(MAX))
    nvlink = effective_nvlink(demand, settings)
    large = _node_rules(fleet, query, ev, vram, nvlink)
    candidate = _candidates(fleet, ev, large, pod_uid=query.pod_uid, vram=vram, k=k)
    _choose(fleet, ev, candidate, k)
    if nvlink is NvlinkMode.REQUIRED:
        _mark(ev.code, ~ev.same_island, CODE_SPLIT)
    ev.chosen = ev.chosen & (ev.code == CODE_OK)
    return ev


def _node_rules(
    fleet: Fleet, query: Query, ev: Evaluation, vram: int, nvlink: NvlinkMode
) -> BoolArray:
    """The rules before free memory, in fit()'s order: GPUs, product, size, island, agent,
    Lease, report age. Returns the GPUs of the right product and size (``slot x row``)."""
    demand, k, span, code = query.demand, query.demand.gpus, fleet.span, ev.code
    error, island_count = fleet.error[:span], fleet.island_count[:span]
    empty = fleet.gpu_count[:span] == 0
    _mark(code, empty & error, CODE_AGENT_ERROR_NO_GPUS)
    _mark(code, empty, CODE_NO_GPUS)
    matching: BoolArray = fleet.present[:, :span]
    if demand.products:
        product = fleet.product[:, :span]
        accepted = np.zeros(product.shape, dtype=np.bool_)
        for i in {fleet.product_id(p) for p in demand.products} - {-1}:
            accepted |= product == i
        matching = matching & accepted
        _mark(code, count(matching) == 0, CODE_NO_PRODUCT)
    total: IntArray = fleet.total[:, :span]
    large = matching & (total >= vram)
    ev.large = count(large)
    _mark(code, ev.large < k, CODE_TOO_SMALL)
    if nvlink is NvlinkMode.REQUIRED:
        best = np.zeros(span, dtype=np.int64)
        for i in range(int(island_count.max(initial=0))):
            best = np.maximum(best, count(large & (fleet.island[:, :span] == i)))
        ev.best_island = best
        _mark(code, best < k, CODE_NO_ISLAND)
    _mark(code, error, CODE_AGENT_ERROR)
    _mark(code, ~fleet.lease_seen[:span], CODE_NO_LEASE)
    ev.lease_age = query.now - fleet.lease_at[:span]
    _mark(code, ev.lease_age > fleet.lease_duration[:span], CODE_LEASE_OLD)
    ev.report_age = query.now - fleet.observed_at[:span]
    _mark(code, ev.report_age > query.settings.max_report_age_s, CODE_REPORT_OLD)
    return large


def _candidates(
    fleet: Fleet, ev: Evaluation, large: BoolArray, *, pod_uid: str, vram: int, k: int
) -> BoolArray:
    """The candidates: GPUs of the right product and size that are open (or held by the pod
    itself), not reserved, and free enough. Counts them, marks the rows with too few, and
    leaves the causes of the others for the reasons (``Evaluation.causes``)."""
    span, hidden = fleet.span, ev.hidden
    # The arrays cut to the rows in use (views, no copies).
    free: IntArray = fleet.free[:, :span]
    free_known: BoolArray = fleet.free_known[:, :span]
    healthy: BoolArray = fleet.healthy[:, :span]
    mig: BoolArray = fleet.mig[:, :span]
    held_any: BoolArray = fleet.held[:, :span]
    own = fleet.held_by(pod_uid) if fleet.holds(pod_uid) else None
    usable = fleet.open[:, :span]
    if own is not None:  # a GPU the pod itself holds is not held against it
        usable = usable | (own & healthy & ~mig & free_known)
    candidate = large & usable & ~hidden & (free >= vram)
    ev.candidates = count(candidate)
    _mark(ev.code, ev.candidates < k, CODE_NOT_FREE)

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
    return candidate


def _choose(fleet: Fleet, ev: Evaluation, candidate: BoolArray, k: int) -> None:
    """Choose each row's GPUs (``ev.chosen``, ``ev.same_island``, ``ev.slot``): inside the
    smallest island that holds the pod (ties: the smallest candidate UUID), else across
    islands; the tightest GPUs (least free, then lowest index). Keys are made distinct within a
    row by their low digits (the slot or island), so a minimum says where it is."""
    width, span = fleet.width, fleet.span
    island_count = fleet.island_count[:span]
    pool = candidate
    # Only rows with several islands have an island to choose (taken out, chosen, put back).
    multi = np.flatnonzero((ev.code == CODE_OK) & (island_count > 1)) if k > 1 else NO_ROWS
    if len(multi):
        theirs = candidate[:, multi]
        island = fleet.island[:, multi]
        # island x slot x row: the candidates on each island
        ids = np.arange(int(island_count[multi].max()))[:, None, None]
        on = theirs & (island == ids)
        counts: IntArray = on.view(np.uint8).sum(axis=1, dtype=np.int64)
        first = np.where(on, fleet.uuid_rank[:, multi], width).min(axis=1)
        key = np.where(counts >= k, (counts * (width + 1) + first) * width + ids[:, 0], MAX)
        lowest = key.min(axis=0)
        whole = lowest < MAX
        ev.same_island[multi] = whole
        pool = candidate.copy()
        pool[:, multi] = theirs & (~whole | (island == lowest % width))
        ev.island_counts = np.zeros((len(counts), span), dtype=np.int64)
        ev.island_counts[:, multi] = counts
    free_key: IntArray = fleet.free_key[:, :span]
    tight = np.where(pool, free_key, MAX)
    if k == 1:
        lowest = tight.min(axis=0)
        ev.slot = lowest % SLOT_RADIX
        ev.chosen = tight == lowest
    else:
        ev.chosen = _smallest(tight, k)


def fitting(ev: Evaluation) -> tuple[list[str], RowArray]:
    """The named nodes that fit and their rows, in request order."""
    fit = ev.code[ev.rows] == CODE_OK
    if fit.all():
        return ev.names, ev.rows
    return list(compress(ev.names, fit.tolist())), ev.rows[fit]
