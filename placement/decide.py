"""``decide()``: evaluate every candidate node, score the feasible ones, pick the best.

This is what the extender's filter does and what the simulator calls, so both place pods the
same way. Ties go to the node name that sorts first, which keeps decisions reproducible.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from placement.fit import fit, hidden_gpus
from placement.model import (
    Decision,
    Demand,
    Fit,
    FitSettings,
    NodeState,
    Reject,
    Reservation,
    ReservationState,
)
from placement.policies import (
    DEFAULT_PROFILE,
    PROFILES,
    Profile,
    ScoreInput,
    loads_in_flight,
    score,
)


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


def decide(
    nodes: Iterable[NodeState],
    demand: Demand,
    reservations: Sequence[Reservation],
    *,
    now: float,
    settings: FitSettings = FitSettings(),
    profile: Profile | None = None,
    pod_uid: str = "",
) -> Decision:
    """Fit ``demand`` on each node, score the fits with ``profile``, and choose the best (pure).

    ``profile`` defaults to the pod's own (``demand.policy``) or ``binpack``. Reservations of
    ``pod_uid`` itself are ignored, as in ``fit()``.
    """
    prof = profile or resolve_profile(demand)
    others = tuple(r for r in reservations if r.pod_uid != pod_uid)
    fits: list[Fit] = []
    rejects: list[Reject] = []
    scores: list[tuple[str, float]] = []
    best: tuple[float, str, Fit] | None = None
    for node in nodes:
        result = fit(node, demand, others, now=now, settings=settings, pod_uid=pod_uid)
        if isinstance(result, Reject):
            rejects.append(result)
            continue
        fits.append(result)
        s = score(
            ScoreInput(
                node,
                demand,
                result,
                loads_in_flight(node.name, others, now),
                frozenset(hidden_gpus(node, others, now)),
            ),
            prof,
        )
        scores.append((node.name, s))
        if best is None or s > best[0] or (s == best[0] and node.name < best[1]):
            best = (s, node.name, result)
    return Decision(
        chosen=best[2] if best else None,
        scores=tuple(scores),
        fits=tuple(fits),
        rejects=tuple(rejects),
    )


def assume(
    chosen: Fit,
    demand: Demand,
    *,
    pod_uid: str,
    pod_key: str,
    now: float,
    ttl_s: float,
) -> Reservation:
    """The short-lived reservation the filter records for the node it returns (pure)."""
    return Reservation(
        pod_uid=pod_uid,
        pod_key=pod_key,
        node=chosen.node,
        gpu_uuids=chosen.gpu_uuids,
        bytes_per_gpu=demand.vram_per_gpu,
        state=ReservationState.ASSUMED,
        created_at=now,
        model_id=demand.model_id,
        expires_at=now + ttl_s,
    )
