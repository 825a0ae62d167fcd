"""A multi-node group placed whole or not at all: one decision for every member at once (pure).

Placing a group's pods one by one holds GPUs that nothing can use until the last member lands,
and two groups that each got half can wait on each other forever. ``decide_group`` chooses a
node for every member in one go, over the fleet's public answers (``placement.fleet``): each
member is asked the fleet's own ``decide_fleet`` question, with the members placed before it
counted as reservations, so every member's node is one ``fit()`` accepts, GPUs and all.

The rules:

* one pool: every member's node has the same GPU product(s) and GPU count (a group's ranks
  run the same kernels at the same speed);
* one topology domain: when ``domains`` gives nodes a value of a topology label, every member
  goes to nodes of one value (nodes without the label are a domain of their own);
* members may share a node only where the node fits all of them (counted as reservations);
* members already bound (``fixed``) keep their nodes and fix the pool and domain;
* the largest members are placed first; of the pools and domains that take every member, the
  one whose members score best (the fleet's policies) wins, ties to the one that sorts first.

A group that does not fit whole gets a ``GroupRefusal`` with one bounded reason, which names
counts only (never a label a pod author wrote), and nothing is reserved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from placement.fleet import Fleet, Query, decide_fleet
from placement.lifecycle import assume
from placement.model import Demand, Fit, FitSettings, Reservation
from placement.policies import resolve_profile


@dataclass(frozen=True, slots=True)
class Member:
    """One pod of a group still to be placed: its UID, ``namespace/name``, demand and rank."""

    uid: str
    key: str
    demand: Demand
    rank: int = 0


@dataclass(frozen=True, slots=True, order=True)
class Pool:
    """Nodes a group's members may share: the same GPU products and count, one domain."""

    products: tuple[str, ...]
    gpus: int
    domain: str = ""

    def describe(self) -> str:
        where = f" in {self.domain}" if self.domain else ""
        return f"{self.gpus}x {'/'.join(self.products) or 'no GPU'}{where}"


@dataclass(frozen=True, slots=True)
class GroupQuery:
    """The question for a whole group.

    ``names`` are the candidate nodes (kube-scheduler's, for the member being filtered);
    ``members`` the pods to place; ``fixed`` maps members already bound to their nodes;
    ``reservations`` are those every decision counts (the fleet's ``claims``, less the
    group's own); ``domains`` maps a node to its topology domain (absent: none).
    """

    names: Sequence[str]
    members: Sequence[Member]
    reservations: Sequence[Reservation]
    now: float
    settings: FitSettings = FitSettings()
    policy: str = "binpack"
    fixed: Mapping[str, str] = field(default_factory=dict)
    domains: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GroupPlan:
    """Every member's node and GPUs, in one pool."""

    pool: Pool
    placements: tuple[tuple[Member, Fit], ...]
    score: float

    def node_of(self, uid: str) -> str | None:
        return next((f.node for m, f in self.placements if m.uid == uid), None)

    def reservations(self, *, now: float, expires_at: float) -> list[Reservation]:
        """The group's reservations, all made at ``now`` and all ending at ``expires_at``."""
        return [
            assume(fit, m.demand, pod_uid=m.uid, pod_key=m.key, now=now, ttl_s=expires_at - now)
            for m, fit in self.placements
        ]


@dataclass(frozen=True, slots=True)
class GroupRefusal:
    """Why a group is not placed: one bounded reason for every member, and whether it could
    ever fit (``resolvable``) on these nodes."""

    reason: str
    fitted: int
    resolvable: bool = True


def pool_of(fleet: Fleet, name: str, domains: Mapping[str, str]) -> Pool | None:
    """The pool of node ``name`` (``None`` when the fleet holds no report of it)."""
    if name not in fleet:
        return None
    gpus = fleet.node(name).gpus
    return Pool(tuple(sorted({g.product for g in gpus})), len(gpus), domains.get(name, ""))


def _order(members: Sequence[Member]) -> list[Member]:
    """Largest first: GPUs, then VRAM per GPU; then rank and UID, so the order is total."""
    return sorted(members, key=lambda m: (-m.demand.gpus, -m.demand.vram_per_gpu, m.rank, m.uid))


def _place(
    fleet: Fleet, names: list[str], members: list[Member], query: GroupQuery
) -> tuple[list[tuple[Member, Fit]], float]:
    """Place ``members`` in order on ``names``, each counting those placed before it; stops at
    the first that does not fit. Returns the placements and their summed scores."""
    placed: list[tuple[Member, Fit]] = []
    tentative: list[Reservation] = []
    total = 0.0
    for m in members:
        decision = decide_fleet(
            fleet,
            Query(
                names,
                m.demand,
                [*query.reservations, *tentative],
                now=query.now,
                settings=query.settings,
                pod_uid=m.uid,
            ),
            profile=resolve_profile(m.demand, query.policy),
            reasons=False,
            all_fits=False,
        )
        if decision.chosen is None:
            break
        placed.append((m, decision.chosen))
        total += decision.scores.get(decision.chosen.node, 0.0)
        tentative.append(
            assume(decision.chosen, m.demand, pod_uid=m.uid, pod_key=m.key, now=query.now, ttl_s=1)
        )
    return placed, total


def _pools(fleet: Fleet, query: GroupQuery) -> dict[Pool, list[str]]:
    """The candidate nodes by pool, in request order; only the fixed members' pool when some
    are bound already."""
    pools: dict[Pool, list[str]] = {}
    for name in query.names:
        pool = pool_of(fleet, name, query.domains)
        if pool is not None:
            pools.setdefault(pool, []).append(name)
    fixed = {pool_of(fleet, n, query.domains) for n in query.fixed.values()}
    if fixed:
        pools = {p: ns for p, ns in pools.items() if p in fixed}
    return pools


def refusal_reason(size: int, gpus: int, fitted: int, *, domains: bool) -> str:
    """Pure: the reason every member of a refused group gives (counts only, bounded)."""
    where = "one pool and topology domain" if domains else "one pool"
    return (
        f"vramfit: this pod's group of {size} pods ({gpus} GPUs) does not fit whole on {where}: "
        f"at most {fitted} of {size} fit together now; nothing is reserved until all do"
    )


def _never(fleet: Fleet, query: GroupQuery, members: list[Member]) -> bool:
    """Whether some member fits on none of the candidates even with nothing else reserved."""
    names = list(query.names)
    for m in members:
        decision = decide_fleet(
            fleet,
            Query(names, m.demand, [], now=query.now, settings=query.settings, pod_uid=m.uid),
            reasons=True,
        )
        if decision.chosen is None and names and not any(decision.reject_resolvable):
            return True
    return False


def decide_group(fleet: Fleet, query: GroupQuery) -> GroupPlan | GroupRefusal:
    """Pure: a node for every member of ``query`` in one pool and domain, or why not.

    Each member's node and GPUs are what ``decide_fleet`` chooses for it with the members
    placed before it counted; the plan holds only when every member is placed.
    """
    members = _order(query.members)
    size = len(members) + len(query.fixed)
    gpus = sum(m.demand.gpus for m in members)
    best: GroupPlan | None = None
    fitted = len(query.fixed)
    for pool, names in sorted(_pools(fleet, query).items()):
        placed, score = _place(fleet, names, members, query)
        fitted = max(fitted, len(query.fixed) + len(placed))
        if len(placed) < len(members):
            continue
        if best is None or score > best.score:
            best = GroupPlan(pool, tuple(placed), score)
    if best is not None:
        return best
    reason = refusal_reason(size, gpus, fitted, domains=bool(query.domains))
    return GroupRefusal(reason, fitted, resolvable=not _never(fleet, query, members))


__all__ = [
    "GroupPlan",
    "GroupQuery",
    "GroupRefusal",
    "Member",
    "Pool",
    "decide_group",
    "pool_of",
    "refusal_reason",
]
