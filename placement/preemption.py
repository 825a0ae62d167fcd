"""Which of the pods kube-scheduler offers as preemption victims must go for a pod to fit a node
by vramfit's own rules, and when a gone pod's GPU memory is back (pure).

kube-scheduler preempts by counting whole GPUs: for each candidate node it removes every pod of
lower priority, then gives back as many as its own filters allow, the most important first, and
offers the rest as victims. It does not know that a 40 GB GPU cannot hold a 70 GiB pod whatever
is evicted, that the freed GPUs may lie on different NVLink islands, or that memory no pod owns
stays used. The extender's ``preempt`` verb may only narrow that offer (a victim the scheduler
did not offer would not be found on its node), node by node:

* the victims' GPUs are freed on a copy of the node (``without``): a GPU a victim holds is held
  by no pod, the memory the agent attributes to the victims' processes is free again, and their
  reservations (GPUs promised to a victim still loading) are gone; then ``fit()`` decides, with
  every rule it has (VRAM per GPU under the device plugin's rule, NVLink islands, reservations
  of other pods, GPU health, the agent's heartbeat and report age). Nothing here restates a
  rule: it only changes what the node holds and asks ``fit()``;
* a node where no set of them makes the pod fit is refused (``Refused``, with ``fit()``'s
  reject for the node with every offered victim gone). Evicting more is not always better: the
  kubelet may hand out any unallocated GPU, so a freed GPU that keeps memory no pod owns spoils
  a node where fewer victims would have done; sets are tried, not only the whole offer;
* otherwise the answer (``Chosen``) is the fewest victims that make the pod fit. Victims are
  ranked lowest priority first, then fewest GPUs freed, then the most recently started (an
  unknown start counts as the oldest), then UID. Among the sets of that fewest number, the one
  whose most important victim ranks lowest wins, then its next most important, and so on: sets
  are tried in colexicographic order of their ranks, which is exactly that order. So no proper
  subset of the answer fits, and no other set of its size that spares a more important pod
  does. The search is exact while at most ``SEARCH_BUDGET`` sets are examined (each must also
  free enough GPUs by count, checked before ``fit()``); beyond that it falls back to
  kube-scheduler's own loop: from every victim gone, give each back, the most important first,
  while the pod still fits. That answer is irreducible (no single victim can be spared) but not
  always the fewest (``Chosen.exact`` is false), and a node where the pod does not fit with
  every victim gone is then refused;
* victims that free nothing vramfit accounts for on the node (no GPU held, no GPU promised, no
  GPU memory) are kept as offered: the scheduler's loop gives back every pod its filters allow,
  so it offered them for something else it counts (CPU, memory, ports, the pod count), and
  evicting fewer would leave the pod short of that;
* when the pod fits with no victim at all by vramfit's rules, ``Chosen.victims`` is empty and
  the caller keeps the scheduler's offer (its own count says victims are needed, and a node must
  come back with at least one).

Across the nodes that work (``preferred``): kube-scheduler nominates one of the nodes the verb
keeps (pickOneNodeForPreemption), preferring the fewest disruption-budget violations, then the
lowest most important victim, then the lowest sum of priorities, then fewer victims and the
latest start. Those last criteria know nothing of the preemptor's own load: two pods preempting
one after the other would both be nominated to the node whose victims started last, and load
there together, though the first one's room there (``lifecycle.nominated_room``) is a load in
flight in vramfit's view. So the verb keeps a node only where the pod's load would do as well as on any
node kube-scheduler ranks no lower by its first three criteria: scored as the filter scores a
placement (``policies.score`` under the pod's profile: loads in flight on the node, weights
cached there, VRAM left, NVLink), on the node as it will be once the victims answered for it
are gone. A node is dropped only for one that disrupts no more by those criteria and scores
strictly higher, so the scheduler's pick among what is left never evicts a more important pod,
nor breaks more budgets, than its pick among the whole answer; the node it would have picked
stays unless such a node beats it; and the answer is never emptied.

``released`` is the end of a victim's claim on its GPUs once it is gone: a report of its node,
read after the pod was seen gone, that shows neither a GPU held by it nor memory of its
processes. Until then the memory of a pod that was still loading may still be in use.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from placement.fit import fit, hidden_gpus, pending_counts, promised, unallocated_gpus
from placement.fleet import Fleet, Query, decide_fleet
from placement.model import (
    Demand,
    Fit,
    FitSettings,
    GpuState,
    NodeState,
    PodMemory,
    Reject,
    Reservation,
)
from placement.policies import Profile, ScoreInput, loads_in_flight, score

SEARCH_BUDGET = 4096
"""The most victim sets the exact search examines on one node before it falls back to the
scheduler's own give-back loop (a node offers few victims; this bounds a hostile offer)."""


@dataclass(frozen=True, slots=True)
class Victim:
    """A pod kube-scheduler offers as a victim: its UID, priority and start time (epoch
    seconds, ``None`` when unknown)."""

    uid: str
    priority: int = 0
    started_at: float | None = None


@dataclass(frozen=True, slots=True)
class Chosen:
    """The victims to evict on ``node``, most important first (the order kube-scheduler keeps
    its victims in), and where the pod goes once they are gone. ``victims`` is empty when the
    pod fits with none; ``exact`` is false when the search fell back to the give-back loop."""

    node: str
    victims: tuple[str, ...]
    fit: Fit
    exact: bool = True


@dataclass(frozen=True, slots=True)
class Refused:
    """A node where the pod does not fit even with every offered victim gone: ``fit()``'s
    reject there."""

    node: str
    reject: Reject


def without(node: NodeState, uids: Collection[str]) -> NodeState:
    """``node`` as it will be once the pods ``uids`` are gone (pure): the GPUs they hold are
    held by no pod, and the memory the agent attributes to their processes is free. Memory no
    pod is known to use stays used; a GPU whose free memory is unknown stays unknown."""
    if not uids:
        return node
    return dataclasses.replace(node, gpus=tuple(_freed(g, uids) for g in node.gpus))


def _freed(g: GpuState, uids: Collection[str]) -> GpuState:
    gone = sum(m.bytes for m in g.pod_memory if m.pod_uid in uids)
    holder = None if g.holder_pod_uid in uids else g.holder_pod_uid
    if not gone and holder == g.holder_pod_uid:
        return g
    kept: tuple[PodMemory, ...] = tuple(m for m in g.pod_memory if m.pod_uid not in uids)
    free = None if g.free_bytes is None else min(g.total_bytes, g.free_bytes + gone)
    used = None if g.used_bytes is None else max(0, g.used_bytes - gone)
    return dataclasses.replace(
        g, holder_pod_uid=holder, pod_memory=kept, free_bytes=free, used_bytes=used
    )


def gpus_freed(node: NodeState, reservations: Iterable[Reservation], uid: str, now: float) -> int:
    """How many GPUs the kubelet may hand out once ``uid`` is gone, by count (pure): the healthy
    GPUs outside MIG mode it holds, and those its active reservations still promise it."""
    held = sum(1 for g in node.gpus if g.holder_pod_uid == uid and g.healthy and not g.mig_enabled)
    waiting = sum(
        len(promised(node, r))
        for r in reservations
        if r.pod_uid == uid and r.node == node.name and r.active(now)
    )
    return held + waiting


def _touches(node: NodeState, reservations: Iterable[Reservation], uid: str) -> bool:
    """Whether ``uid`` holds a GPU of ``node``, uses memory on one, or has a reservation
    there: whether evicting it changes anything vramfit accounts for."""
    if any(r.pod_uid == uid for r in reservations):
        return True
    return any(
        g.holder_pod_uid == uid or any(m.pod_uid == uid for m in g.pod_memory) for g in node.gpus
    )


def rank(victim: Victim, freed: int) -> tuple[int, int, float, str]:
    """The victim's place in the order victims are taken: lowest priority, fewest GPUs freed,
    most recently started (unknown counts as the oldest), then UID."""
    started = -victim.started_at if victim.started_at is not None else math.inf
    return (victim.priority, freed, started, victim.uid)


def importance(victim: Victim) -> tuple[int, float, str]:
    """kube-scheduler's order of importance (its ``MoreImportantPod``): higher priority first,
    then the earlier start; UID for a stable order."""
    started = victim.started_at if victim.started_at is not None else -math.inf
    return (-victim.priority, started, victim.uid)


def colex(n: int, size: int) -> Iterator[tuple[int, ...]]:
    """Every ``size``-subset of ``range(n)``, as increasing tuples, in colexicographic order:
    the highest member lowest first, then the next highest, and so on (pure)."""
    if size == 0:
        yield ()
        return
    for top in range(size - 1, n):
        for rest in colex(top, size - 1):
            yield (*rest, top)


def choose_victims(
    node: NodeState,
    demand: Demand,
    offered: Sequence[Victim],
    reservations: Iterable[Reservation],
    *,
    now: float,
    settings: FitSettings = FitSettings(),
    pod_uid: str = "",
    budget: int = SEARCH_BUDGET,
) -> Chosen | Refused:
    """The fewest of the ``offered`` victims whose going makes the pod fit ``node`` by
    ``fit()``'s rules, or why no set does (pure; see the module docstring for the order, the
    bystanders kept and what is exact). ``reservations`` may hold any node's; the pod's own
    (``pod_uid``) is ignored, as in ``fit()``. A victim offered twice counts once."""
    unique = list({v.uid: v for v in offered}.values())
    others = [r for r in reservations if r.node == node.name and r.pod_uid != pod_uid]
    uids = {v.uid for v in unique}

    def fits_without(gone: Collection[str]) -> Fit | Reject:
        rest = [r for r in others if r.pod_uid not in gone]
        return fit(without(node, gone), demand, rest, now=now, settings=settings, pod_uid=pod_uid)

    already = fit(node, demand, others, now=now, settings=settings, pod_uid=pod_uid)
    if isinstance(already, Fit):
        return Chosen(node.name, (), already)
    freeing = [v for v in unique if _touches(node, others, v.uid)]
    touching = {v.uid for v in freeing}
    bystanders = [v for v in unique if v.uid not in touching]
    freed = {v.uid: gpus_freed(node, others, v.uid, now) for v in freeing}
    ordered = sorted(freeing, key=lambda v: rank(v, freed[v.uid]))
    deficit = _deficit(node, demand, others, now, pod_uid)
    found, complete = _search(ordered, freed, deficit, budget, fits_without)
    exact = found is not None
    if found is None:
        everyone = fits_without(uids)
        if isinstance(everyone, Reject):
            return Refused(node.name, everyone)
        # Only when the budget cut the search short: an exhausted search finds every set.
        assert not complete
        found = _give_back(ordered, everyone, fits_without)
    chosen, where = found
    kept = sorted([*chosen, *bystanders], key=importance)
    return Chosen(node.name, tuple(v.uid for v in kept), where, exact)


FitsWithout = Callable[[Collection[str]], Fit | Reject]
Found = tuple[list[Victim], Fit]


def _deficit(
    node: NodeState, demand: Demand, others: Sequence[Reservation], now: float, pod_uid: str
) -> int:
    """How many GPUs the victims must free at least, by count: the pod's GPUs less those the
    kubelet may hand out now that no waiting pod is promised."""
    unallocated, _ = unallocated_gpus(node.gpus, pod_uid)
    return demand.gpus - (len(unallocated) - sum(pending_counts(node, others, now)))


def _search(
    ordered: Sequence[Victim],
    freed: Mapping[str, int],
    deficit: int,
    budget: int,
    fits_without: FitsWithout,
) -> tuple[Found | None, bool]:
    """The first set, by size and then in colexicographic order of ranks, that frees enough
    GPUs by count and makes the pod fit, and whether the search saw every set it had to: false
    when it stopped after ``budget`` sets."""
    counts = sorted((freed[v.uid] for v in ordered), reverse=True)
    smallest = next((s for s in range(len(counts) + 1) if sum(counts[:s]) >= deficit), 0)
    examined = 0
    for size in range(max(1, smallest), len(ordered) + 1):
        for picks in colex(len(ordered), size):
            examined += 1
            if examined > budget:
                return None, False
            chosen = [ordered[i] for i in picks]
            if sum(freed[v.uid] for v in chosen) < deficit:
                continue
            result = fits_without({v.uid for v in chosen})
            if isinstance(result, Fit):
                return (chosen, result), True
    return None, True


def _give_back(ordered: Sequence[Victim], where: Fit, fits_without: FitsWithout) -> Found:
    """kube-scheduler's loop: from every victim gone (where the pod fits, at ``where``), give
    each back, the most important first, while the pod still fits."""
    gone = list(ordered)
    for v in reversed(ordered):
        trial = [g for g in gone if g.uid != v.uid]
        result = fits_without({g.uid for g in trial})
        if isinstance(result, Fit):
            gone, where = trial, result
    return gone, where


INT32_SPAN = 2**31
"""What kube-scheduler adds to each priority before summing them (MaxInt32 + 1)."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A node the verb keeps for the pod, as the comparison across nodes reads it: the view of
    the node before any victim goes, the reservations there (others are ignored), what
    ``choose_victims`` found, the victims answered for the node (its ``Chosen.victims``, or
    the whole offer when vramfit needs none) and the disruption-budget violations answered."""

    node: NodeState
    reservations: tuple[Reservation, ...]
    chosen: Chosen
    victims: tuple[Victim, ...]
    pdb_violations: int = 0


def disruption(c: Candidate) -> tuple[int, int, int]:
    """kube-scheduler's first three criteria for the node to preempt on, lowest first: the
    disruption-budget violations, the priority of the most important victim, the sum of the
    victims' priorities (each plus 2^31, as the scheduler sums them) (pure)."""
    top = max((v.priority for v in c.victims), default=-INT32_SPAN)
    return (c.pdb_violations, top, sum(v.priority + INT32_SPAN for v in c.victims))


def load_score(
    c: Candidate, demand: Demand, *, now: float, profile: Profile, pod_uid: str = ""
) -> float:
    """The score ``profile`` gives the pod on ``c``'s node once the victims answered for it are
    gone, as the filter scores a placement (pure): their GPUs and memory free, their
    reservations gone (a victim still loading is no load in flight any more), the pod on the
    GPUs ``choose_victims`` found. The pod's own reservation (its room) is ignored."""
    gone = {v.uid for v in c.victims}
    rest = [
        r
        for r in c.reservations
        if r.node == c.node.name and r.pod_uid != pod_uid and r.pod_uid not in gone
    ]
    after = without(c.node, gone)
    return score(
        ScoreInput(
            after,
            demand,
            c.chosen.fit,
            loads_in_flight(after.name, rest, now),
            frozenset(hidden_gpus(after, rest, now)),
        ),
        profile,
    )


def preferred(
    candidates: Sequence[Candidate],
    demand: Demand,
    *,
    now: float,
    profile: Profile,
    pod_uid: str = "",
) -> tuple[str, ...]:
    """The candidates' nodes the verb keeps, in the given order (pure; see the module
    docstring): those where no candidate that kube-scheduler ranks no lower
    (``disruption``) gives the pod a strictly higher ``load_score``. Empty only when
    ``candidates`` is."""
    scored = [
        (disruption(c), load_score(c, demand, now=now, profile=profile, pod_uid=pod_uid), i)
        for i, c in enumerate(candidates)
    ]
    kept: list[int] = []
    best = -math.inf  # the highest score among the candidates ranked no lower than this group
    ordered = sorted(scored)
    start = 0
    while start < len(ordered):
        end = start
        while end < len(ordered) and ordered[end][0] == ordered[start][0]:
            end += 1
        group = ordered[start:end]
        best = max(best, *(s for _, s, _ in group))
        kept.extend(i for _, s, i in group if s >= best)
        start = end
    return tuple(candidates[i].node.name for i in sorted(kept))


def refusal_class(
    node: NodeState,
    demand: Demand,
    reservations: Iterable[Reservation],
    *,
    now: float,
    settings: FitSettings = FitSettings(),
    pod_uid: str = "",
) -> str:
    """The reject class (``placement.fleet.REJECT_CLASSES``: short, bounded, a metric label)
    of what ``fit()`` says about ``node``; "" when the pod fits there (pure). The fleet words
    every reject exactly as ``fit()`` does, and classes it."""
    fleet = Fleet([node], capacity=1, width=max(1, len(node.gpus)))
    query = Query([node.name], demand, list(reservations), now, settings, pod_uid)
    counts = decide_fleet(fleet, query).reject_counts
    return next((c for c, n in sorted(counts.items()) if n), "")


def released(node: NodeState, pod_uid: str) -> bool:
    """Whether ``node``'s report shows nothing left of the pod ``pod_uid``: no GPU held by it
    and no memory of its processes (pure). Read it only from a report newer than the moment the
    pod was seen gone."""
    return not any(
        g.holder_pod_uid == pod_uid or any(m.pod_uid == pod_uid for m in g.pod_memory)
        for g in node.gpus
    )


__all__ = [
    "INT32_SPAN",
    "SEARCH_BUDGET",
    "Candidate",
    "Chosen",
    "Refused",
    "Victim",
    "choose_victims",
    "colex",
    "disruption",
    "gpus_freed",
    "importance",
    "load_score",
    "preferred",
    "rank",
    "refusal_class",
    "released",
    "without",
]
