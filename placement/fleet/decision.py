"""The fleet's answers to a query: which nodes fit on which GPUs, why the others do not, and
the one to place the pod on.

``decide_fleet`` is ``placement.reference.decide`` over a fleet: evaluate, score, choose, with
the same chosen node, GPUs, scores and rejects (``FleetDecision.decision()`` is its very
``Decision``), room kept for waiting pods as ``placement.room`` says, held equal by ``tests/placement/test_fleet_equivalence.py``. The extender's
filter calls it; ``verdict`` and ``evaluate`` answer with reasons for every node, and
``score_nodes`` (``placement.fleet.scores``) with scores only. Pure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import compress

import numpy as np

from placement.fleet.evaluation import (
    CODE_OK,
    Evaluation,
    Query,
    Worded,
    evaluate_rows,
    fitting,
)
from placement.fleet.rejects import NamedCounts, reasons_of, reject_counts, rejects_of, split
from placement.fleet.room import kept_rows
from placement.fleet.rows import FloatArray, RowArray
from placement.fleet.scores import row_scores
from placement.fleet.standing import kept_for, standing_evaluation
from placement.fleet.store import Fleet, names_hash
from placement.model import Decision, Fit, Reject
from placement.policies import Profile, resolve_profile


@dataclass(frozen=True, slots=True)
class FleetDecision:
    """What ``decide_fleet`` found, keyed by node name in request order.

    ``spanning`` names the fits whose GPUs are not all on one NVLink island. ``reject_counts``
    counts the named nodes that do not fit by reject class (``REJECT_CLASSES``), always.
    ``rejected`` names each of them, in request order, beside its reason and resolvable flag,
    unless the caller asked for no reasons while some node fits: then ``reasons`` is false and
    all three are empty. (When nothing fits and ``decide_fleet`` took its whole-fleet shortcut,
    they are in the fleet's own order, ``Fleet.every_name``: a scheduler extender's reply
    carries them as a map, which has no order.) They are kept as plain strings and flags
    rather than a ``Reject`` per node: at thousands of nodes, objects per node are most of the
    cost and feed the cyclic garbage collector (``rejects`` builds them on request). ``fits`` and ``scores`` hold every
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
    kept_split: tuple[dict[str, str], dict[str, str]] | None = None

    @property
    def rejects(self) -> dict[str, Reject]:
        """Each node that does not fit with its ``Reject``, in request order."""
        rejected = self.rejected
        made = map(Reject, rejected, self.reject_reasons, self.reject_resolvable)
        return dict(zip(rejected, made, strict=True))

    def split_rejects(self) -> tuple[dict[str, str], dict[str, str]]:
        """The reasons of the nodes that cannot take the pod now (``failed``) and of those that
        never could (``unresolvable``), each in request order: what a scheduler extender's
        filter reports. When the fleet kept them across requests (``kept_split``,
        ``placement.fleet.standing``), they are those maps, read-only and in no order (a
        reply's maps have none)."""
        if self.kept_split is not None:
            return self.kept_split
        return split(self.rejected, self.reject_reasons, self.reject_resolvable)

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


@dataclass(frozen=True, slots=True)
class FleetVerdict:
    """A filter's answer in the terms of the scheduler extender protocol, built without a
    ``Reject`` per node: the fits with their GPUs, and the reasons of the nodes that do not
    fit, split into resolvable (``failed``) and ``unresolvable``. Each keeps request order."""

    fits: dict[str, tuple[str, ...]]
    failed: dict[str, str]
    unresolvable: dict[str, str]


def _gpus_of(
    fleet: Fleet, ev: Evaluation, k: int, names: Sequence[str], rows: RowArray
) -> dict[str, tuple[str, ...]]:
    """The chosen GPU UUIDs of the fits ``names`` (in ``rows``), in GPU index order."""
    if k <= 0:
        return dict.fromkeys(names, ())
    if len(rows) == 1:  # the chosen node alone: no table to build
        r = int(rows[0])
        uuids = fleet.row(r).uuids
        return {names[0]: tuple(uuids[s] for s in np.flatnonzero(ev.chosen[:, r]).tolist())}
    if k == 1:
        return dict(zip(names, fleet.uuid_1[ev.slot[rows], rows].tolist(), strict=True))
    return dict(zip(names, fleet.chosen_uuids(ev.chosen, rows), strict=True))


def _fits(fleet: Fleet, ev: Evaluation, k: int) -> dict[str, tuple[str, ...]]:
    """The chosen GPU UUIDs of each fit, in GPU index order, in request order."""
    return _gpus_of(fleet, ev, k, *fitting(ev))


def verdict(fleet: Fleet, query: Query) -> FleetVerdict:
    """``evaluate()``'s answer as reason strings (pure): the same fits, the same reasons, the
    same resolvable flags, for a response that carries text, at a fraction of the cost."""
    ev = evaluate_rows(fleet, query)
    failed, unresolvable = split(*reasons_of(fleet, query.names, ev, query.demand))
    return FleetVerdict(
        fits=_fits(fleet, ev, query.demand.gpus), failed=failed, unresolvable=unresolvable
    )


def evaluate(
    fleet: Fleet, query: Query, *, reasons: bool = True
) -> tuple[dict[str, tuple[str, ...]], dict[str, Reject]]:
    """``fit()`` for every named node at once (pure): the fits with their GPUs, and the rejects.

    Each node gets exactly what ``fit(fleet.node(name), ...)`` gives: the same GPUs in the same
    order, the same reason, the same resolvable flag. A name the fleet does not hold is
    rejected with ``REASON_NO_REPORT`` (resolvable). Both dictionaries keep request order.
    With ``reasons=False`` the rejects are left out (empty) when some node fits: wording a
    reason per node is most of the cost, and a caller that only needs a node may skip it.
    """
    ev = evaluate_rows(fleet, query)
    fits = _fits(fleet, ev, query.demand.gpus)
    return fits, rejects_of(fleet, query.names, ev, query.demand) if reasons or not fits else {}


def score_nodes(fleet: Fleet, query: Query, *, profile: Profile | None = None) -> FloatArray:
    """By named node, in request order: the score ``decide_fleet`` gives it, NaN where it
    does not fit or the fleet does not hold it (pure). What a scheduler extender's prioritize
    needs, without a fit, a reject or a dictionary entry per node. ``profile`` defaults to the
    pod's own (``demand.policy``) or ``binpack``."""
    prof = profile or resolve_profile(query.demand)
    ev = standing_evaluation(fleet, query)
    out = np.full(len(query.names), np.nan)
    if not len(ev.rows):
        return out
    values = row_scores(fleet, ev, query.demand, prof)
    known = ev.named_rows >= 0
    rows = ev.named_rows[known]
    out[known] = np.where(ev.code[rows] == CODE_OK, values[rows], np.nan)
    return out


MAX_REFUSED = 1 << 12
"""Demands ``Fleet.refused_memo`` keeps before it forgets them all."""


def decide_fleet(
    fleet: Fleet,
    query: Query,
    *,
    profile: Profile | None = None,
    reasons: bool = True,
    all_fits: bool = True,
) -> FleetDecision:
    """``decide()`` over the named nodes of ``fleet`` (pure): evaluate, score, choose.

    The chosen node, its GPUs, every score and every reject equal ``decide()``'s on the same
    nodes (``FleetDecision.decision()`` is its very ``Decision``); ties go to the name that
    sorts first. ``reject_counts`` counts the rejected nodes by class. ``profile`` defaults to
    the pod's own (``demand.policy``) or ``binpack``.

    Two switches leave out what a caller does not need, at thousands of nodes most of the
    cost: ``reasons=False`` words the rejects only when no node fits (a scheduler extender
    reports them only then), ``all_fits=False`` keeps only the chosen node in ``fits`` and
    ``scores``. Neither changes the choice.

    With both off, a request that names every node the fleet holds (the common case: the
    scheduler passes on every node its own filters let through) is answered over the fleet's
    own list of names, which it keeps with their rows, rather than by looking each name up
    (``every_name``). The chosen node is checked by name to be one the request named, so the
    choice is the request's whatever else it names (a fit among more nodes is the best among
    fewer). The reject counts are then settled when first read (``NamedCounts``): the hash of
    the set of names says whether the request named exactly the fleet's nodes, and they are
    counted again over the request when it did not. When no node fits and that hash is the
    fleet's, the reasons are worded over the fleet's own list, in its order. Only by a
    collision of Python's keyed hash would the counts, or the nodes the reasons name, take in
    a node the request did not name.
    """
    prof = profile or resolve_profile(query.demand)
    lean = not reasons
    if not (reasons or all_fits) and len(query.names) == len(fleet) > 1:
        every = dataclasses.replace(query, names=fleet.every_name())
        # A demand no node took last time is evaluated in full at once: its reasons are likely
        # the answer again, and the full evaluation chooses as the lean one does. (A demand
        # whose answers the fleet keeps has its reasons kept too.)
        memo, asked = fleet.refused_memo, (query.demand, query.settings)
        refused = memo.get(asked, False) and not kept_for(fleet, every)
        ev = evaluate_rows(fleet, every) if refused else standing_evaluation(fleet, every)
        fits = bool((ev.code[ev.rows] == CODE_OK).any())
        if len(memo) > MAX_REFUSED:
            memo.clear()
        memo[asked] = not fits
        if query.names is every.names:  # the fleet's own list (extender.ahead asks so)
            return _decide(fleet, every, prof, reasons=False, all_fits=False, ev=ev)
        if fits:
            got = _decide(fleet, every, prof, reasons=False, all_fits=False, ev=ev)
            if got.chosen is not None and got.chosen.node in query.names:
                counts = NamedCounts(query.names, ev, got.reject_counts, fleet.every_hash())
                return dataclasses.replace(got, reject_counts=counts)
        elif names_hash(query.names) == fleet.every_hash():
            # No node fits, so no named one does: the reasons are the answer, worded in full
            # over the fleet's own list, which is the request's set of names.
            return _decide(fleet, every, prof, reasons=False, all_fits=False, ev=ev)
        else:
            lean = False  # the reasons, over the names as they came
    return _decide(fleet, query, prof, reasons=reasons, all_fits=all_fits, lean=lean)


def _decide(
    fleet: Fleet,
    query: Query,
    prof: Profile,
    *,
    reasons: bool,
    all_fits: bool,
    lean: bool = True,
    ev: Evaluation | None = None,
) -> FleetDecision:
    """``decide_fleet`` over the names of ``query`` as they are (``ev``: their evaluation,
    when the caller has it). Without reasons the evaluation is lean (unless ``lean`` is off);
    when nothing fits, the reasons are the answer and it is made in full."""
    names, demand = query.names, query.demand
    if ev is None:
        ev = (
            standing_evaluation(fleet, query)
            if lean and not reasons
            else evaluate_rows(fleet, query)
        )
    fit = ev.code[ev.rows] == CODE_OK
    if ev.lean and not fit.any() and ev.worded is None:
        ev = evaluate_rows(fleet, query)
    counts = reject_counts(names, ev)
    fit_rows = ev.rows if fit.all() else ev.rows[fit]
    if not len(fit_rows):
        kept = (
            ev.worded() if ev.worded is not None else Worded(*reasons_of(fleet, names, ev, demand))
        )
        return FleetDecision(
            None,
            {},
            {},
            tuple(kept.rejected),
            tuple(kept.texts),
            tuple(kept.resolvable),
            reject_counts=counts,
            kept_split=kept.split,
        )
    rejected, texts, resolvable = reasons_of(fleet, names, ev, demand) if reasons else ([], [], [])
    values = row_scores(fleet, ev, demand, prof)[fit_rows]
    pick = values
    if query.waiting:  # room for waiting pods: the best fit kept for no one, if any
        fit_mask = np.zeros(fleet.span, dtype=np.bool_)
        fit_mask[fit_rows] = True
        free = ~kept_rows(fleet, query, fit_mask)[fit_rows]
        if free.any():
            pick = np.where(free, values, -np.inf)
    tied = np.flatnonzero(pick == pick.max())
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
