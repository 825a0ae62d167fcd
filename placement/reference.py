"""``decide()``: the readable reference for placing one pod. Fit every node, score, choose.

This is the definition, written for reading: one node at a time, with ``fit()`` and
``policies.score()``. The extender does not call it; it calls the vectorized form over its
whole fleet, ``placement.fleet.decide_fleet``, which must give exactly this answer (the same
chosen node and GPUs, every score bit for bit, every reject). A hypothesis test on random
fleets holds the fast path to this reference: ``tests/placement/test_fleet_equivalence.py``.
The simulator calls it when asked to check itself against the reference. Change a rule here
and in ``fit()`` first; the fleet follows.

Ties go to the node name that sorts first, which keeps decisions reproducible. Told the demand
that is waiting, the choice keeps room for larger pods (``placement.room``): the best fit that
is kept for none of them, else the best of all.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from placement.fit import fit, hidden_gpus
from placement.model import Decision, Demand, Fit, FitSettings, NodeState, Reject, Reservation
from placement.policies import Profile, ScoreInput, loads_in_flight, resolve_profile, score
from placement.room import Waiting, kept_nodes


def decide(
    nodes: Iterable[NodeState],
    demand: Demand,
    reservations: Sequence[Reservation],
    *,
    now: float,
    settings: FitSettings = FitSettings(),
    profile: Profile | None = None,
    pod_uid: str = "",
    eligible: Mapping[str, Collection[str]] | None = None,
    waiting: Waiting = (),
) -> Decision:
    """Fit ``demand`` on each node, score the fits with ``profile``, and choose the best (pure).

    ``profile`` defaults to the pod's own (``demand.policy``) or ``binpack``. Reservations of
    ``pod_uid`` itself are ignored, as in ``fit()``. ``eligible`` gives ``fit()`` the GPUs the
    pod may get on each node it names (a DRA claim's selectors). ``waiting`` is the demand that
    waits or may come, each with how many pods (``placement.room``).
    """
    prof = profile or resolve_profile(demand)
    others = tuple(r for r in reservations if r.pod_uid != pod_uid)
    nodes = list(nodes)
    fits: list[Fit] = []
    rejects: list[Reject] = []
    scores: list[tuple[str, float]] = []
    best: tuple[float, str, Fit] | None = None
    for node in nodes:
        result = fit(
            node,
            demand,
            others,
            now=now,
            settings=settings,
            pod_uid=pod_uid,
            eligible=None if eligible is None else eligible.get(node.name),
        )
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
    if waiting and best is not None:  # room for waiting pods: the best fit kept for no one
        fitting = [f.node for f in fits]
        kept = kept_nodes(
            nodes, demand, fitting, others, waiting, now=now, settings=settings, pod_uid=pod_uid
        )
        free = [
            (-s, name, f) for (name, s), f in zip(scores, fits, strict=True) if name not in kept
        ]
        if free:
            s, name, f = min(free, key=lambda c: (c[0], c[1]))
            best = (-s, name, f)
    return Decision(
        chosen=best[2] if best else None,
        scores=tuple(scores),
        fits=tuple(fits),
        rejects=tuple(rejects),
    )
