"""Lean answers kept per demand shape across requests, redone only for the rows that changed.

kube-scheduler asks about every node for every pod, and most pods of a burst ask for the same
few shapes (the same ``Demand`` and ``FitSettings``), while between two requests only a few
nodes report and a few reservations come or go. So for each shape the fleet keeps the lean
evaluation's codes, the device plugin's picks and the scores of each profile asked for, with
the versions they were made at: the row's report (``Fleet.generation``) and its reservations
(``Claims.versions``). A request redoes the rows whose versions moved (``lean_columns``, the
same rules over those rows alone) and then applies the rules that read the clock and the Lease
(``live_rules``) to every row: they are the only ones that change with nothing reported.

The answer equals ``evaluate_rows(lean=True)``'s on every row that fits (codes everywhere;
picks, islands and scores where a row fits, which is all a caller reads), held by the
hypothesis test in ``tests/placement/test_fleet_standing.py`` over sequences of reports,
Leases, reservations and time. Only queries ``evaluate_rows`` could answer lean, counting the
fleet's own ``claims``, are kept; any other is evaluated as before. Pure, as the fleet is: the
memo lives on the ``Fleet`` and its owner serializes reads and updates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from placement.claims import Sums
from placement.fleet.evaluation import (
    CODE_OK,
    LIVE_CODES,
    Evaluation,
    Query,
    base_evaluation,
    evaluate_rows,
    lean_columns,
    leanable,
    live_rules,
)
from placement.fleet.rows import BoolArray, Cols, FloatArray, IntArray
from placement.fleet.scores import row_scores
from placement.fleet.store import Fleet
from placement.policies import Profile

MAX_SHAPES = 16
"""Shapes a fleet keeps answers for before it forgets them all (pods choose their shapes)."""

MAX_PROFILES = 8
"""Profiles a shape keeps scores for before it forgets them all."""

_LAST_LIVE = max(LIVE_CODES)


@dataclass(slots=True)
class Standing:
    """One shape's answers by row (``Fleet.capacity`` rows), each made at the versions kept
    beside it (-1: never made, or made with sums that do not stand)."""

    report: IntArray  # ``Fleet.generation`` when the row was made
    claimed: IntArray  # ``Claims.versions`` when the row was made
    code: IntArray  # the lean code without the live rules
    chosen: BoolArray  # slot x row: the predicted GPUs where the code is OK
    same_island: BoolArray
    slot: IntArray  # one-GPU demands: the slot taken
    scores: dict[Profile, FloatArray] = field(default_factory=dict)

    @classmethod
    def empty(cls, width: int, capacity: int) -> Standing:
        """Answers for no row yet."""
        return cls(
            report=np.full(capacity, -1, dtype=np.int64),
            claimed=np.full(capacity, -1, dtype=np.int64),
            code=np.zeros(capacity, dtype=np.int64),
            chosen=np.zeros((width, capacity), dtype=np.bool_),
            same_island=np.ones(capacity, dtype=np.bool_),
            slot=np.zeros(capacity, dtype=np.int64),
        )


def standing_evaluation(fleet: Fleet, query: Query) -> Evaluation:
    """``evaluate_rows(fleet, query, lean=True)``, from the answers kept for the query's shape
    where it may be (a ``leanable`` query over the fleet's own ``claims``), else evaluated."""
    if not (query.reservations is fleet.claims and fleet.span and leanable(fleet, query)):
        return evaluate_rows(fleet, query, lean=True)
    span = fleet.span
    key = (query.demand, query.settings, fleet.width)
    memo = fleet.standing_memo
    kept: Standing | None = memo.get(key)
    if kept is None or len(kept.report) != fleet.capacity:
        if len(memo) >= MAX_SHAPES:
            memo.clear()
        kept = memo[key] = Standing.empty(fleet.width, fleet.capacity)
    sums = fleet.claims.resolve(query.now, query.pod_uid)
    versions = fleet.claims.versions()
    moved = fleet.generation[:span] != kept.report[:span]
    moved |= versions != kept.claimed[:span]
    out = fleet.claims.rows_left_out(query.now, query.pod_uid)
    if out:
        moved[out] = True
    dirty = np.flatnonzero(moved)
    if len(dirty):
        _redo(fleet, query, kept, sums, slice(0, span) if len(dirty) == span else dirty)
        kept.report[dirty] = fleet.generation[dirty]
        kept.claimed[dirty] = versions[dirty]
        kept.claimed[out] = -1  # made with this request's sums only
    ev = base_evaluation(fleet, query, sums, slice(0, span))
    ev.lean = True
    ev.code = _with_live(kept.code[:span], live_rules(fleet, query, ev))
    ok = ev.code == CODE_OK
    ev.chosen = kept.chosen[:, :span] & ok
    ev.same_island = kept.same_island[:span] | ~ok
    ev.slot = _read_only(kept.slot[:span])
    ev.free_now = fleet.unalloc_count[:span] - ev.pending

    def scored(profile: Profile) -> FloatArray:
        values = kept.scores.get(profile)
        if values is None:
            if len(kept.scores) >= MAX_PROFILES:
                kept.scores.clear()
            whole = base_evaluation(fleet, query, sums, slice(0, span))
            whole.chosen = kept.chosen[:, :span]
            whole.code = kept.code[:span]
            values = np.zeros(fleet.capacity)
            values[:span] = row_scores(fleet, whole, query.demand, profile)
            kept.scores[profile] = values
        return _read_only(values[:span])

    ev.scored = scored
    return ev


def _redo(fleet: Fleet, query: Query, kept: Standing, sums: Sums, cols: Cols) -> None:
    """Make the answers of ``cols`` again, and their scores for every profile kept."""
    sub = lean_columns(fleet, query, sums, cols)
    kept.code[cols] = sub.code
    kept.chosen[:, cols] = sub.chosen
    kept.same_island[cols] = sub.same_island
    kept.slot[cols] = sub.slot
    for profile, values in kept.scores.items():
        values[cols] = row_scores(fleet, sub, query.demand, profile)


def _with_live(code: IntArray, rules: list[tuple[BoolArray, int]]) -> IntArray:
    """The codes with the live rules applied: a row keeps the first rule it fails in ``fit()``'s
    order, and the live rules sit together in that order (``LIVE_CODES``)."""
    (no_lease, _), (lease_old, _), (report_old, _) = rules
    stale = no_lease | lease_old
    stale |= report_old
    if not stale.any():  # the common case: every row's Lease and report are current
        return _read_only(code)
    live = np.zeros(len(code), dtype=np.int64)
    for rows, result in reversed(rules):
        np.copyto(live, result, where=rows)
    after = (code == CODE_OK) | (code > _LAST_LIVE)  # rules after the live ones, or none
    out: IntArray = np.where(after & (live != CODE_OK), live, code)
    return out


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a[:]
    view.flags.writeable = False
    return view


__all__ = ["MAX_PROFILES", "MAX_SHAPES", "Standing", "standing_evaluation"]
