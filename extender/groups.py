"""Multi-node groups in the extender: who belongs to which group, and their reservations.

A LeaderWorkerSet replica, a KServe multi-node predictor or the pods of one PodGroup serve
together or not at all (``placement.membership`` says which pods form a group). The filter of
the first member that reaches the extender decides the whole group (``placement.groups``):
every member's node at once, reserved together in the state's claims, or nothing. A later
member's filter finds its reservation and passes only its node.

What this module keeps, fed by watches:

* the members of each group the pod watch has seen (pods of any scheduler, with or without
  GPUs: a member without GPUs still counts toward the group being complete, and passes
  through);
* the labels of each node that name a topology domain (``GroupSettings.topology_key``, or a
  group's own LeaderWorkerSet ``exclusive-topology`` key), from a Node watch.

A group's reservations are *assumed* ones that expire: they hold while the group's members are
pending, renewed by each member's filter (``hold_s``), never longer than ``max_hold_s`` after
the decision, which outlasts kube-scheduler's five-minute Permit wait for a gang. They end
when their pods are deleted, like any reservation, and when bind makes them durable they
become the pod's own. A group whose plan no longer holds (a member's reservation expired or
was released, a node dropped out or no longer fits, a member was replaced) has its unbound
reservations released and is decided again, whole, in the same request: no group is ever
partly reserved, so two groups never each hold part of what the other needs.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from extender.decisions import FilterOutcome, InvalidPodError, Outcome, View, recheck
from extender.objects import PodInfo
from extender.state import ClusterState
from extender.watch import WatchTarget
from extender.wire import PodRef
from placement.groups import GroupPlan, GroupQuery, GroupRefusal, Member, decide_group
from placement.lifecycle import FINISHED_PHASES
from placement.membership import (
    MAX_GROUP_SIZE,
    GroupKey,
    Membership,
    MembershipError,
    membership_of,
)
from placement.model import Demand, Fit, FitSettings, Reservation, ReservationState

log = logging.getLogger(__name__)

NODES = "nodes"
TOPOLOGY_ZONE = "topology.kubernetes.io/zone"
MAX_GROUPS = 10_000
"""Groups remembered at once (their members are pods that exist, so this bounds only a cluster
far larger than one scheduler serves)."""
MAX_MEMBERS = 4 * MAX_GROUP_SIZE
"""Pods remembered per group: a replaced generation may overlap the new one for a while."""

INCOMPLETE = (
    "vramfit: waiting for this pod's group: {have} of {size} pods exist; nothing is reserved "
    "until all do"
)
TOPOLOGY_UNKNOWN = "vramfit: node topology is not listed yet; this pod's group waits for it"
GROUP_UNFIT = "group-unfit"
GROUP_INCOMPLETE = "group-incomplete"


@dataclass(frozen=True, slots=True)
class GroupSettings:
    """How groups are held. ``topology_key`` is the node label whose value every member
    shares (a group's own LeaderWorkerSet ``exclusive-topology`` key wins), "" for none."""

    hold_s: float = 330.0
    max_hold_s: float = 1800.0
    topology_key: str = TOPOLOGY_ZONE


@dataclass(frozen=True, slots=True)
class NodeLabels:
    """A Node's name and the labels of it that may name a topology domain."""

    name: str
    labels: tuple[tuple[str, str], ...]


def read_node(raw: Mapping[str, Any]) -> NodeLabels | None:
    """Pure: a raw Node's name and its ``topology.*`` labels (``None`` without a name)."""
    meta = raw.get("metadata")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
        return None
    labels = meta.get("labels")
    found = (
        tuple(
            sorted(
                (k, v)
                for k, v in labels.items()
                if isinstance(k, str) and isinstance(v, str) and "topology" in k
            )
        )
        if isinstance(labels, Mapping)
        else ()
    )
    return NodeLabels(meta["name"], found)


@dataclass(frozen=True, slots=True)
class _Plan:
    """When a group was decided (its reservations never outlive ``decided_at + max_hold_s``)."""

    decided_at: float


class GroupTable:
    """Group members and node topology from watches, and the group decisions of filter."""

    def __init__(self, state: ClusterState, settings: GroupSettings | None = None) -> None:
        self.state = state
        self.settings = settings or GroupSettings()
        self._lock = threading.Lock()
        self._members: dict[GroupKey, dict[str, PodInfo]] = {}
        self._group_of: dict[str, GroupKey] = {}  # pod UID -> its group, for the members
        self._plans: dict[GroupKey, _Plan] = {}
        self._nodes: dict[str, dict[str, str]] = {}
        self._nodes_listed = False

    # ----- the pod watch ------------------------------------------------------------------------

    def _drop(self, uid: str) -> None:
        """Forget pod ``uid`` (and its group, when it was the last member)."""
        key = self._group_of.pop(uid, None)
        members = self._members.get(key) if key is not None else None
        if key is None or members is None:
            return
        members.pop(uid, None)
        if not members:
            del self._members[key]
            self._plans.pop(key, None)

    def _put(self, info: PodInfo) -> None:
        group = info.group
        if group is None or info.phase in FINISHED_PHASES or info.terminating:
            self._drop(info.uid)
            return
        if self._group_of.get(info.uid, group.key) != group.key:
            self._drop(info.uid)
        members = self._members.setdefault(group.key, {})
        if info.uid in members or len(members) < MAX_MEMBERS:
            members[info.uid] = info
            self._group_of[info.uid] = group.key
        while len(self._members) > MAX_GROUPS:
            oldest = next(iter(self._members))
            for uid in self._members.pop(oldest):
                self._group_of.pop(uid, None)
            self._plans.pop(oldest, None)

    def replace_pods(self, pods: Iterable[PodInfo]) -> None:
        """A full list of pods."""
        with self._lock:
            self._members.clear()
            self._group_of.clear()
            for info in pods:
                self._put(info)
            self._plans = {k: p for k, p in self._plans.items() if k in self._members}

    def apply_pod(self, event: str, info: PodInfo) -> None:
        """One Pod watch event."""
        with self._lock:
            if event == "DELETED":
                self._drop(info.uid)
            else:
                self._put(info)

    def following(
        self,
        replace: Callable[[list[PodInfo], float], None],
        apply: Callable[[str, PodInfo], None],
    ) -> tuple[Callable[[list[PodInfo], float], None], Callable[[str, PodInfo], None]]:
        """The pod watch's ``replace`` and ``apply``, each followed by this table's own."""

        def replace_both(pods: list[PodInfo], listed_at: float) -> None:
            replace(pods, listed_at)
            self.replace_pods(pods)

        def apply_both(event: str, info: PodInfo) -> None:
            apply(event, info)
            self.apply_pod(event, info)

        return replace_both, apply_both

    # ----- the node watch -----------------------------------------------------------------------

    def replace_nodes(self, nodes: Iterable[NodeLabels]) -> None:
        with self._lock:
            self._nodes = {n.name: dict(n.labels) for n in nodes}
            self._nodes_listed = True

    def apply_node(self, event: str, node: NodeLabels) -> None:
        with self._lock:
            if event == "DELETED":
                self._nodes.pop(node.name, None)
            else:
                self._nodes[node.name] = dict(node.labels)

    def node_target(self) -> WatchTarget:
        """The Node watch that feeds the topology labels."""

        def replace_raw(items: list[Mapping[str, Any]], _listed_at: float) -> None:
            self.replace_nodes(n for n in map(read_node, items) if n is not None)

        def apply_raw(event: str, raw: Mapping[str, Any]) -> None:
            node = read_node(raw)
            if node is not None:
                self.apply_node(event, node)

        return WatchTarget(NODES, "/api/v1/nodes", replace_raw, apply_raw)

    # ----- what filter asks ---------------------------------------------------------------------

    def _group(self, own: PodInfo, membership: Membership) -> tuple[list[PodInfo], int, str]:
        """The group's live members (the filtered pod among them), its size and topology key."""
        with self._lock:
            members = dict(self._members.get(membership.key, {}))
        members[own.uid] = own
        known = [m.group for m in members.values() if m.group is not None]
        sizes = [g.size for g in known if g.size is not None]
        size = max(sizes) if sizes else len(members)
        topology = next((g.topology_key for g in known if g.topology_key), "")
        ordered = sorted(members.values(), key=lambda m: (m.group.rank if m.group else 0, m.uid))
        return ordered, size, topology or self.settings.topology_key

    def _domains(self, key: str, names: Sequence[str]) -> dict[str, str] | None:
        """Each named node's value of label ``key`` (absent: none); ``None`` before the first
        list of nodes."""
        if not key:
            return {}
        with self._lock:
            if not self._nodes_listed:
                return None
            return {n: v for n in names if (v := self._nodes.get(n, {}).get(key, ""))}

    def filter(
        self,
        pod: Mapping[str, Any],
        ref: PodRef,
        demand: Demand,
        names: Sequence[str],
        *,
        now: float,
        settings: FitSettings,
        policy: str,
    ) -> FilterOutcome | None:
        """The filter answer for a member of a group, or ``None`` for a pod placed alone.

        Raises ``InvalidPodError`` when the pod's group labels cannot be read.
        """
        try:
            membership = membership_of(pod)
        except MembershipError as exc:
            raise InvalidPodError(str(exc)) from None
        if membership is None:
            return None
        own = PodInfo(
            ref.uid, ref.name, ref.namespace, ref.resource_version, "", "Pending", False, False,
            demand, None, membership,
        )  # fmt: skip
        members, size, topology = self._group(own, membership)
        if len(members) < size:
            with self.state.locked_view(now):
                self._release(members)
            return _refuse(names, INCOMPLETE.format(have=len(members), size=size), GROUP_INCOMPLETE)
        domains = self._domains(topology, names)
        if domains is None:
            return _refuse(names, TOPOLOGY_UNKNOWN, GROUP_INCOMPLETE)
        with self.state.locked_view(now) as view:
            kept = self._kept(view, own, members, names, now=now, settings=settings)
            if kept is not None:
                return kept
            self._release(members)
            fixed = {m.uid: m.node_name for m in members if m.node_name}
            unbound = [
                Member(m.uid, m.key, m.demand, m.group.rank if m.group else 0)
                for m in members
                if not m.node_name and m.demand is not None
            ]
            result = decide_group(
                view.fleet,
                GroupQuery(
                    names,
                    unbound,
                    list(view.fleet.claims),
                    now,
                    settings,
                    policy,
                    fixed,
                    domains,
                ),
            )
            if isinstance(result, GroupRefusal):
                return _refused(names, result)
            return self._reserve(membership.key, own, result, now=now)

    def _kept(
        self,
        view: View,
        own: PodInfo,
        members: Sequence[PodInfo],
        names: Sequence[str],
        *,
        now: float,
        settings: FitSettings,
    ) -> FilterOutcome | None:
        """The pod's reserved node when the group's plan still holds whole (its reservations
        renewed), else ``None``. Called with the state locked."""
        claims = view.fleet.claims
        unbound = [m for m in members if not m.node_name and m.demand is not None]
        held = [claims.get(m.uid) for m in unbound]
        if not held or any(r is None or not r.active(now) for r in held):
            return None
        mine = claims.get(own.uid)
        assert mine is not None and own.demand is not None
        if mine.node not in names:
            return None
        fit = recheck(mine.node, own.demand, view, pod_uid=own.uid, now=now, settings=settings)
        if not isinstance(fit, Fit):
            return None
        group = own.group
        assert group is not None
        with self._lock:
            plan = self._plans.setdefault(group.key, _Plan(now))
        expires = min(plan.decided_at + self.settings.max_hold_s, now + self.settings.hold_s)
        for r in held:
            assert r is not None
            if r.state is ReservationState.ASSUMED and r.expires_at is not None:
                renewed = dataclasses.replace(r, expires_at=max(r.expires_at, expires))
                if r.pod_uid == own.uid:
                    renewed = dataclasses.replace(renewed, gpu_uuids=fit.gpu_uuids)
                self.state.assume(renewed)
        return FilterOutcome(Outcome.PLACED, (fit.node,), {}, {}, chosen=fit)

    def _release(self, members: Sequence[PodInfo]) -> None:
        """Drop the reservations of the members not bound yet (bind's own stay until it ends).
        Called with the state locked."""
        claims = self.state.fleet.claims
        for m in members:
            r = claims.get(m.uid)
            if not m.node_name and r is not None and r.state is ReservationState.ASSUMED:
                claims.pop(m.uid)

    def _reserve(
        self, key: GroupKey, own: PodInfo, plan: GroupPlan, *, now: float
    ) -> FilterOutcome:
        """Reserve every member of ``plan`` and pass the filtered pod's node. Called with the
        state locked."""
        expires = now + min(self.settings.hold_s, self.settings.max_hold_s)
        reservations: list[Reservation] = plan.reservations(now=now, expires_at=expires)
        for r in reservations:
            self.state.assume(r)
        with self._lock:
            self._plans[key] = _Plan(now)
        log.info(
            "group %s: %d pods reserved on %s",
            key,
            len(reservations),
            ", ".join(sorted({r.node for r in reservations})),
        )
        fit = next(f for m, f in plan.placements if m.uid == own.uid)  # it is unbound
        return FilterOutcome(Outcome.PLACED, (fit.node,), {}, {}, chosen=fit)

    def sizes(self) -> dict[str, int]:
        """How many groups, members and nodes the table holds (for tests and bounds)."""
        with self._lock:
            return {
                "groups": len(self._members),
                "members": sum(len(m) for m in self._members.values()),
                "plans": len(self._plans),
                "nodes": len(self._nodes),
            }


def _refuse(names: Sequence[str], reason: str, code: str) -> FilterOutcome:
    """Every node fails with ``reason`` (resolvable: the group may fit later)."""
    return FilterOutcome(
        Outcome.UNSCHEDULABLE,
        (),
        dict.fromkeys(names, reason),
        {},
        reason=code,
        reject_codes={code: len(names)} if names else {},
    )


def _refused(names: Sequence[str], refusal: GroupRefusal) -> FilterOutcome:
    if refusal.resolvable:
        return _refuse(names, refusal.reason, GROUP_UNFIT)
    return FilterOutcome(
        Outcome.UNSCHEDULABLE,
        (),
        {},
        dict.fromkeys(names, refusal.reason),
        reason=GROUP_UNFIT,
        reject_codes={GROUP_UNFIT: len(names)} if names else {},
    )


__all__ = [
    "GROUP_INCOMPLETE",
    "GROUP_UNFIT",
    "NODES",
    "TOPOLOGY_UNKNOWN",
    "GroupSettings",
    "GroupTable",
    "NodeLabels",
    "read_node",
]
