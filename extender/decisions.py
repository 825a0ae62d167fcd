"""What the extender answers, as pure functions over its view.

The HTTP handlers decode a request, take a ``View`` from the state, call one function here and
encode what it returns. Nothing here reads a clock, a lock or the network, so every rule is a
table test away. Placement itself is the shared core's: ``placement.fleet.decide_fleet``, the
vectorized form of ``placement.reference.decide`` (held equal to it by the core's tests), so the
simulator and the planner place pods exactly as the extender does.
"""

from __future__ import annotations

import enum
import math
from collections import Counter
from collections.abc import Callable, Collection, Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from extender.objects import PodInfo
from placement.demand import DemandError, demand_from_pod
from placement.fields import reason_line
from placement.fit import fit
from placement.fleet import (
    REASON_NO_REPORT,
    Fleet,
    FleetDecision,
    Query,
    decide_fleet,
    score_nodes,
)
from placement.model import Demand, Fit, FitSettings, Reject
from placement.policies import UnknownProfileError, resolve_profile


class Mode(enum.StrEnum):
    """How filter answers: only the chosen node (and assume it), or every feasible node."""

    DECIDE = "decide"
    ALL_FEASIBLE = "all-feasible"


class Outcome(enum.StrEnum):
    """What a filter did with a pod, for metrics and logs."""

    PLACED = "placed"
    FEASIBLE = "feasible"
    UNSCHEDULABLE = "unschedulable"
    PASSTHROUGH = "passthrough"
    INVALID_POD = "invalid-pod"


@dataclass(frozen=True, slots=True)
class View:
    """What one decision reads: valid only while the state's lock is held.

    ``fleet`` holds the nodes with a valid report, and in its ``claims`` every reservation (a
    decision counts the active ones, read from their sums); ``invalid`` maps a node to the
    reason its report could not be read; a node in neither has no report at all. ``waiting``
    is the demand of the GPU pods not bound yet, each shape with how many: the decision keeps
    room for them (``placement.room``).
    """

    fleet: Fleet
    invalid: Mapping[str, str]
    waiting: Sequence[tuple[Demand, int]] = ()


@dataclass(frozen=True, slots=True)
class FilterOutcome:
    """A filter answer plus what the extender must remember and count.

    ``failed`` and ``unresolvable`` hold reasons only when nothing passed; ``reject_codes``
    counts the nodes that do not fit by reason class (``REJECT_CLASSES``, ``report-invalid``).
    """

    outcome: Outcome
    passed: tuple[str, ...]
    failed: Mapping[str, str]
    unresolvable: Mapping[str, str]
    chosen: Fit | None = None
    reason: str = ""
    reject_codes: Mapping[str, int] = field(default_factory=dict)


_LINES: dict[str, str] = {}
"""Reasons already cut to one line, by text (``_bounded``): a fleet keeps its worded reasons, so
the same texts come back request after request. Forgotten all at once past ``MAX_LINES``."""
MAX_LINES = 1 << 16


def _bounded(reasons: Mapping[str, str]) -> dict[str, str]:
    """Pure: every reason one bounded line (``reason_line``): kube-scheduler shows them in the
    pod's events and the reply carries one per node. Each distinct text is cut once (and kept),
    and the reasons are kept as they are (a dict is not copied) when every text is a bounded
    line already."""
    if len(_LINES) > MAX_LINES:
        _LINES.clear()
    cut: dict[str, str] = {}
    for text in set(reasons.values()):
        line = _LINES.get(text)
        if line is None:
            line = _LINES[text] = reason_line(text)
        if line != text:
            cut[text] = line
    if not cut:  # the common case: no copy of thousands of entries
        return reasons if isinstance(reasons, dict) else dict(reasons)
    return {node: cut.get(text, text) for node, text in reasons.items()}


REPORT_INVALID = "report-invalid"
"""The reject class of a node whose GPU report could not be read; the placement core's
``REJECT_CLASSES`` name every other class (they are the metric's label values)."""


def _evaluate(
    view: View,
    names: Sequence[str],
    demand: Demand,
    *,
    now: float,
    settings: FitSettings,
    policy: str,
    pod_uid: str,
    all_fits: bool,
    eligible: Mapping[str, Collection[str]] | None = None,
) -> FleetDecision:
    """The core's decision, with reasons worded only when no node fits (and with every fit,
    or only the chosen one)."""
    return decide_fleet(
        view.fleet,
        Query(
            names,
            demand,
            view.fleet.claims,
            now=now,
            settings=settings,
            pod_uid=pod_uid,
            eligible=eligible,
            waiting=view.waiting,
        ),
        profile=resolve_profile(demand, policy),
        reasons=False,
        all_fits=all_fits,
    )


def waits(info: PodInfo) -> bool:
    """Pure: whether the pod is one whose demand waits for room (a GPU pod not bound yet, not
    terminating)."""
    return (
        info.demand is not None
        and info.demand.gpus > 0
        and not info.node_name
        and not info.terminating
        and info.phase in ("Pending", "")
    )


def waiting_shapes(
    unbound: Mapping[str, Demand], held: Container[str], limit: int
) -> tuple[tuple[Demand, int], ...]:
    """Pure: the demand a decision keeps room for (``placement.room``): of the ``unbound`` GPU
    pods (by UID) holding no reservation (``held``), the ``limit`` largest shapes (most GPUs
    first, then most pods), each with how many pods.

    Counted by object first, then merged by value: a dataclass hashes field by field, and a
    burst's pods share a handful of demand objects (``Shapes``), so this hashes ints."""
    if not unbound:
        return ()
    free = [d for uid, d in unbound.items() if uid not in held]
    objects = dict(zip(map(id, free), free, strict=True))
    shapes: Counter[Demand] = Counter()
    for key, n in Counter(map(id, free)).items():
        shapes[objects[key]] += n
    ranked = sorted(shapes.items(), key=lambda kv: (-kv[0].gpus, -kv[1]))
    return tuple(ranked[:limit])


class WaitingPods:
    """The GPU pods not bound yet, and of them those holding no reservation counted by
    demand object as pods and reservations come and go (``track``, and ``held`` from the
    reservations' ``Claims.on_membership``), so ``shapes`` reads a handful of counts instead of
    walking every pending pod of a burst for every filter. Equal to ``waiting_shapes`` over
    ``unbound`` and the reservations at any moment (a hypothesis test keeps them equal).
    Not locked: its owner serializes calls, as for the reservations."""

    def __init__(self, holds: Container[str]) -> None:
        self._holds = holds
        self.unbound: dict[str, Demand] = {}
        self._free: dict[int, int] = {}  # id(demand) -> pods holding no reservation
        self._objects: dict[int, Demand] = {}

    def _add(self, demand: Demand, n: int) -> None:
        key = id(demand)
        left = self._free.get(key, 0) + n
        if left > 0:
            self._free[key] = left
            self._objects[key] = demand
        else:
            self._free.pop(key, None)
            self._objects.pop(key, None)

    def track(self, uid: str, demand: Demand | None) -> None:
        """The pod ``uid`` waits with ``demand`` from now on, or (``None``) no longer waits."""
        old = self.unbound.pop(uid, None)
        if old is not None and uid not in self._holds:
            self._add(old, -1)
        if demand is not None:
            self.unbound[uid] = demand
            if uid not in self._holds:
                self._add(demand, 1)

    def held(self, uid: str, holds: bool) -> None:
        """The pod ``uid`` came to hold a reservation (``holds``) or stopped holding one."""
        demand = self.unbound.get(uid)
        if demand is not None:
            self._add(demand, -1 if holds else 1)

    def clear(self) -> None:
        self.unbound.clear()
        self._free.clear()
        self._objects.clear()

    def shapes(self, limit: int) -> tuple[tuple[Demand, int], ...]:
        """``waiting_shapes`` of the pods now: the ``limit`` largest shapes with their counts."""
        counts: Counter[Demand] = Counter()
        for key, n in self._free.items():
            counts[self._objects[key]] += n
        ranked = sorted(counts.items(), key=lambda kv: (-kv[0].gpus, -kv[1]))
        return tuple(ranked[:limit])


class Shapes:
    """Equal demands as one object each (at most ``limit`` kept, then forgotten together), so
    the pods of one workload, which ask alike, share their demand's object."""

    def __init__(self, limit: int = 4096) -> None:
        self._seen: dict[Demand, Demand] = {}
        self._limit = limit

    def of(self, demand: Demand) -> Demand:
        seen = self._seen.get(demand)
        if seen is None:
            if len(self._seen) >= self._limit:
                self._seen.clear()
            seen = self._seen[demand] = demand
        return seen


class LazyWaiting(Sequence[tuple[Demand, int]]):
    """``waiting_shapes`` as a view carries it, counted the first time a decision reads it:
    counting walks every GPU pod not bound yet, and a bind's re-check or a prioritize never
    reads it. Read it only while the state that made it stays locked."""

    def __init__(self, count: Callable[[], tuple[tuple[Demand, int], ...]]) -> None:
        self._count = count
        self._shapes: tuple[tuple[Demand, int], ...] | None = None

    def _read(self) -> tuple[tuple[Demand, int], ...]:
        if self._shapes is None:
            self._shapes = self._count()
        return self._shapes

    def __len__(self) -> int:
        return len(self._read())

    @overload
    def __getitem__(self, index: int) -> tuple[Demand, int]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[tuple[Demand, int]]: ...

    def __getitem__(self, index: int | slice) -> tuple[Demand, int] | Sequence[tuple[Demand, int]]:
        return self._read()[index]


class InvalidPodError(ValueError):
    """A pod whose vramfit annotations cannot be read; the message names the annotation."""


def read_demand(pod: Mapping[str, Any], policy: str, *, claimed_gpus: int = 0) -> Demand | None:
    """Pure: the pod's GPU demand (``None`` without GPUs); checks its policy name too.
    ``claimed_gpus`` are the GPUs its ResourceClaims ask for (``extender.claims_watch``).

    Raises ``InvalidPodError`` with a message a person can act on.
    """
    try:
        demand = demand_from_pod(pod, claimed_gpus=claimed_gpus)
        if demand is not None:
            resolve_profile(demand, policy)
    except (DemandError, UnknownProfileError) as exc:
        raise InvalidPodError(str(exc)) from None
    return demand


def passthrough(names: Sequence[str]) -> FilterOutcome:
    """Pure: a pod without GPU demand passes every node untouched."""
    return FilterOutcome(Outcome.PASSTHROUGH, tuple(names), {}, {})


def invalid_pod(names: Sequence[str], message: str) -> FilterOutcome:
    """Pure: a pod with unreadable annotations fails every node as unresolvable, with the
    message, so it shows in the pod's events and preemption does not try to help."""
    return FilterOutcome(
        Outcome.INVALID_POD,
        (),
        {},
        dict.fromkeys(names, reason_line(message)),
        reason="invalid-pod",
    )


def filter_nodes(
    demand: Demand,
    pod_uid: str,
    names: Sequence[str],
    view: View,
    *,
    now: float,
    mode: Mode,
    policy: str,
    settings: FitSettings,
    eligible: Mapping[str, Collection[str]] | None = None,
) -> FilterOutcome:
    """Pure: the filter answer for a GPU pod over the candidate ``names``; ``eligible`` limits
    the GPUs a DRA claim may get on the nodes it names (``Query.eligible``).

    In ``decide`` mode only the best node passes (the caller records an assumed reservation
    for it); in ``all-feasible`` mode every node that fits passes. When no node passes, nodes
    that cannot take the pod now go to ``failed`` and nodes that never could go to
    ``unresolvable``, each with its reason. When some node passes both stay empty:
    kube-scheduler reads them only when none passes (for the pod's event and for preemption),
    and at thousands of nodes wording a reason per node would be most of the filter's time.
    ``reject_codes`` counts the nodes that do not fit by reason class either way.
    """
    invalid = {n: view.invalid[n] for n in names if n in view.invalid} if view.invalid else {}
    if invalid:
        names = [n for n in names if n not in invalid]
    decision = _evaluate(
        view,
        names,
        demand,
        now=now,
        settings=settings,
        policy=policy,
        pod_uid=pod_uid,
        all_fits=mode is Mode.ALL_FEASIBLE,
        eligible=eligible,
    )
    # When a node passes, only the metrics read these (a whole-fleet decision counts late).
    codes: Mapping[str, int] = decision.reject_counts
    if invalid:
        codes = {**codes, REPORT_INVALID: len(invalid)}
    if decision.chosen is None:
        failed, unresolvable = decision.split_rejects()
        if invalid:
            failed = invalid | failed
        top = max(codes, key=lambda c: (codes[c], c)) if codes else "no-candidates"
        return FilterOutcome(
            Outcome.UNSCHEDULABLE,
            (),
            _bounded(failed),
            _bounded(unresolvable),
            reason=top,
            reject_codes=codes,
        )
    if mode is Mode.DECIDE:
        passed: tuple[str, ...] = (decision.chosen.node,)
        outcome = Outcome.PLACED
    else:
        passed = tuple(decision.fits)  # the fits keep request order
        outcome = Outcome.FEASIBLE
    return FilterOutcome(outcome, passed, {}, {}, chosen=decision.chosen, reject_codes=codes)


def to_priority(score: float) -> int:
    """Pure: a 0..10 float score as the extender protocol's integer priority (half rounds up)."""
    if math.isnan(score):
        return 0
    return max(0, min(10, math.floor(score + 0.5)))


def to_priorities(scores: Sequence[float] | npt.NDArray[np.float64]) -> list[int]:
    """Pure: ``to_priority`` of each score, array-wise (thousands per prioritize call)."""
    values = np.asarray(scores, dtype=np.float64)
    rounded = np.clip(np.floor(np.nan_to_num(values, nan=0.0) + 0.5), 0, 10)
    priorities: list[int] = rounded.astype(np.int64).tolist()
    return priorities


def prioritize_nodes(
    demand: Demand,
    pod_uid: str,
    names: Sequence[str],
    view: View,
    *,
    now: float,
    policy: str,
    settings: FitSettings,
    eligible: Mapping[str, Collection[str]] | None = None,
) -> list[int]:
    """Pure: a 0..10 priority for each candidate, in request order: the scores filter decides with.

    Nodes that do not fit score 0, so prioritize never overrides what filter said (a pod
    without GPU demand never gets here: it scores 0 everywhere).
    """
    scores = score_nodes(
        view.fleet,
        Query(
            names,
            demand,
            view.fleet.claims,
            now=now,
            settings=settings,
            pod_uid=pod_uid,
            eligible=eligible,
        ),
        profile=resolve_profile(demand, policy),
    )
    return to_priorities(scores)  # NaN (no fit): 0


def recheck(
    node_name: str,
    demand: Demand,
    view: View,
    *,
    pod_uid: str,
    now: float,
    settings: FitSettings,
    eligible: Collection[str] | None = None,
) -> Fit | Reject:
    """Pure: can ``node_name`` still take the pod at bind time (its own reservation aside), on
    the GPUs it may get there (``eligible``: a DRA claim's; ``None``: any)?"""
    if node_name not in view.fleet:
        reason = view.invalid.get(node_name, REASON_NO_REPORT)
        return Reject(node_name, reason, resolvable=True)
    return fit(
        view.fleet.node(node_name),
        demand,
        view.fleet.claims.on_node(node_name),  # the others are on other nodes: fit skips them
        now=now,
        settings=settings,
        pod_uid=pod_uid,
        eligible=eligible,
    )
