"""The rules of ``fit()`` over every row of a fleet at once: one query, one evaluation.

A ``Query`` is what every fleet answer takes (the named nodes, the pod's demand, the
reservations, the time, the fit settings, the pod). ``evaluate_rows`` checks ``fit()``'s rules
in ``fit()``'s order over the rows in use, as a few dozen vector operations, and leaves a
result code per row (``CODE_OK`` or the first rule that fails), the GPUs each fit takes, and what
the reasons quote, for the modules that word reasons (``rejects``), score (``scores``) and
choose (``decision``). ``placement.reference`` is the readable definition it is held to.

The device plugin's rule (``placement.deviceplugin``: the predicted GPUs, and whether every set
it may give lies on one NVLink island) depends on a row only through its NVLink layout, its
mask of available GPUs and the GPU counts still promised there. The predicted GPUs are read
from the fleet's tables by (layout, mask), one gather per request (``placement.fleet.plugin``);
for the island check, rows are grouped by those with one ``np.unique``, and the memoized rule
is asked once per distinct group: in a fleet of alike nodes, a handful of dictionary lookups.

Most pods ask for GPUs of any product through the device plugin and hold none yet; for those
(``leanable``) the rules before the prediction need no per-GPU work: the fleet keeps, per row,
the sorted GPU totals, the best NVLink island's, and the unallocated GPUs' count and least free
memory, updated as each report arrives (``Fleet.total_desc`` and the others). The lean path
reads them, a few operations over one value per row, and words no reasons; a caller that needs
reasons (``decide_fleet`` when no node fits) evaluates again in full.

Reservations are read from the fleet's own ``claims`` when a query passes those, else looped
over (``Fleet.claims_of``); both give the same arrays. Pure: ``now`` is an argument.

The same rules run over some rows alone (``Evaluation.cols``: ``lean_columns`` without the
rules that read the clock or the Lease, ``full_columns`` with what reasons quote): the rows
``placement.fleet.standing`` redoes when their report or reservations changed.

A pod that claims its GPUs through DRA (``Allocator.DRA``) is held to ``fit()``'s DRA rules:
only the GPUs its claim may get count (``Query.eligible``, turned into a ``slot x row`` mask
for the named nodes it lists; the others keep every GPU), the GPUs promised to waiting pods
are those their reservations name (not a count), the prediction is the first available ones,
and a required NVLink island holds every unallocated eligible GPU.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress
from typing import NamedTuple

import numpy as np

from placement.claims import Sums, sizes_of
from placement.deviceplugin import always_one_island
from placement.fit import HELD, MIG_ENABLED, RESERVED, UNHEALTHY, effective_nvlink
from placement.fleet.plugin import (
    DENSE_WIDTH,
    lowest_slots,
    plugin_answer,
    plugin_picks,
    slot_masks,
)
from placement.fleet.rows import NO_ROWS, BoolArray, Cols, FloatArray, IntArray, RowArray
from placement.fleet.store import Fleet
from placement.loadbudget import load_bytes
from placement.model import Allocator, Demand, FitSettings, NvlinkMode, Reservation
from placement.policies import Profile


@dataclass(frozen=True, slots=True)
class Query:
    """One pod's question to a fleet: which of ``names`` can take ``demand`` at ``now``.

    ``names`` are in request order; a name the fleet does not hold is rejected as having no
    report. ``reservations`` are the fleet's own ``claims`` (read from their sums) or any
    iterable of reservations (looped over); those of ``pod_uid`` itself are ignored, as in
    ``fit()``. ``eligible`` maps a node to the UUIDs of the GPUs the pod may get there (a DRA
    claim's selectors, ``fit()``'s ``eligible``); a node it does not name keeps every GPU.
    ``waiting`` is the demand that waits or may come, each with how many pods: the choice keeps
    room for them (``placement.room``). ``verdict``, ``evaluate``, ``decide_fleet``
    and ``score_nodes`` all take one.
    """

    names: Sequence[str]
    demand: Demand
    reservations: Iterable[Reservation]
    now: float
    settings: FitSettings = FitSettings()
    pod_uid: str = ""
    eligible: Mapping[str, Collection[str]] | None = None
    waiting: Sequence[tuple[Demand, int]] = ()


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
CODE_UNFIT = 11
CODE_SPLIT = 12
CODE_LOAD_BUDGET = 13
CODE_UNRESOLVABLE = (CODE_NO_GPUS, CODE_NO_PRODUCT, CODE_TOO_SMALL, CODE_NO_ISLAND)


def count(b: BoolArray) -> IntArray:
    """Per row: how many slots are true, summed in bytes where no count can overflow one
    (numpy adds bytes many at a time, and into an int64 one by one)."""
    if b.shape[0] > 0xFF:
        wide: IntArray = b.view(np.uint8).sum(axis=0, dtype=np.int64)
        return wide
    counts: IntArray = b.view(np.uint8).sum(axis=0, dtype=np.uint8).astype(np.int64)
    return counts


def _mark(code: IntArray, condition: BoolArray, result: int) -> None:
    """Give ``result`` to the rows that meet ``condition`` and no earlier rule."""
    code[(code == CODE_OK) & condition] = result


class Worded(NamedTuple):
    """The reasons of the named nodes that do not fit: each node, its reason and whether it is
    resolvable, in request order; and when kept across requests, the same split into
    resolvable and unresolvable (``placement.fleet.rejects.split``; read-only, in no order)."""

    rejected: Sequence[str]
    texts: Sequence[str]
    resolvable: Sequence[bool]
    split: tuple[dict[str, str], dict[str, str]] | None = None


@dataclass(slots=True)
class Evaluation:
    """One request over the rows in use (``Fleet.span``); ``rows`` are the named nodes' rows.

    The arrays "by row" are by position in ``cols``: every row in use (``slice(0, span)``, the
    position is the row) or the rows ``placement.fleet.standing`` redoes (``at`` turns a
    position into a row)."""

    names: Sequence[str]  # the named nodes the fleet holds, in request order (not copied)
    rows: RowArray  # their rows
    named_rows: RowArray  # the row of every named node, -1 where the fleet holds none
    code: IntArray  # by row
    chosen: BoolArray  # slot x row: the GPUs each fit takes
    same_island: BoolArray  # by row
    hidden: BoolArray  # slot x row: predicted for pods that have not got their GPUs yet
    loads: IntArray  # by row
    pending: IntArray  # by row: GPUs promised to pods that have not got theirs yet
    # What reject reasons quote, by row (island_counts: island x row).
    large: IntArray
    best_island: IntArray
    lease_age: FloatArray
    report_age: FloatArray
    free_now: IntArray  # unallocated GPUs less those promised
    causes: Callable[[], dict[str, BoolArray]]  # slot x row: the GPUs not unallocated, by cause
    island_counts: IntArray
    max_report_age_s: float
    slot: IntArray  # by row, for one-GPU demands: the chosen slot
    why: dict[str, IntArray] = dataclasses.field(default_factory=dict)  # by row: ``causes`` counted
    pod_uid: str = ""  # the pod asking (the GPUs it holds itself are unallocated for it)
    considered: BoolArray | None = None  # slot x row: the GPUs the pod may get (None: all)
    # The load budget (placement.loadbudget): by row, the cold loads in flight and the bytes
    # they have left; the pod's own bytes and the budget in seconds (None: off).
    cold_loads: IntArray | None = None
    cold_bytes: IntArray | None = None
    new_bytes: int = 0
    load_budget_s: float | None = None
    # Made by the lean path (``evaluate_rows(lean=True)``): codes, picks, ``free_now`` and the
    # load budget as the full path makes them, but none of what only a reason quotes
    # (``large``, ``best_island``, ``causes``), so no reason is worded from it.
    lean: bool = False
    # The rows the arrays cover (``slice(0, span)``: all).
    cols: Cols = dataclasses.field(default_factory=lambda: slice(None))
    # Scores kept across requests by ``placement.fleet.standing`` (``row_scores`` reads them),
    # and the named nodes' reasons, kept there too (``Worded``).
    scored: Callable[[Profile], FloatArray] | None = None
    worded: Callable[[], Worded] | None = None

    def at(self, positions: RowArray) -> RowArray:
        """The rows at ``positions`` of the arrays."""
        return positions if isinstance(self.cols, slice) else self.cols[positions]

    def why_counts(self) -> dict[str, IntArray]:
        """By row: how many GPUs each cause keeps from being unallocated, and how many are
        promised (counted when a reason needs it, not for every request)."""
        if not self.why:
            self.why = {w: count(mask) for w, mask in self.causes().items()}
            self.why[RESERVED] = self.pending
        return self.why


def leanable(fleet: Fleet, query: Query) -> bool:
    """Whether ``evaluate_rows`` may take its lean path for ``query``: the pod asks for GPUs
    of any product through the device plugin and holds none itself, so every rule before the
    prediction reads only what a row keeps per node (``Fleet.total_desc`` and the others)."""
    demand = query.demand
    return (
        demand.gpus > 0
        and not demand.products
        and demand.allocator is not Allocator.DRA
        and query.eligible is None
        and not fleet.holds(query.pod_uid)
    )


def evaluate_rows(fleet: Fleet, query: Query, *, lean: bool = False) -> Evaluation:
    """The rules of ``fit()``, checked in its order, over the rows in use at once.

    With ``lean`` (taken only where ``leanable``), the rules before the prediction are read
    from the per-row tables the fleet keeps as reports arrive, a few operations over one value
    per row, and the per-GPU work (the device plugin's picks) is done for the rows that pass
    them alone: the same codes, picks and ``free_now``, without what reasons quote."""
    sums = fleet.claims_of(query.reservations, query.now, query.pod_uid)
    lean = lean and leanable(fleet, query)
    return _columns(fleet, query, sums, slice(0, fleet.span), lean=lean, live=True)


def lean_columns(fleet: Fleet, query: Query, sums: Sums, cols: Cols) -> Evaluation:
    """The lean evaluation of ``cols`` (a ``leanable`` query asking for GPUs) without the rules
    that read the clock or the Lease (``live_rules``): codes, picks and islands that change
    only with a row's report or reservations. ``sums``: the request's, over every row in use.
    What ``placement.fleet.standing`` keeps across requests."""
    return _columns(fleet, query, sums, cols, lean=True, live=False)


def full_columns(fleet: Fleet, query: Query, sums: Sums, cols: Cols) -> Evaluation:
    """The full evaluation of ``cols``, with what reasons quote (a query without ``eligible``
    GPUs when ``cols`` is not every row). ``sums``: the request's, over every row in use.
    ``placement.fleet.standing`` words the reasons of the rows that changed from it
    (``widened``)."""
    return _columns(fleet, query, sums, cols, lean=False, live=True)


def _columns(
    fleet: Fleet, query: Query, sums: Sums, cols: Cols, *, lean: bool, live: bool
) -> Evaluation:
    ev = base_evaluation(fleet, query, sums, cols)
    if query.demand.gpus <= 0:
        return ev
    vram = min(query.demand.vram_per_gpu, int(MAX))
    nvlink = effective_nvlink(query.demand, query.settings)
    if lean:
        unallocated = _lean_rules(fleet, query, ev, vram, nvlink, live=live)
    else:
        unallocated = _rules(fleet, query, ev, vram, nvlink)
    _after_rules(fleet, query, ev, unallocated, sums.sizes[cols])
    return ev


def widened(ev: Evaluation, span: int, names: Sequence[str]) -> Evaluation:
    """``ev`` (a full evaluation of some rows, ``full_columns``) laid over every row in use, so
    that ``rejects.reasons_of`` reads each of its rows where it looks: the rows of ``ev.cols``
    carry what reasons quote, the others nothing. ``names`` are the nodes of those rows, in
    their order; the result names them alone. For wording only: the picks are left out."""
    cols = ev.cols
    if isinstance(cols, slice):
        return dataclasses.replace(ev, names=names)

    def by_row(a: np.ndarray, fill: object = 0) -> np.ndarray:
        out = np.full((*a.shape[:-1], span), fill, dtype=a.dtype)
        out[..., cols] = a
        return out

    why = {w: by_row(counts) for w, counts in ev.why_counts().items()}
    return dataclasses.replace(
        ev,
        names=names,
        rows=cols,
        named_rows=cols,
        code=by_row(ev.code),
        chosen=np.zeros((0, span), dtype=np.bool_),
        pending=by_row(ev.pending),
        large=by_row(ev.large),
        best_island=by_row(ev.best_island),
        lease_age=by_row(ev.lease_age),
        report_age=by_row(ev.report_age),
        free_now=by_row(ev.free_now),
        island_counts=by_row(ev.island_counts),
        why=why,
        cold_loads=None if ev.cold_loads is None else by_row(ev.cold_loads),
        cold_bytes=None if ev.cold_bytes is None else by_row(ev.cold_bytes),
        considered=None if ev.considered is None else by_row(ev.considered, False),
        cols=slice(0, span),
    )


def base_evaluation(
    fleet: Fleet,
    query: Query,
    sums: Sums,
    cols: Cols,
    *,
    code: IntArray | None = None,
    chosen: BoolArray | None = None,
    same_island: BoolArray | None = None,
    slot: IntArray | None = None,
) -> Evaluation:
    """An evaluation of ``cols`` before any rule: every code OK, no GPU chosen (unless the
    caller has them: ``code``, ``chosen``, ``same_island``, ``slot``); the named nodes and their
    rows, and the reservations' sums cut to ``cols``."""
    names = query.names
    if isinstance(cols, slice):
        all_rows = fleet.rows_of(names)
        found = all_rows >= 0
        if found.all():
            rows, known = all_rows, names
        else:
            rows = all_rows[found]
            known = list(compress(names, found.tolist()))
    else:  # some rows only: no names (``standing`` keeps the rows, not a request)
        all_rows, rows, known = NO_ROWS, NO_ROWS, ()
    settings = query.settings
    width, n = fleet.width, _length(cols, fleet.span)
    none = np.zeros(n, dtype=np.int64)
    return Evaluation(
        names=known,
        rows=rows,
        named_rows=all_rows,
        code=np.zeros(n, dtype=np.int64) if code is None else code,
        chosen=np.zeros((width, n), dtype=np.bool_) if chosen is None else chosen,
        same_island=np.ones(n, dtype=np.bool_) if same_island is None else same_island,
        hidden=sums.hidden[:, cols],
        loads=sums.loads[cols],
        pending=sums.pending[cols],
        large=none,
        best_island=none,
        lease_age=np.zeros(n),
        report_age=np.zeros(n),
        free_now=none,
        causes=dict,
        island_counts=np.zeros((0, n), dtype=np.int64),  # filled where a split is worded
        max_report_age_s=settings.max_report_age_s,
        slot=none if slot is None else slot,
        pod_uid=query.pod_uid,
        cold_loads=sums.cold_loads[cols],
        cold_bytes=sums.cold_bytes[cols],
        new_bytes=load_bytes(query.demand),
        load_budget_s=settings.load_budget_s,
        cols=cols,
    )


def _length(cols: Cols, span: int) -> int:
    return len(range(span)[cols]) if isinstance(cols, slice) else len(cols)


def _after_rules(
    fleet: Fleet, query: Query, ev: Evaluation, unallocated: BoolArray, sizes: IntArray
) -> None:
    """The rules after those of each GPU: the prediction, the NVLink rule, the load budget;
    then only the GPUs of the rows that fit stay chosen."""
    demand, settings, k = query.demand, query.settings, query.demand.gpus
    nvlink = effective_nvlink(demand, settings)
    dra = demand.allocator is Allocator.DRA
    if dra:
        _first_available(fleet, ev, unallocated, k)
    else:
        _predict(fleet, ev, unallocated, k)
    if nvlink is NvlinkMode.REQUIRED:
        if settings.nvlink_best_effort:
            _mark(ev.code, ~ev.same_island, CODE_SPLIT)
        elif dra:
            _mark_spread(fleet, ev, unallocated)
        else:
            _mark_unsafe(fleet, ev, unallocated, k, sizes)
        _island_counts(fleet, ev, unallocated)
    if settings.load_budget_s is not None:
        _mark_budget(fleet, ev, demand.model_id, settings.load_budget_s)
    ev.chosen = ev.chosen & (ev.code == CODE_OK)


def _rules(fleet: Fleet, query: Query, ev: Evaluation, vram: int, nvlink: NvlinkMode) -> BoolArray:
    """``fit()``'s rules before the prediction, per GPU (``_node_rules``, ``_unallocated``).
    Returns the unallocated GPUs (``slot x row``)."""
    if query.eligible is not None:  # over every row in use (names are looked up)
        assert isinstance(ev.cols, slice), "a query with eligible GPUs is evaluated whole"
        ev.considered = _considered(fleet, query.eligible, ev.names, ev.rows)
    matching = _node_rules(fleet, query, ev, vram, nvlink)
    dra = query.demand.allocator is Allocator.DRA
    k = query.demand.gpus
    return _unallocated(fleet, ev, matching, pod_uid=query.pod_uid, vram=vram, k=k, dra=dra)


def _lean_rules(
    fleet: Fleet,
    query: Query,
    ev: Evaluation,
    vram: int,
    nvlink: NvlinkMode,
    *,
    live: bool = True,
) -> BoolArray:
    """``_node_rules`` and ``_unallocated`` for a ``leanable`` query (every present GPU
    matches, the pod holds none), read from the per-row tables: one value per row, not one
    per GPU. Without ``live``, the rules that read the clock or the Lease are left out.
    Returns the unallocated GPUs (``slot x row``)."""
    k, cols = query.demand.gpus, ev.cols
    error, gpu_count = fleet.error[cols], fleet.gpu_count[cols]
    empty = gpu_count == 0
    ev.lean = True
    # Each rule's rows, in fit()'s order; the first a row fails gives its code.
    rules = [(empty & error, CODE_AGENT_ERROR_NO_GPUS), (empty, CODE_NO_GPUS)]
    if k > fleet.width:  # more GPUs than any row has
        rules.append((np.ones(len(ev.code), dtype=np.bool_), CODE_TOO_SMALL))
    else:
        rules.append(((gpu_count < k) | (fleet.total_desc[k - 1, cols] < vram), CODE_TOO_SMALL))
        if nvlink is NvlinkMode.REQUIRED:
            short = (fleet.island_max[cols] < k) | (fleet.island_desc[k - 1, cols] < vram)
            rules.append((short, CODE_NO_ISLAND))
    rules.append((error, CODE_AGENT_ERROR))
    if live:
        now_rules, ev.lease_age, ev.report_age = live_rules(fleet, query, cols)
        rules += now_rules
    ev.free_now = fleet.unalloc_count[cols] - ev.pending
    unfit = fleet.unalloc_unknown[cols] | (fleet.unalloc_min_free[cols] < vram)
    rules += [(ev.free_now < k, CODE_NOT_FREE), (unfit, CODE_UNFIT)]
    code = ev.code  # all OK yet: the last rule is written first, the first one last
    for rows, result in reversed(rules):
        np.copyto(code, result, where=rows)
    return fleet.unalloc[:, cols]


LIVE_CODES = (CODE_NO_LEASE, CODE_LEASE_OLD, CODE_REPORT_OLD)
"""The codes of the rules that change with the clock and the Lease, not with a report or a
reservation: consecutive in ``fit()``'s order."""


def live_rules(
    fleet: Fleet, query: Query, cols: Cols
) -> tuple[list[tuple[BoolArray, int]], FloatArray, FloatArray]:
    """The rules that read the clock or the Lease, in ``fit()``'s order, over ``cols`` (each
    with its code, ``LIVE_CODES``), and the ages the reasons quote: the Lease's and the
    report's."""
    lease_age = query.now - fleet.lease_at[cols]
    report_age = query.now - fleet.observed_at[cols]
    rules = [
        (~fleet.lease_seen[cols], CODE_NO_LEASE),
        (lease_age > fleet.lease_duration[cols], CODE_LEASE_OLD),
        (report_age > query.settings.max_report_age_s, CODE_REPORT_OLD),
    ]
    return rules, lease_age, report_age


def _mark_budget(fleet: Fleet, ev: Evaluation, model_id: str, budget_s: float) -> None:
    """Mark the rows where the pod's cold load would break the load budget
    (``loadbudget.check_budget``): a cold load in flight there, and the bytes left with the
    pod's own take longer than ``budget_s`` at the row's remote bandwidth."""
    assert ev.cold_loads is not None and ev.cold_bytes is not None
    bandwidth = fleet.remote_bw[ev.cols]
    moving = (ev.cold_bytes + ev.new_bytes).astype(np.float64)
    over = (bandwidth > 0) & (ev.cold_loads > 0) & (moving > budget_s * bandwidth)
    if model_id:
        over &= ~fleet.cached(model_id)[ev.cols]
    _mark(ev.code, over, CODE_LOAD_BUDGET)


def _considered(
    fleet: Fleet, eligible: Mapping[str, Collection[str]], names: Sequence[str], rows: RowArray
) -> BoolArray:
    """``slot x row``: the GPUs the pod may get, by ``eligible`` for the named nodes it lists
    and every present GPU elsewhere."""
    mask: BoolArray = fleet.present[:, : fleet.span].copy()
    for name, r in zip(names, rows.tolist(), strict=True):
        uuids = eligible.get(name)
        if uuids is None:
            continue
        slot = fleet.row(r).slot
        mask[:, r] = False
        picked = [s for u in uuids if (s := slot.get(u)) is not None]
        mask[picked, r] = True
    return mask


def _node_rules(
    fleet: Fleet, query: Query, ev: Evaluation, vram: int, nvlink: NvlinkMode
) -> BoolArray:
    """The rules before what is free now, in fit()'s order: GPUs, product, size, island, agent,
    Lease, report age. Returns the GPUs of the right product (``slot x row``)."""
    demand, k, cols, code = query.demand, query.demand.gpus, ev.cols, ev.code
    error, island_count = fleet.error[cols], fleet.island_count[cols]
    empty = fleet.gpu_count[cols] == 0
    _mark(code, empty & error, CODE_AGENT_ERROR_NO_GPUS)
    _mark(code, empty, CODE_NO_GPUS)
    matching: BoolArray = fleet.present[:, cols] if ev.considered is None else ev.considered
    if demand.products:
        product = fleet.product[:, cols]
        accepted = np.zeros(product.shape, dtype=np.bool_)
        for i in {fleet.product_id(p) for p in demand.products} - {-1}:
            accepted |= product == i
        matching = matching & accepted
    if demand.products or ev.considered is not None:
        _mark(code, count(matching) == 0, CODE_NO_PRODUCT)
    total: IntArray = fleet.total[:, cols]
    large = matching & (total >= vram)
    ev.large = count(large)
    _mark(code, ev.large < k, CODE_TOO_SMALL)
    if nvlink is NvlinkMode.REQUIRED:
        best = np.zeros(len(code), dtype=np.int64)
        for i in range(int(island_count.max(initial=0))):
            best = np.maximum(best, count(large & (fleet.island[:, cols] == i)))
        ev.best_island = best
        _mark(code, best < k, CODE_NO_ISLAND)
    _mark(code, error, CODE_AGENT_ERROR)
    live, ev.lease_age, ev.report_age = live_rules(fleet, query, cols)
    for rows, result in live:
        _mark(code, rows, result)
    return matching


def _unallocated(
    fleet: Fleet,
    ev: Evaluation,
    matching: BoolArray,
    *,
    pod_uid: str,
    vram: int,
    k: int,
    dra: bool = False,
) -> BoolArray:
    """The GPUs the kubelet may hand out (healthy, not in MIG mode, held by no pod but the pod
    itself). Marks the rows with too few of them once the promised ones are taken, then those
    where one of them could not hold the pod (another product, memory unknown or too little
    free), and leaves the causes of the others for the reasons (``Evaluation.causes``)."""
    cols = ev.cols
    # The arrays cut to the rows evaluated (views of the rows in use, or copies of some); the
    # GPUs the pod may get.
    present: BoolArray = fleet.present[:, cols] if ev.considered is None else ev.considered
    free: IntArray = fleet.free[:, cols]
    free_known: BoolArray = fleet.free_known[:, cols]
    healthy: BoolArray = fleet.healthy[:, cols]
    mig: BoolArray = fleet.mig[:, cols]
    held_any: BoolArray = fleet.held[:, cols]
    held = held_any & ~fleet.held_by(pod_uid)[:, cols] if fleet.holds(pod_uid) else held_any
    unallocated = present & healthy & ~mig & ~held
    if dra:  # the GPUs promised to waiting pods, not a count of any (fit()'s DRA rule)
        ev.pending = count(unallocated & ev.hidden)
    ev.free_now = count(unallocated) - ev.pending
    _mark(ev.code, ev.free_now < k, CODE_NOT_FREE)
    unfit = unallocated & (~matching | ~free_known | (free < vram))
    _mark(ev.code, count(unfit) > 0, CODE_UNFIT)

    def causes() -> dict[str, BoolArray]:
        """Each GPU that is not unallocated, by the first reason it is not, in fit()'s order
        (for the reasons only)."""
        return {
            UNHEALTHY: present & ~healthy,
            MIG_ENABLED: present & healthy & mig,
            HELD: present & healthy & ~mig & held,
        }

    ev.causes = causes
    return unallocated


def _groups(
    b: BoolArray, rows: RowArray, extra: IntArray
) -> tuple[list[tuple[tuple[int, ...], int]], IntArray]:
    """The distinct (``extra`` row, mask) pairs among the columns ``rows`` of ``b`` (``slot x
    row``; bit ``s`` of a mask is slot ``s``), and which pair each of them has. One
    ``np.unique`` over an int64 key when the bits fit, else over the packed bytes. Masks are
    made over every row and then gathered: a gathered ``slot x row`` array is laid out by row,
    and summing it by slot takes ten times as long."""
    width = b.shape[0]
    top = [int(c.max(initial=0)).bit_length() for c in extra.T]
    if width + sum(top) <= 62 and extra.min(initial=0) >= 0:
        key: IntArray = slot_masks(b)[rows]
        for column, bits in zip(extra.T, top, strict=True):
            key = (key << bits) | column
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        masks = key[first] >> sum(top)
        pairs = [
            (tuple(extra[i].tolist()), mask)
            for i, mask in zip(first.tolist(), masks.tolist(), strict=True)
        ]
        return pairs, inverse.reshape(-1)
    packed = np.packbits(b[:, rows].T, axis=1, bitorder="little")
    keys = np.ascontiguousarray(np.concatenate([extra.astype("<i8").view(np.uint8), packed], 1))
    void = keys.view(np.dtype((np.void, keys.shape[1]))).ravel()
    _, first, inverse = np.unique(void, return_index=True, return_inverse=True)
    pairs = [
        (tuple(extra[i].tolist()), int.from_bytes(packed[i].tobytes(), "little"))
        for i in first.tolist()
    ]
    return pairs, inverse.reshape(-1)


def _predict(fleet: Fleet, ev: Evaluation, unallocated: BoolArray, k: int) -> None:
    """Each row's predicted GPUs (``ev.chosen``, ``ev.same_island``, ``ev.slot``): what the
    device plugin gives when the GPUs that are unallocated and not promised to a waiting pod are
    listed in index order (``deviceplugin.predicted_allocation``), read from the fleet's tables
    (``placement.fleet.plugin``)."""
    width = fleet.width
    available = unallocated & ~ev.hidden
    if k == 1:  # the first GPU of the list
        _first_gpu(ev, available)
        return
    rows = np.flatnonzero(ev.code == CODE_OK)
    if not len(rows):
        return
    if width <= DENSE_WIDTH:
        # Masks over every row, then gathered: a gathered ``slot x row`` array is laid out
        # by row, and summing it by slot then takes ten times as long.
        masks = slot_masks(available)[rows]
        picks, same = plugin_picks(fleet, masks, fleet.nvlink_id[ev.at(rows)], k)
        by_row = np.zeros((len(ev.code), width), dtype=np.bool_)
        by_row[rows] = picks
        ev.chosen = np.ascontiguousarray(by_row.T)
        ev.same_island[rows] = same
        return
    _grouped_picks(fleet, ev, available, rows, k)


def _grouped_picks(
    fleet: Fleet, ev: Evaluation, available: BoolArray, rows: RowArray, k: int
) -> None:
    """The device plugin's picks for the columns ``rows`` of ``available`` in a fleet too
    wide for the dense tables: one answer per distinct (layout, mask)."""
    groups, inverse = _groups(available, rows, fleet.nvlink_id[ev.at(rows)][:, None])
    answers = [plugin_answer(fleet, nvlink_id, mask, k) for (nvlink_id,), mask in groups]
    chosen = np.stack([a[0] for a in answers])
    same = np.array([a[1] for a in answers], dtype=np.bool_)
    ev.chosen[:, rows] = chosen[inverse].T
    ev.same_island[rows] = same[inverse]


def _first_gpu(ev: Evaluation, available: BoolArray) -> None:
    """For one GPU: each row's first available GPU (``ev.slot``, 0 where none); a row with
    none has every slot in ``ev.chosen`` (its code is not OK, and the end of the evaluation
    clears it)."""
    width = available.shape[0]
    if width > 16:
        key = np.where(available, np.arange(width)[:, None], MAX)
        lowest = key.min(axis=0)
        ev.slot = np.where(lowest < MAX, lowest, 0)
        ev.chosen = key == lowest
        return
    masks = slot_masks(available)
    ev.slot = lowest_slots(width)[masks]
    ev.chosen = np.arange(width)[:, None] == ev.slot
    ev.chosen |= masks == 0


def _first_available(fleet: Fleet, ev: Evaluation, unallocated: BoolArray, k: int) -> None:
    """Each row's predicted GPUs for a DRA claim (``fit.first_available``): the first ``k``
    GPUs in index order that are unallocated and not promised to a waiting pod."""
    width = fleet.width
    available = unallocated & ~ev.hidden
    if k == 1:  # the first GPU of the list, as for the device plugin
        key = np.where(available, np.arange(width)[:, None], MAX)
        lowest = key.min(axis=0)
        ev.slot = np.where(lowest < MAX, lowest, 0)
        ev.chosen = key == lowest
        return
    taken = np.cumsum(available, axis=0, dtype=np.int64)
    ev.chosen = available & (taken <= k) & (taken[-1] >= k)
    island = fleet.island[:, ev.cols]
    low = np.where(ev.chosen, island, MAX).min(axis=0)
    high = np.where(ev.chosen, island, -1).max(axis=0)
    ev.same_island = (high < 0) | (low == high)


def _mark_spread(fleet: Fleet, ev: Evaluation, unallocated: BoolArray) -> None:
    """Mark the rows where the unallocated GPUs the DRA plugin may allocate lie on more than
    one NVLink island (it may take any of them)."""
    rows = np.flatnonzero((ev.code == CODE_OK) & (fleet.island_count[ev.cols] > 1))
    if not len(rows):
        return
    island = fleet.island[:, ev.at(rows)]
    on = unallocated[:, rows]
    low = np.where(on, island, MAX).min(axis=0)
    high = np.where(on, island, -1).max(axis=0)
    unsafe = np.zeros(len(ev.code), dtype=np.bool_)
    unsafe[rows] = (high >= 0) & (low != high)
    _mark(ev.code, unsafe, CODE_SPLIT)


def _mark_unsafe(
    fleet: Fleet, ev: Evaluation, unallocated: BoolArray, k: int, sizes: IntArray
) -> None:
    """Mark the rows where some set the device plugin may give (also after the pods still
    waiting took theirs) spans NVLink islands (``deviceplugin.always_one_island``). A row of one
    island is safe as it is."""
    rows = np.flatnonzero((ev.code == CODE_OK) & (fleet.island_count[ev.cols] > 1))
    if not len(rows):
        return
    extra = np.stack([fleet.nvlink_id[ev.at(rows)], sizes[rows]], axis=1)
    groups, inverse = _groups(unallocated, rows, extra)
    memo = fleet.plugin_memo
    safe = np.zeros(len(groups), dtype=np.bool_)
    for g, ((nvlink_id, size_id), mask) in enumerate(groups):
        key = (nvlink_id, mask, k, size_id, -1)
        found = memo.get(key)
        if found is None:
            layout = fleet.nvlinks[nvlink_id]
            found = memo[key] = always_one_island(mask, k, layout, sizes_of(size_id))
        safe[g] = found
    unsafe = np.zeros(len(ev.code), dtype=np.bool_)
    unsafe[rows] = ~safe[inverse]
    _mark(ev.code, unsafe, CODE_SPLIT)


def _island_counts(fleet: Fleet, ev: Evaluation, unallocated: BoolArray) -> None:
    """By island and row, the unallocated GPUs, for the rows whose reason is a split."""
    rows = np.flatnonzero(ev.code == CODE_SPLIT)
    if not len(rows):
        return
    at = ev.at(rows)
    ids = np.arange(int(fleet.island_count[at].max()))[:, None, None]
    on = unallocated[:, rows][None] & (fleet.island[:, at][None] == ids)
    ev.island_counts = np.zeros((len(ids), len(ev.code)), dtype=np.int64)
    ev.island_counts[:, rows] = on.view(np.uint8).sum(axis=1, dtype=np.int64)


def fitting(ev: Evaluation) -> tuple[Sequence[str], RowArray]:
    """The named nodes that fit and their rows, in request order."""
    fit = ev.code[ev.rows] == CODE_OK
    if fit.all():
        return ev.names, ev.rows
    return list(compress(ev.names, fit.tolist())), ev.rows[fit]
