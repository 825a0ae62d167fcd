"""Scoring policies: named, documented, pure functions that rate a feasible node 0..10.

A profile combines policies with weights; the extender, the simulator and the planner pick a
profile by name (``binpack``, ``spread``) and a pod may override it with an annotation
(``resolve_profile``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from placement.model import Demand, Fit, NodeState, Reservation
from placement.topology import link_fraction

MAX_SCORE = 10.0


@dataclass(frozen=True, slots=True)
class ScoreInput:
    """Everything a policy may look at for one feasible node.

    ``hidden`` holds the node's GPUs that reservations have claimed but the node does not show
    as held yet (``placement.fit.hidden_gpus``): they are not free, whatever NVML says.
    """

    node: NodeState
    demand: Demand
    fit: Fit
    loads_in_flight: int
    hidden: frozenset[str] = frozenset()


PolicyFn = Callable[[ScoreInput], float]


@dataclass(frozen=True, slots=True)
class Policy:
    """One registered scoring function and what it rewards."""

    name: str
    description: str
    fn: PolicyFn


def _clamp(x: float) -> float:
    return max(0.0, min(MAX_SCORE, x))


def _free_fraction_after(s: ScoreInput) -> float:
    """Share of the node's total VRAM still free once the pod's GPUs are taken.

    Free means on a healthy GPU that no pod holds, no reservation has claimed, and the pod
    does not take.
    """
    total = sum(g.total_bytes for g in s.node.gpus)
    if total <= 0:
        return 0.0
    taken = s.hidden.union(s.fit.gpu_uuids)
    free = sum(
        (g.free_bytes or 0)
        for g in s.node.gpus
        if g.healthy and g.holder_pod_uid is None and g.uuid not in taken
    )
    return max(0.0, min(1.0, free / total))


def vram_binpack(s: ScoreInput) -> float:
    """Higher on nodes left fuller: keeps whole nodes free for the next large model."""
    return _clamp(MAX_SCORE * (1.0 - _free_fraction_after(s)))


def vram_spread(s: ScoreInput) -> float:
    """Higher on nodes left emptier: spreads load and blast radius."""
    return _clamp(MAX_SCORE * _free_fraction_after(s))


def in_flight_penalty(s: ScoreInput) -> float:
    """10 on a node with no load in flight, halved with each concurrent load sharing its disks."""
    return _clamp(MAX_SCORE * 0.5 ** max(0, s.loads_in_flight))


def cache_affinity(s: ScoreInput) -> float:
    """10 where the pod's model weights are already on local disk, 0 elsewhere (or no model)."""
    if s.demand.model_id and s.node.has_cached(s.demand.model_id):
        return MAX_SCORE
    return 0.0


def nvlink_quality(s: ScoreInput) -> float:
    """Share of the chosen GPU pairs joined by NVLink, scaled to 10 (10 for one GPU)."""
    return _clamp(MAX_SCORE * link_fraction(s.node, s.fit.gpu_uuids))


POLICIES: Mapping[str, Policy] = {
    p.name: p
    for p in (
        Policy("vram-binpack", vram_binpack.__doc__ or "", vram_binpack),
        Policy("vram-spread", vram_spread.__doc__ or "", vram_spread),
        Policy("in-flight-penalty", in_flight_penalty.__doc__ or "", in_flight_penalty),
        Policy("cache-affinity", cache_affinity.__doc__ or "", cache_affinity),
        Policy("nvlink-quality", nvlink_quality.__doc__ or "", nvlink_quality),
    )
}


@dataclass(frozen=True, slots=True)
class Profile:
    """A weighted mix of policies; its score is the weighted mean, so it stays in 0..10."""

    name: str
    weights: tuple[tuple[str, float], ...]

    @property
    def total_weight(self) -> float:
        """The sum of the weights, left to right."""
        total = 0.0
        for _, w in self.weights:
            total = total + w
        return total

    def __post_init__(self) -> None:
        unknown = [n for n, _ in self.weights if n not in POLICIES]
        if unknown:
            raise ValueError(
                f"profile {self.name!r}: unknown policies {unknown}; known: {sorted(POLICIES)}"
            )
        if (
            any(not math.isfinite(w) or w < 0 for _, w in self.weights)
            or sum(w for _, w in self.weights) <= 0
        ):
            raise ValueError(
                f"profile {self.name!r}: weights must be finite and >= 0 with a positive sum"
            )


PROFILES: Mapping[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "binpack",
            (
                ("vram-binpack", 2.0),
                ("in-flight-penalty", 3.0),
                ("cache-affinity", 3.0),
                ("nvlink-quality", 2.0),
            ),
        ),
        Profile(
            "spread",
            (
                ("vram-spread", 2.0),
                ("in-flight-penalty", 3.0),
                ("cache-affinity", 3.0),
                ("nvlink-quality", 2.0),
            ),
        ),
    )
}
DEFAULT_PROFILE = "binpack"


class UnknownProfileError(ValueError):
    """A policy profile name that is not registered."""


def resolve_profile(demand: Demand, default: str = DEFAULT_PROFILE) -> Profile:
    """The pod's own profile (annotation) if it names one, else ``default`` (pure)."""
    name = demand.policy or default
    if name not in PROFILES:
        raise UnknownProfileError(
            f"unknown placement policy {name!r}; known: {', '.join(sorted(PROFILES))}"
        )
    return PROFILES[name]


def loads_in_flight(node: str, reservations: Iterable[Reservation], now: float) -> int:
    """Active reservations on ``node`` whose load may still be running (pure)."""
    return sum(1 for r in reservations if r.node == node and r.active(now) and r.in_flight())


def score(s: ScoreInput, profile: Profile) -> float:
    """The profile's weighted mean of its policies for one feasible node, in 0..10 (pure).

    Summed left to right in the profile's order (not with ``sum()``, whose float rounding
    differs between Python versions), so the vectorized fleet scoring gives the same bits.
    """
    total = 0.0
    for n, w in profile.weights:
        total = total + POLICIES[n].fn(s) * w
    return _clamp(total / profile.total_weight)
