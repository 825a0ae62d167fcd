"""What preemption leaves behind in the extender's view: the room a nominated pod waits for,
and the GPUs of victims whose memory may not be back yet.

When kube-scheduler preempts for a pod, it evicts the victims and sets the pod's
``status.nominatedNodeName``; the pod is scheduled again once they are gone. In between, the
room the victims free must stay the pod's. kube-scheduler counts nominated pods in its own
filters, but vramfit's filter reads its own view, so the pod watch turns a nomination into a
reservation on the nominated node: the GPUs the ``preempt`` verb predicted there
(``propose``), else as many of the node's GPUs as the pod needs, those no live pod holds first.
Every other pod's filter counts it like any reservation (``placement.fit``), the pod's own
ignores it, and it ends when the pod is placed (the filter's or bind's reservation replaces
it), bound, deleted, or its nomination is cleared.

A victim keeps its GPUs counted until it is gone: its reservation stands while it terminates
(``placement.lifecycle``) and the agent reports the GPUs it holds. A pod gone while its
reservation still stood (the agent never showed its load: it was bound and still loading, or
just started) may still have memory on GPUs the last report shows free: its reservation is kept
(``gone``) until a report newer than the one its node had then shows nothing left of it
(``placement.preemption.released``).

Until the victims are gone from the node's report, the nominated node does not pass vramfit's
filter (the report still shows their GPUs held), while kube-scheduler, which counts pods, sees
the room free and, finding the node unschedulable, would preempt again elsewhere. ``leaving``
names the pods whose GPUs are on their way back (gone or terminating, but still in the report,
or still releasing memory), and the preempt verb offers no new preemption while the pod would
fit its nominated node once they are.

The class keeps only these tables and acts on the state's reservations (``Claims``) and fleet,
which the state hands it under its own lock; it is not locked itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from extender.objects import PodInfo
from placement.claims import Claims
from placement.fleet import Fleet
from placement.lifecycle import nominated_room
from placement.model import NodeState, Reservation, ReservationState
from placement.preemption import released

log = logging.getLogger(__name__)

MAX_PROPOSALS = 10_000
"""Pods whose preemption answer is remembered for their nomination (the oldest go first)."""
MAX_RELEASING = 10_000
"""Gone pods whose GPU memory is awaited (the oldest go first, their reservations with them)."""
MAX_DEPARTED = 10_000
"""Gone pods remembered, so that GPUs a report still shows them holding count as leaving."""
MAX_ROOMS_PER_POD = 64
"""Nodes remembered per proposal: the ones kube-scheduler may nominate for one preemption."""


def _trim(table: dict[str, Any], limit: int) -> list[str]:
    """Drop the oldest entries of an insertion-ordered ``table`` beyond ``limit``; their keys."""
    dropped = []
    while len(table) > limit:
        key = next(iter(table))
        del table[key]
        dropped.append(key)
    return dropped


class Nominations:
    """Nominated rooms and victims releasing their memory, for one ``ClusterState``."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._rooms: dict[str, dict[str, tuple[str, ...]]] = {}  # pod -> node -> GPUs
        self._nominated: dict[str, str] = {}  # pod -> the node its reservation holds room on
        self._releasing: dict[str, float] = {}  # pod -> its node's report time when it went
        self._departed: dict[str, None] = {}  # pods seen gone lately, oldest first
        self._ahead: dict[str, str] = {}  # pod -> the node this process nominated it to ahead
        self._withdrawn: dict[str, str] = {}  # pod -> an ahead nomination taken back

    # ----- nominations ------------------------------------------------------------------------

    def propose(self, pod_uid: str, rooms: Mapping[str, tuple[str, ...]]) -> None:
        """The GPUs the pod would take on each node the preempt verb kept for it."""
        self._rooms.pop(pod_uid, None)
        self._rooms[pod_uid] = dict(list(rooms.items())[:MAX_ROOMS_PER_POD])
        _trim(self._rooms, MAX_PROPOSALS)

    def hold(self, pod_uid: str, node: str) -> None:
        """The pod's reservation is now the room of its nomination to ``node`` (set ahead of
        its cycle by ``extender.ahead``): its pod events keep it while they name that node."""
        self._nominated[pod_uid] = node
        self._ahead.pop(pod_uid, None)
        self._ahead[pod_uid] = node
        _trim(self._ahead, MAX_PROPOSALS)

    def withdraw(self, pod_uid: str) -> str | None:
        """The filter refused a pod nominated ahead: the node it was nominated to, which its
        pod events no longer turn into a room (``None`` if it was not nominated ahead)."""
        node = self._ahead.pop(pod_uid, None)
        if node is not None:
            self._withdrawn.pop(pod_uid, None)
            self._withdrawn[pod_uid] = node
            _trim(self._withdrawn, MAX_PROPOSALS)
        return node

    def held_on(self, pod_uid: str) -> str | None:
        """The node the pod's nominated room is on, if its reservation is one."""
        return self._nominated.get(pod_uid)

    def replaced(self, pod_uid: str) -> None:
        """The pod's reservation was replaced or dropped by a decision: no longer a room."""
        self._nominated.pop(pod_uid, None)
        self._ahead.pop(pod_uid, None)

    def nominate(
        self,
        info: PodInfo,
        current: Reservation | None,
        claims: Claims,
        fleet: Fleet,
        live: Callable[[str], bool],
    ) -> bool:
        """Apply a pod event to the pod's room: hold it, move it, or end it. True when the pod's
        reservation is its room (the caller applies no other rule to an unbound pod then)."""
        uid = info.uid
        mine = self._nominated.get(uid)
        wanted = ""
        if not info.node_name and not info.terminating and info.demand is not None:
            wanted = info.nominated_node if info.demand.gpus > 0 else ""
        taken_back = self._withdrawn.get(uid)
        if taken_back is not None:
            if wanted == taken_back:
                wanted = ""  # until the withdrawal reaches the pod
            else:
                del self._withdrawn[uid]
        if not wanted or info.node_name:
            if mine is not None and not info.node_name:
                claims.pop(uid)
            self._nominated.pop(uid, None)
            return False
        if current is not None and mine is None:
            return False  # a reservation of the pod's own (filter's or bind's) stands
        if mine != wanted or current is None:
            room = self._room(info, wanted, fleet, live)
            claims.put(room)
            self._nominated[uid] = wanted
            log.info(
                "pod %s nominated to %s: %d GPU(s) held for it",
                info.key,
                wanted,
                len(room.gpu_uuids),
            )
        return True

    def _room(
        self, info: PodInfo, node: str, fleet: Fleet, live: Callable[[str], bool]
    ) -> Reservation:
        assert info.demand is not None
        gpus = self._rooms.get(info.uid, {}).get(node)
        if gpus is None:
            gpus = ()
            if node in fleet:
                ranked = sorted(
                    fleet.node(node).gpus,
                    key=lambda g: (
                        g.holder_pod_uid is not None and live(g.holder_pod_uid),
                        g.index,
                    ),
                )
                taken = sorted(ranked[: info.demand.gpus], key=lambda g: g.index)
                gpus = tuple(g.uuid for g in taken)
        return nominated_room(
            info.demand,
            pod_uid=info.uid,
            pod_key=info.key,
            node=node,
            gpu_uuids=gpus,
            now=self._clock(),
        )

    # ----- victims releasing their memory ------------------------------------------------------

    def gone(self, uid: str, r: Reservation | None, fleet: Fleet) -> bool:
        """The pod ``uid`` is gone (or finished), its reservation ``r`` (if any) still standing.
        True when ``r`` is kept until its node shows the pod's memory back (a pod that was
        bound, on a node with a report); the caller drops it otherwise."""
        self._departed.pop(uid, None)
        self._departed[uid] = None
        _trim(self._departed, MAX_DEPARTED)
        if r is None:
            return False
        self._nominated.pop(r.pod_uid, None)
        if r.state is ReservationState.ASSUMED or r.node not in fleet:
            return False
        if r.pod_uid not in self._releasing:
            self._releasing[r.pod_uid] = fleet.node(r.node).observed_at
        return True

    def departed(self, pod_uid: str) -> bool:
        """Whether the pod was seen gone lately (the agent may still report its GPUs)."""
        return pod_uid in self._departed

    def releasing(self) -> frozenset[str]:
        """The gone pods whose reservations are kept until their memory is back."""
        return frozenset(self._releasing)

    def reported(self, node: NodeState, claims: Claims) -> None:
        """A new report of ``node``: end the kept reservations there whose memory it shows
        back, read after the pod went. Keep the table bounded."""
        for uid in list(self._releasing):
            r = claims.get(uid)
            if r is None:
                del self._releasing[uid]
            elif (
                r.node == node.name
                and node.observed_at > self._releasing[uid]
                and released(node, uid)
            ):
                claims.pop(uid)
                del self._releasing[uid]
        for uid in _trim(self._releasing, MAX_RELEASING):
            claims.pop(uid)

    def forget(self, pod_uid: str) -> None:
        """The pod's reservation ended for good (dropped by the caller)."""
        self._nominated.pop(pod_uid, None)
        self._releasing.pop(pod_uid, None)
        self._ahead.pop(pod_uid, None)
        self._withdrawn.pop(pod_uid, None)

    def relisted(self, listed: Iterable[str]) -> None:
        """A full list of pods: forget rooms of pods no longer listed (gone pods stay)."""
        keep = set(listed)
        for uid in [u for u in self._nominated if u not in keep]:
            del self._nominated[uid]

    def sizes(self) -> dict[str, int]:
        """How many entries each table holds (for the bounds tests)."""
        return {
            "proposals": len(self._rooms),
            "nominated": len(self._nominated),
            "releasing": len(self._releasing),
            "departed": len(self._departed),
            "ahead": len(self._ahead),
            "withdrawn": len(self._withdrawn),
        }
