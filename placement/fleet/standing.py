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
memo lives on the ``Fleet`` and its owner serializes reads and updates. An evaluation holds
copies of the kept codes and picks (it may outlive its request, ``NamedCounts``), but its
kept scores and reasons (``Evaluation.scored``, ``worded``) are read before the fleet changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from placement.claims import Sums
from placement.fleet.evaluation import (
    CODE_LEASE_OLD,
    CODE_OK,
    CODE_REPORT_OLD,
    LIVE_CODES,
    Evaluation,
    Query,
    Worded,
    base_evaluation,
    evaluate_rows,
    full_columns,
    lean_columns,
    leanable,
    live_rules,
    widened,
)
from placement.fleet.rejects import RESOLVABLE, reasons_of, split
from placement.fleet.rows import BoolArray, Cols, FloatArray, IntArray, ObjectArray, RowArray
from placement.fleet.scores import row_scores
from placement.fleet.store import Fleet
from placement.policies import Profile

MAX_SHAPES = 16
"""Shapes a fleet keeps answers for before it forgets them all (pods choose their shapes)."""

MAX_PROFILES = 8
"""Profiles a shape keeps scores for before it forgets them all."""

_LAST_LIVE = max(LIVE_CODES)

AGED = (CODE_LEASE_OLD, CODE_REPORT_OLD)
"""The codes whose reasons quote an age (of the Lease, of the report): worded afresh each time."""


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
    # Each row's reason when it does not fit, worded at the versions and for the code beside
    # it (a reason that quotes an age, ``AGED``, is worded again each time).
    texts: ObjectArray
    text_report: IntArray
    text_claimed: IntArray
    text_code: IntArray
    # By profile: each row's score where its kept code is OK (any other is never read).
    scores: dict[Profile, FloatArray] = field(default_factory=dict)
    # The texts and resolvable flags of the last names worded (the fleet's own list, most
    # often), in their order: patched where rows are worded again, dropped for other names.
    aligned: tuple[Sequence[str], list[str], list[bool]] | None = None
    # The same split into resolvable and unresolvable (``rejects.split``): never changed once
    # handed out, copied and patched instead.
    split: tuple[Sequence[str], dict[str, str], dict[str, str]] | None = None

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
            texts=np.full(capacity, "", dtype=object),
            text_report=np.full(capacity, -1, dtype=np.int64),
            text_claimed=np.full(capacity, -1, dtype=np.int64),
            text_code=np.full(capacity, -1, dtype=np.int64),
        )


def kept_for(fleet: Fleet, query: Query) -> bool:
    """Whether the fleet keeps answers for ``query``'s shape: a ``leanable`` query that
    counts the fleet's own ``claims``."""
    return query.reservations is fleet.claims and fleet.span > 0 and leanable(fleet, query)


def standing_evaluation(fleet: Fleet, query: Query) -> Evaluation:
    """``evaluate_rows(fleet, query, lean=True)``, from the answers kept for the query's shape
    where it may be (a ``leanable`` query over the fleet's own ``claims``), else evaluated."""
    if not kept_for(fleet, query):
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
    rules, lease_age, report_age = live_rules(fleet, query, slice(0, span))
    code = _with_live(kept.code[:span], rules)
    ok = code == CODE_OK
    ev = base_evaluation(
        fleet,
        query,
        sums,
        slice(0, span),
        code=code,
        chosen=kept.chosen[:, :span] & ok,
        same_island=kept.same_island[:span] | ~ok,
        slot=kept.slot[:span].copy(),  # an evaluation may outlive the lock (NamedCounts)
    )
    ev.lean, ev.lease_age, ev.report_age = True, lease_age, report_age
    ev.free_now = fleet.unalloc_count[:span] - ev.pending

    def scored(profile: Profile) -> FloatArray:
        values = kept.scores.get(profile)
        if values is None:
            if len(kept.scores) >= MAX_PROFILES:
                kept.scores.clear()
            whole = base_evaluation(
                fleet,
                query,
                sums,
                slice(0, span),
                code=kept.code[:span],
                chosen=kept.chosen[:, :span],
            )
            values = np.zeros(fleet.capacity)
            values[:span] = row_scores(fleet, whole, query.demand, profile)
            kept.scores[profile] = values
        return _read_only(values[:span])

    ev.scored = scored
    # What the reasons read, not the evaluation itself: a closure held by the evaluation that
    # held it back would be a reference cycle, freed only by the garbage collector.
    names, rows = ev.names, ev.rows
    ev.worded = lambda: _reasons(fleet, query, kept, (names, rows, code), sums)
    return ev


def _reasons(
    fleet: Fleet,
    query: Query,
    kept: Standing,
    named: tuple[Sequence[str], RowArray, IntArray],
    sums: Sums,
) -> Worded:
    """``rejects.reasons_of`` for a kept evaluation in which no named node fits (``named``: its
    names, their rows and the codes by row), with their split: the texts kept for the rows whose
    versions have not moved, the others worded from a full evaluation of those rows alone."""
    (names, rows, code), span = named, fleet.span
    if len(names) != len(query.names):  # names the fleet does not hold: worded in full
        return Worded(*reasons_of(fleet, query.names, evaluate_rows(fleet, query), query.demand))
    current = kept.text_report[:span] == kept.report[:span]
    current &= kept.text_claimed[:span] == kept.claimed[:span]
    current &= kept.claimed[:span] >= 0  # made with sums that stand
    current &= kept.text_code[:span] == code
    current &= (code != CODE_LEASE_OLD) & (code != CODE_REPORT_OLD)  # ``AGED``
    stale = np.flatnonzero(~current[rows])  # positions in the request
    at: list[int] = stale.tolist()
    texts: list[str] = []
    if at:
        redo = rows[stale]
        whole = len(redo) == span and bool((redo == np.arange(span)).all())
        cols: Cols = slice(0, span) if whole else redo
        worded = widened(full_columns(fleet, query, sums, cols), span, [names[i] for i in at])
        _, texts, _ = reasons_of(fleet, worded.names, worded, query.demand)
        if len(texts) != len(redo):
            raise AssertionError("a node the kept evaluation rejects fits in the full one")
        kept.texts[redo] = texts
        kept.text_report[redo] = kept.report[redo]
        kept.text_claimed[redo] = kept.claimed[redo]
        kept.text_code[redo] = code[redo]
    aligned, split_kept = kept.aligned, kept.split
    if aligned is None or aligned[0] is not names:  # a list of names not seen last time
        aligned = (names, kept.texts[rows].tolist(), RESOLVABLE[code[rows]].tolist())
        split_kept = None
    elif at:
        resolvable = RESOLVABLE[code[rows[stale]]].tolist()
        for i, text, flag in zip(at, texts, resolvable, strict=True):
            aligned[1][i], aligned[2][i] = text, flag
        if split_kept is not None and len(at) <= len(names) // 8:
            failed, hard = dict(split_kept[1]), dict(split_kept[2])  # handed out: copied
            for i, text, flag in zip(at, texts, resolvable, strict=True):
                node = names[i]
                failed.pop(node, None)
                hard.pop(node, None)
                (failed if flag else hard)[node] = text
            split_kept = (names, failed, hard)
        else:
            split_kept = None
    if split_kept is None:
        split_kept = (names, *split(names, aligned[1], aligned[2]))
    kept.aligned, kept.split = aligned, split_kept
    return Worded(names, aligned[1], aligned[2], split_kept[1:])


def _redo(fleet: Fleet, query: Query, kept: Standing, sums: Sums, cols: Cols) -> None:
    """Make the answers of ``cols`` again, and their scores for every profile kept."""
    sub = lean_columns(fleet, query, sums, cols)
    kept.code[cols] = sub.code
    kept.chosen[:, cols] = sub.chosen
    kept.same_island[cols] = sub.same_island
    kept.slot[cols] = sub.slot
    if not (sub.code == CODE_OK).any():  # no score of these rows is read until they move
        return
    for profile, values in kept.scores.items():
        values[cols] = row_scores(fleet, sub, query.demand, profile)


def _with_live(code: IntArray, rules: list[tuple[BoolArray, int]]) -> IntArray:
    """The codes with the live rules applied: a row keeps the first rule it fails in ``fit()``'s
    order, and the live rules sit together in that order (``LIVE_CODES``)."""
    (no_lease, _), (lease_old, _), (report_old, _) = rules
    stale = no_lease | lease_old
    stale |= report_old
    if not stale.any():  # the common case: every row's Lease and report are current
        return code.copy()  # not a view: the kept codes change with the next request
    live = np.zeros(len(code), dtype=np.int64)
    for rows, result in reversed(rules):
        np.copyto(live, result, where=rows)
    after = (code == CODE_OK) | (code > _LAST_LIVE)  # rules after the live ones, or none
    out: IntArray = np.where(after & (live != CODE_OK), live, code)
    return out


def _read_only(a: FloatArray) -> FloatArray:
    view = a[:]
    view.flags.writeable = False
    return view


__all__ = ["MAX_PROFILES", "MAX_SHAPES", "Standing", "kept_for", "standing_evaluation"]
