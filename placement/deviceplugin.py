"""Which GPUs the kubelet hands a pod with the stock NVIDIA device plugin: the rule, every answer
it may give, and the one vramfit predicts.

vramfit does not pick a pod's GPUs. With the device plugin, the kubelet does, from the devices no
running pod holds, guided by the plugin's preferred allocation; nothing there reads vramfit's
reservation. So a node is safe for a pod only if *every* set the rule may give satisfies it.

The rule, from the sources:

* kubelet (``kubernetes/kubernetes pkg/kubelet/cm/devicemanager/manager.go``,
  ``devicesToAllocate``): ``available = healthy - allocated``. With the default Topology Manager
  policy ``none`` there is no NUMA hint, so it calls the plugin's ``GetPreferredAllocation`` over
  all available devices, listed in Go map order (``sets.Set.UnsortedList()``: in effect a random
  order), and uses the answer.
* NVIDIA device plugin v0.20 (``internal/rm/nvml_manager.go``, ``alignedAlloc``) for full GPUs
  calls go-gpuallocator's ``NewBestEffortPolicy().Allocate(available, required, size)``
  (``gpuallocator/besteffort_policy.go``), with nothing required:

  1. pad the available list with ``None`` to a multiple of ``size``;
  2. enumerate every partition of it into sets of ``size``: the first device of each set in
     increasing list order, each set holding either no padding or all of it;
  3. keep the partition with the highest total score (the sum, over its sets, of the pair scores
     inside each set); the comparison is a strict ``>``, so the first one found wins a tie;
  4. within it, return the set without padding with the highest set score (the first wins a
     tie). Upstream also weighs the padded set here, and returns it with its padding when it
     scores highest, which the plugin then cannot turn into device IDs; a set of real GPUs is
     what a pod can get, so the padded set is left out.

  Pair scores: NVLink 100 per link (up to 1200 for 12 links); over PCIe cross-CPU 10, same CPU
  20, host bridge 30, multi-switch 40, single switch 50, same board 60. For one GPU every score
  is 0, so the first device in the (random) list wins. Free VRAM plays no part.

The simulated topology (``pair_scores``): GPUs of one NVLink island (``placement.shape.NvLink``)
score ``100 x links`` a pair, ``NVSWITCH_LINKS`` on an NVSwitch (all-to-all) node and
``ISLAND_LINKS`` in an island otherwise; every pair across islands scores ``PCIE_SCORE``, one
PCIe distance for all (the simulated nodes have no PCIe tree). Since every island of a node
scores alike, only which pairs share an island decides the answer, not the exact figures.

``preferred_allocation`` is the rule for one order of the list (the simulated kubelets shuffle
the list first, as the map order does). ``possible_allocations`` is every set the rule may give
under some order, ``always_one_island`` whether every one of them (also after the pods still
waiting for their GPUs took theirs) lies on one NVLink island, and ``predicted_allocation`` the
answer for the list in index order: vramfit's prediction. All three are memoized by layout,
available mask and size, so after warm-up a request pays a dictionary lookup. Pure.

Cost: where every available pair scores alike (an NVSwitch node, a node without NVLink) the
rule takes the first GPUs of the list, at once. Otherwise the search grows fast with the GPU
count; beyond ``EXACT_GPUS`` available GPUs of several islands (no such node is built today)
the prediction is the first GPUs in index order and ``always_one_island`` answers no, the safe
side.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator, Sequence

from placement.shape import NvLink

PairScore = Callable[[int, int], int]
"""The score of a pair of GPUs (by index); higher means closer."""

LINK_SCORE = 100
"""go-gpuallocator's score per NVLink link between two GPUs."""
NVSWITCH_LINKS = 12
"""Links counted for a pair of an NVSwitch node: the most go-gpuallocator scores (1200)."""
ISLAND_LINKS = 4
"""Links counted for a pair inside an NVLink island that is not a whole NVSwitch node."""
PCIE_SCORE = 10
"""The one PCIe score of every pair across islands (go-gpuallocator's cross-CPU score)."""

_CACHE = 1 << 16
EXACT_GPUS = 16
"""The most available GPUs of several islands for which the rule is searched exactly."""


def pair_scores(layout: NvLink) -> PairScore:
    """The pair score of the simulated topology ``layout`` (see the module docstring)."""
    island_of = {g: n for n, island in enumerate(layout.islands) for g in island}
    within = LINK_SCORE * (NVSWITCH_LINKS if layout.all_to_all else ISLAND_LINKS)

    def score(a: int, b: int) -> int:
        if a == b:
            return 0
        ia = island_of.get(a)
        return within if ia is not None and ia == island_of.get(b) else PCIE_SCORE

    return score


# -- the rule, for one order ------------------------------------------------------------------

Slot = int | None


def _uniform(available: Sequence[int], pair_score: PairScore) -> bool:
    """Whether every pair of ``available`` scores alike."""
    scores = {pair_score(a, b) for a, b in itertools.combinations(available, 2)}
    return len(scores) <= 1


def _set_score(members: Sequence[Slot], pair_score: PairScore) -> int:
    return sum(
        pair_score(a, b)
        for a, b in itertools.combinations(members, 2)
        if a is not None and b is not None
    )


def _bound(devices: Sequence[Slot], size: int, pair_score: PairScore) -> int:
    """An upper bound of the score of any partition of ``devices`` into sets of ``size``: the
    lower of each GPU's best ``size - 1`` pair scores among them, summed and halved, and the
    best pair scores among them, as many as the partition has pairs of real GPUs."""
    real = [d for d in devices if d is not None]
    short = size - (len(devices) - len(real))  # GPUs of the padded set, if any
    pairs = (len(real) // size) * size * (size - 1) // 2
    if short != size:
        pairs = ((len(real) - short) // size) * size * (size - 1) // 2 + short * (short - 1) // 2
    by_gpu = 0
    every: list[int] = []
    for i, d in enumerate(real):
        scores = sorted((pair_score(d, e) for e in real if e != d), reverse=True)
        by_gpu += sum(scores[: size - 1])
        every.extend(pair_score(d, e) for e in real[i + 1 :])
    every.sort(reverse=True)
    return min(by_gpu // 2, sum(every[:pairs]))


def preferred_allocation(
    available: Sequence[int], size: int, pair_score: PairScore
) -> tuple[int, ...]:
    """The set go-gpuallocator's best-effort policy returns for ``available`` in this order
    (pure; see the module docstring). ``()`` when ``size`` is not positive or more than there
    are; the GPUs of the set in list order otherwise.

    Exact: partitions are visited in upstream's order and replaced only by a strictly higher
    score; a branch is cut only where an upper bound says it cannot score higher than the best
    found, so the cut never changes the answer (it only keeps 16-GPU nodes quick).
    """
    devices: list[Slot] = list(available)
    if size <= 0 or len(devices) < size:
        return ()
    if size == 1 or _uniform(available, pair_score):
        # Every partition scores alike: the first, the list cut in order, wins, and its first
        # set.
        return tuple(available[:size])
    padding = -len(devices) % size
    devices.extend([None] * padding)
    best: list[tuple[Slot, ...]] | None = None
    best_score = 0

    def walk(rest: list[Slot], accum: list[tuple[Slot, ...]], score: int) -> None:
        nonlocal best, best_score
        if best is not None and score + _bound(rest, size, pair_score) <= best_score:
            return
        if len(rest) == size:
            total = score + _set_score(rest, pair_score)
            if best is None or total > best_score:
                best, best_score = [*accum, tuple(rest)], total
            return
        first, tail = rest[0], rest[1:]
        for picks in itertools.combinations(range(len(tail)), size - 1):
            chosen = (first, *(tail[i] for i in picks))
            held = chosen.count(None)
            if held not in (0, padding):
                continue
            remaining = [d for d in rest if d not in chosen]
            walk(remaining, [*accum, chosen], score + _set_score(chosen, pair_score))

    walk(devices, [], 0)
    assert best is not None  # at least one partition exists: len(devices) >= size
    whole = [s for s in best if None not in s]
    top = max(_set_score(s, pair_score) for s in whole)
    winner = next(s for s in whole if _set_score(s, pair_score) == top)
    return tuple(d for d in winner if d is not None)


# -- every answer, under any order ------------------------------------------------------------
#
# Under some order of the list, any partition of the highest score is the first one found (list
# its sets one after the other, the padded one last), and any of its best sets without padding
# comes first in it. So the possible answers are: the best sets of every best partition. With
# the layout's scores, GPUs of one island are interchangeable, and so are GPUs whose island has
# no other available GPU (they pair at the PCIe score with everything): the search runs over
# how many GPUs of each such class a set takes (a profile), not over the GPUs themselves.

Profile = tuple[int, ...]
Outcome = tuple[int, frozenset[Profile]]  # (best set bonus, the profiles that reach it)


def _set_bonus(profile: Profile, bonus: Profile) -> int:
    """What a set scores above ``PCIE_SCORE`` for every pair: its pairs inside one class."""
    return sum(b * c * (c - 1) // 2 for b, c in zip(bonus, profile, strict=True))


def _profiles(rem: Profile, size: int, first: int) -> Iterator[Profile]:
    """Every profile of ``size`` GPUs within ``rem`` that takes a GPU of class ``first``."""

    def rec(j: int, left: int, acc: tuple[int, ...]) -> Iterator[Profile]:
        if j == len(rem):
            if left == 0:
                yield acc
            return
        low = 1 if j == first else 0
        for c in range(min(rem[j], left), low - 1, -1):
            yield from rec(j + 1, left - c, (*acc, c))

    yield from rec(0, size, ())


@functools.lru_cache(maxsize=_CACHE)
def _best(
    rem: Profile, bonus: Profile, size: int, short: int, padded: bool
) -> tuple[int, frozenset[Outcome]]:
    """The highest total bonus of a partition of ``rem`` into sets of ``size`` (one of them of
    ``short`` GPUs when ``padded``), and the outcomes of the partitions that reach it."""
    if not any(rem):
        return (0, frozenset({(-1, frozenset())})) if not padded else (-1, frozenset())
    first = next(j for j, c in enumerate(rem) if c)
    top = -1
    found: set[Outcome] = set()
    kinds = [(size, False)] + ([(short, True)] if padded else [])
    for width, is_padded in kinds:
        for profile in _profiles(rem, width, first):
            after = tuple(r - c for r, c in zip(rem, profile, strict=True))
            value, outcomes = _best(after, bonus, size, short, padded and not is_padded)
            if value < 0:
                continue
            mine = _set_bonus(profile, bonus)
            total = value + mine
            if total < top:
                continue
            if total > top:
                top, found = total, set()
            for m, winners in outcomes:
                if is_padded or mine < m:
                    found.add((m, winners))
                elif mine > m:
                    found.add((mine, frozenset({profile})))
                else:
                    found.add((m, winners | {profile}))
    return top, frozenset(found)


def _classes(available: list[int], layout: NvLink) -> list[tuple[tuple[int, ...], int]]:
    """The available GPUs in classes of interchangeable ones, each with its pair bonus: one per
    island with at least two available GPUs, then the rest (bonus 0)."""
    score = pair_scores(layout)
    on = set(available)
    classes: list[tuple[tuple[int, ...], int]] = []
    loose: list[int] = []
    for island in layout.islands:
        members = tuple(g for g in island if g in on)
        if len(members) >= 2:
            classes.append((members, score(members[0], members[1]) - PCIE_SCORE))
        else:
            loose.extend(members)
    known = {g for members, _ in classes for g in members} | set(loose)
    loose.extend(g for g in available if g not in known)  # GPUs outside every island
    if loose:
        classes.append((tuple(sorted(loose)), 0))
    return classes


def bits(mask: int) -> list[int]:
    """The GPU indices set in ``mask``, lowest first."""
    return [g for g in range(mask.bit_length()) if mask >> g & 1]


def mask_of(gpus: Sequence[int] | frozenset[int]) -> int:
    """The mask of GPU indices ``gpus``."""
    m = 0
    for g in gpus:
        m |= 1 << g
    return m


@functools.lru_cache(maxsize=_CACHE)
def possible_allocations(
    available_mask: int, size: int, layout: NvLink
) -> frozenset[frozenset[int]]:
    """Every set of ``size`` GPUs the rule may give from the GPUs in ``available_mask`` (bit
    ``i`` is GPU index ``i``) on a node of ``layout``, under some order of the list (pure,
    memoized). Empty when ``size`` is not positive or more than are available."""
    available = bits(available_mask)
    if size <= 0 or len(available) < size:
        return frozenset()
    if size == 1:
        return frozenset(frozenset((g,)) for g in available)
    classes = _classes(available, layout)
    rem = tuple(len(members) for members, _ in classes)
    bonus = tuple(b for _, b in classes)
    padding = -len(available) % size
    _, outcomes = _best(rem, bonus, size, size - padding, padding > 0)
    found: set[frozenset[int]] = set()
    for profile in {p for _, winners in outcomes for p in winners}:
        parts = [
            itertools.combinations(members, c)
            for (members, _), c in zip(classes, profile, strict=True)
        ]
        for combo in itertools.product(*parts):
            found.add(frozenset(g for part in combo for g in part))
    return frozenset(found)


def _on_one_island(gpus: frozenset[int], layout: NvLink) -> bool:
    return any(gpus <= set(island) for island in layout.islands)


@functools.lru_cache(maxsize=_CACHE)
def always_one_island(
    available_mask: int, size: int, layout: NvLink, pending: tuple[int, ...] = ()
) -> bool:
    """Whether every set of ``size`` GPUs the rule may give from ``available_mask`` lies on one
    NVLink island, also after any of the ``pending`` pods (their GPU counts, sorted), which may
    get their GPUs first in any order, took any set the rule may give them (pure, memoized)."""
    if size <= 1 or layout.all_to_all:
        return True
    if any(available_mask & mask_of(island) == available_mask for island in layout.islands):
        return True  # every available GPU is on one island
    if len(bits(available_mask)) > EXACT_GPUS:
        return False
    if not all(
        _on_one_island(s, layout) for s in possible_allocations(available_mask, size, layout)
    ):
        return False
    for k in sorted(set(pending)):
        rest = list(pending)
        rest.remove(k)
        for taken in possible_allocations(available_mask, k, layout):
            if not always_one_island(available_mask & ~mask_of(taken), size, layout, tuple(rest)):
                return False
    return True


@functools.lru_cache(maxsize=_CACHE)
def predicted_allocation(available_mask: int, size: int, layout: NvLink) -> frozenset[int]:
    """vramfit's prediction (pure, memoized): what the rule gives when the kubelet happens to
    list the available GPUs in index order (beyond ``EXACT_GPUS`` of several islands, the first
    ones in index order). Empty when too few are available."""
    available = bits(available_mask)
    score = pair_scores(layout)
    if len(available) > EXACT_GPUS and not _uniform(available, score):
        return frozenset(available[:size]) if len(available) >= size else frozenset()
    return frozenset(preferred_allocation(available, size, score))


__all__ = [
    "EXACT_GPUS",
    "ISLAND_LINKS",
    "LINK_SCORE",
    "NVSWITCH_LINKS",
    "PCIE_SCORE",
    "PairScore",
    "always_one_island",
    "bits",
    "mask_of",
    "pair_scores",
    "possible_allocations",
    "predicted_allocation",
    "preferred_allocation",
]
