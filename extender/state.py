"""The extender's in-memory view of the cluster, fed by watches and by its own decisions.

Three watches feed it: NodeGPUState objects (what each node agent reports), the agents' Leases
(whether the agent is alive) and Pods (durable reservations in the ``vramfit.io/reservation``
annotation, and when a pod's load is over), each object read into a typed value at the edge
(``extender.objects``) before it gets here. Filter adds short-lived *assumed* reservations;
bind turns them into *bound* ones. Requests read a ``View`` copied under one lock, so a decision
never sees half an update, and never waits on the network.

Reservation life (the rule itself is ``placement.lifecycle``, shared with the simulator):

* assumed: filter chose a node; expires after ``assumed_ttl_s`` unless bind confirms it;
* bound: the annotation is written and the pod is bound (or being bound); its load counts as
  in flight on the node;
* ready: the pod is Ready, so its load is over (it no longer slows other loads on the node),
  but it keeps its GPUs until the agent reports them held by the pod: NVML and the
  pod-resources API lag a pod's Ready condition, and a GPU that looked free in that window
  would be handed out twice. A pod that stops being Ready is loading again (bound);
* gone: the pod was deleted or failed or succeeded, or it is Ready and the agent reports its
  GPUs held by it. A terminating pod keeps its GPUs until it is gone, and a bound pod gone
  before the agent showed its load keeps them until a newer report shows its memory back.

A pod that preemption nominated to a node holds the room there until it is placed
(``extender.nominations``).

The rule is applied whenever one of its inputs changes: a pod event, and a report of the node.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from extender.decisions import LazyWaiting, Shapes, View, WaitingPods, waits
from extender.nominations import Nominations
from extender.objects import DEFAULT_LEASE_DURATION_S, AgentLease, NodeReport, PodInfo
from placement.annotation import AnnotationError, decode_reservation
from placement.fleet import Fleet, FleetError
from placement.lifecycle import FINISHED_PHASES, PodFacts, settle
from placement.model import Demand, NodeState, Reservation, ReservationState

log = logging.getLogger(__name__)

PODS = "pods"
REPORTS = "nodegpustates"
LEASES = "leases"
RESOURCES = (PODS, REPORTS, LEASES)
_PURGE_EVERY_S = 5.0
MAX_WAITING_SHAPES = 4
"""The most shapes of waiting pods a decision keeps room for (each costs one evaluation of the
fleet per decision)."""
MAX_PENDING = 10_000
"""Pods filtered and not yet bound that the state remembers (the oldest go first): far above
what one scheduler has in flight, and bounded whatever a caller sends."""
MAX_RELEASED = 10_000
"""Pods whose bind failed that the state remembers, so their annotation does not come back."""


def _trim(table: dict[str, Any], limit: int) -> None:
    """Drop the oldest entries of an insertion-ordered ``table`` beyond ``limit``."""
    while len(table) > limit:
        del table[next(iter(table))]


@dataclass(frozen=True, slots=True)
class PendingPod:
    """What filter learned about a pod that bind (which gets only names) needs again."""

    uid: str
    key: str
    resource_version: str
    demand: Demand | None
    seen_at: float


class ClusterState:
    """The view shared by the watch threads and the request threads of one extender process."""

    def __init__(self, *, assumed_ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.assumed_ttl_s = assumed_ttl_s
        # One lock for everything: watch events, and a decision from the moment it reads the
        # view until it records its reservation, so two decisions never take the same GPU.
        self._lock = threading.RLock()
        # The nodes with a valid report, as arrays (the filter's hot path reads them under the
        # lock); reports that cannot be read are kept as reasons instead.
        self.fleet = Fleet(capacity=1024)
        self._invalid: dict[str, str] = {}
        self._leases: dict[str, AgentLease] = {}
        self._pods: dict[str, PodInfo] = {}
        # Every reservation, kept resolved against the fleet's rows (the filter reads their
        # sums instead of looping over them).
        self._reservations = self.fleet.claims
        self._visible: set[str] = set()
        # Keyed by what callers send (pod UIDs of filter and bind requests): bounded, and the
        # pending ones also expire.
        self._released: dict[str, None] = {}
        self._pending: dict[str, PendingPod] = {}
        # The demand of the GPU pods not bound yet (the decisions keep room for those with no
        # reservation: placement.room), counted as reservations come and go.
        self._waiting = WaitingPods(self._reservations)
        self._reservations.on_membership = self._waiting.held
        self._shapes = Shapes()  # alike pods share one demand object: cheaper to count
        # Only for nodes in the view (bind refuses others first); dropped when a node leaves it.
        self._node_locks: dict[str, threading.Lock] = {}
        # Replaced whole under the lock and read without it: every filter asks first.
        self._synced: frozenset[str] = frozenset()
        self._lost: set[str] = set()
        self._last_purge = 0.0
        # Rooms held for pods nominated by preemption, and gone pods' GPUs until their memory
        # is back (extender.nominations).
        self.nominations = Nominations(clock)

    # ----- readiness -------------------------------------------------------------------------

    def mark_synced(self, resource: str) -> None:
        with self._lock:
            self._synced = self._synced | {resource}
            self._lost.discard(resource)

    def mark_lost(self, resource: str) -> None:
        """The watch of ``resource`` failed: the view may miss events until it is current
        again (``mark_synced``), so no decision is made on it meanwhile."""
        with self._lock:
            if resource in self._synced:
                self._synced = self._synced - {resource}
                self._lost.add(resource)

    def unsynced(self) -> list[str]:
        """Watched resources whose first full list has not been applied yet, or whose watch
        failed since and is not current again. Read without the lock (the set is replaced
        whole, never changed in place): a filter asks before anything else, and waiting here
        behind a watch event would add to every decision."""
        synced = self._synced
        return [r for r in RESOURCES if r not in synced]

    def lost(self) -> list[str]:
        """Watched resources whose watch failed after their first list (see ``mark_lost``)."""
        with self._lock:
            return [r for r in RESOURCES if r in self._lost]

    def ready(self) -> bool:
        """True once every reservation has been rebuilt from pods and every report read."""
        return not self.unsynced()

    # ----- node reports and leases -------------------------------------------------------------

    def _node_state(self, name: str) -> NodeState | None:
        return self.fleet.node(name) if name in self.fleet else None

    def _settle(self, r: Reservation, facts: PodFacts) -> None:
        """Apply the reservation rule to ``r``: end it, or record it in the state it is in."""
        settled = settle(r, facts, self._node_state(r.node))
        if settled is None:
            self._end_visible(r.pod_uid)
        else:
            self._put(settled)

    def _ended_by(self, name: str) -> None:
        """A new report of ``name``: end the reservations there whose load it now shows."""
        for r in self._reservations.on_node(name):
            info = self._pods.get(r.pod_uid)
            if info is not None:  # a pod not seen yet (assumed in filter) is not Ready
                self._settle(r, info.facts)
        if name in self.fleet:
            self.nominations.reported(self.fleet.node(name), self._reservations)

    def _lease(self, node: str) -> tuple[float | None, float]:
        """(last renewal, duration) of ``node``'s agent Lease; never renewed without one."""
        lease = self._leases.get(node)
        if lease is None:
            return None, DEFAULT_LEASE_DURATION_S
        return lease.renewed_at, lease.duration_s

    def _set_report(self, report: NodeReport) -> None:
        name, problem = report.name, report.problem
        if report.node is not None:
            renewed, duration = self._lease(name)
            node = dataclasses.replace(
                report.node, lease_renewed_at=renewed, lease_duration_s=duration
            )
            try:
                self.fleet.replace(node)
            except FleetError as exc:
                problem = f"GPU report is invalid: {exc}"
                log.warning("%s", exc)
        if problem:
            self.fleet.remove(name)
            self._invalid[name] = problem
            return
        self._invalid.pop(name, None)
        self._ended_by(name)

    def replace_reports(self, reports: Iterable[NodeReport]) -> None:
        """A full list of NodeGPUState reports (first list, or relist after a lost watch)."""
        with self._lock:
            reports = list(reports)
            listed = {r.name for r in reports}
            for name in self.fleet.names():
                if name not in listed:
                    self.fleet.remove(name)
            self._invalid.clear()
            for report in reports:
                self._set_report(report)

    def apply_report(self, event: str, report: NodeReport) -> None:
        """One NodeGPUState watch event."""
        with self._lock:
            if event == "DELETED":
                self.fleet.remove(report.name)
                self._invalid.pop(report.name, None)
            else:
                self._set_report(report)

    def _renew(self, node: str) -> None:
        if node in self.fleet:
            self.fleet.renew(node, *self._lease(node))

    def replace_leases(self, leases: Iterable[AgentLease]) -> None:
        """A full list of agent Leases."""
        with self._lock:
            self._leases = {lease.node: lease for lease in leases}
            for node in self.fleet.names():
                self._renew(node)

    def apply_lease(self, event: str, lease: AgentLease) -> None:
        """One agent Lease watch event."""
        with self._lock:
            if event == "DELETED":
                self._leases.pop(lease.node, None)
            else:
                self._leases[lease.node] = lease
            self._renew(lease.node)

    # ----- pods and reservations ---------------------------------------------------------------

    def _put(self, r: Reservation) -> None:
        self._reservations.put(r)

    def _end_visible(self, uid: str) -> None:
        self._reservations.pop(uid)
        self._visible.add(uid)

    def _live(self, uid: str) -> bool:
        info = self._pods.get(uid)
        return info is not None and not info.terminating

    def _track(self, uid: str, info: PodInfo | None) -> None:
        """Keep the pod's demand among the waiting ones while it is a GPU pod not bound yet."""
        demand = info.demand if info is not None and waits(info) else None
        self._waiting.track(uid, None if demand is None else self._shapes.of(demand))

    def waiting(self) -> tuple[tuple[Demand, int], ...]:
        """The waiting demand a decision keeps room for (``decisions.waiting_shapes``)."""
        with self._lock:
            return self._waiting.shapes(MAX_WAITING_SHAPES)

    def _forget_pod(self, uid: str) -> None:
        self._track(uid, None)
        self._pods.pop(uid, None)
        if not self.nominations.gone(uid, self._reservations.get(uid), self.fleet):
            self._reservations.pop(uid)
            self.nominations.forget(uid)
        self._visible.discard(uid)
        self._released.pop(uid, None)
        self._pending.pop(uid, None)

    def _reconcile_pod(self, info: PodInfo) -> None:
        self._track(info.uid, info)
        if info.phase in FINISHED_PHASES:
            self._forget_pod(info.uid)
            return
        if info.demand is None and info.annotation is None and info.uid not in self._reservations:
            self._pods.pop(info.uid, None)
            return
        self._pods[info.uid] = info
        if info.uid in self._visible:
            return
        current = self._reservations.get(info.uid)
        if self.nominations.nominate(info, current, self._reservations, self.fleet, self._live):
            return
        durable: Reservation | None = None
        if info.annotation is not None:
            try:
                durable = decode_reservation(info.annotation, pod_uid=info.uid, pod_key=info.key)
            except AnnotationError as exc:
                log.warning("%s", exc)
        if info.node_name:
            if durable is not None and durable.node == info.node_name:
                bound = dataclasses.replace(durable, state=ReservationState.BOUND, expires_at=None)
                self._settle(bound, info.facts)
            elif current is not None and current.node != info.node_name:
                # Bound somewhere else than we chose (another scheduler, or a stale
                # annotation): what it holds there is the agent's to report.
                self._reservations.pop(info.uid)
            elif current is not None:
                self._settle(current, info.facts)
            return
        if current is None and durable is not None and info.uid not in self._released:
            # Written by bind, but the pod is not bound (yet): a bind in flight when the
            # extender restarted. Hold the GPUs as assumed until the usual expiry.
            expires = durable.created_at + self.assumed_ttl_s
            self._put(
                dataclasses.replace(durable, state=ReservationState.ASSUMED, expires_at=expires)
            )

    def replace_pods(self, pods: Iterable[PodInfo], *, listed_at: float) -> None:
        """A full list of pods: rebuild every reservation from their annotations.

        Reservations this process made after ``listed_at`` survive a relist whose result
        predates them; every other reservation is rebuilt from what the list says.
        """
        with self._lock:
            going = self.nominations.releasing()
            keep = [
                r for r in self._reservations if r.created_at >= listed_at or r.pod_uid in going
            ]
            self._pods.clear()
            self._waiting.clear()
            self._reservations.clear()
            for r in keep:
                self._reservations.put(r)
            self._visible.clear()
            released, self._released = self._released, {}
            infos = list(pods)
            listed = {i.uid for i in infos}
            self._released = {uid: None for uid in released if uid in listed}
            for info in infos:
                self._reconcile_pod(info)
            self.nominations.relisted(listed)

    def apply_pod(self, event: str, info: PodInfo) -> None:
        """One Pod watch event."""
        with self._lock:
            if event == "DELETED":
                self._forget_pod(info.uid)
            else:
                self._reconcile_pod(info)

    # ----- what requests use ------------------------------------------------------------------

    def _purge(self, now: float) -> None:
        # Expired reservations go at once: until they go, every decision leaves each of them
        # out of the sums by hand (``Claims.resolve``), and under a steady stream of pods
        # hundreds expire between two purges. Finding them is one bisection.
        for uid in self._reservations.expired(now):
            self._reservations.pop(uid)
        if now - self._last_purge < _PURGE_EVERY_S:
            return
        self._last_purge = now
        horizon = now - max(self.assumed_ttl_s, 60.0)
        for uid in [u for u, p in self._pending.items() if p.seen_at < horizon]:
            del self._pending[uid]
        for node in [n for n, lock in self._node_locks.items() if not self._in_view(n)]:
            if not self._node_locks[node].locked():
                del self._node_locks[node]

    @contextmanager
    def locked_view(self, now: float) -> Iterator[View]:
        """The view for a decision; the state stays locked inside the block, so the decision
        can record its reservation (``assume``) before anything changes."""
        with self._lock:
            self._purge(now)
            yield View(fleet=self.fleet, invalid=self._invalid, waiting=LazyWaiting(self.waiting))

    def remember(self, pending: PendingPod) -> None:
        """Keep what filter read about a pod for its bind (at most ``MAX_PENDING`` pods)."""
        with self._lock:
            self._pending.pop(pending.uid, None)
            self._pending[pending.uid] = pending
            _trim(self._pending, MAX_PENDING)

    def filtered(self, uid: str, key: str) -> bool:
        """Whether this process filtered the pod ``key`` with this UID lately (bind takes
        only such pods)."""
        with self._lock:
            p = self._pending.get(uid)
            return p is not None and p.key == key

    def _in_view(self, node: str) -> bool:
        return node in self.fleet or node in self._invalid

    def knows_node(self, node: str) -> bool:
        """Whether ``node`` has a GPU report (valid or not) in this process's view."""
        with self._lock:
            return self._in_view(node)

    def pending(self, uid: str) -> PendingPod | None:
        """What filter (or the pod watch) knows about a pod about to be bound."""
        with self._lock:
            p = self._pending.get(uid)
            info = self._pods.get(uid)
            if info is not None and (
                p is None or _newer(info.resource_version, p.resource_version)
            ):
                return PendingPod(
                    uid, info.key, info.resource_version, info.demand, p.seen_at if p else 0.0
                )
            return p

    def assume(self, r: Reservation) -> None:
        """Record a reservation this process decided (replacing the pod's previous one)."""
        with self._lock:
            self._visible.discard(r.pod_uid)
            self._released.pop(r.pod_uid, None)
            self.nominations.replaced(r.pod_uid)
            self._put(r)

    def confirm(self, uid: str) -> Reservation | None:
        """Bind succeeded: the reservation no longer expires; the pod watch takes it over."""
        with self._lock:
            r = self._reservations.get(uid)
            if r is None:
                return None
            bound = dataclasses.replace(r, state=ReservationState.BOUND, expires_at=None)
            self._put(bound)
            return bound

    def release(self, uid: str) -> None:
        """Drop a reservation whose bind failed (its annotation, if written, no longer counts)."""
        with self._lock:
            self._reservations.pop(uid)
            self.nominations.replaced(uid)
            self._released.pop(uid, None)
            self._released[uid] = None
            _trim(self._released, MAX_RELEASED)

    def node_lock(self, node: str) -> threading.Lock:
        """The lock that serializes binds to one node (ask ``knows_node`` first: the lock of a
        node outside the view is dropped at the next purge)."""
        with self._lock:
            lock = self._node_locks.get(node)
            if lock is None:
                lock = self._node_locks[node] = threading.Lock()
            return lock

    def pods_of(self, uids: Iterable[str]) -> dict[str, PodInfo]:
        """What the pod watch knows of each of ``uids`` (GPU pods only; others are absent)."""
        with self._lock:
            return {u: p for u in uids if (p := self._pods.get(u)) is not None}

    def leaving(self, node: str) -> set[str]:
        """The pods whose GPUs or memory on ``node`` are on their way back: seen gone or
        terminating while the report still shows them, or kept until their memory is back."""
        with self._lock:
            if node not in self.fleet:
                return set()
            on_node = {r.pod_uid for r in self._reservations.on_node(node)}
            for g in self.fleet.node(node).gpus:
                on_node.update(m.pod_uid for m in g.pod_memory)
                if g.holder_pod_uid is not None:
                    on_node.add(g.holder_pod_uid)
            going = self.nominations.releasing()
            return {
                u
                for u in on_node
                if u in going
                or self.nominations.departed(u)
                or ((info := self._pods.get(u)) is not None and info.terminating)
            }

    def hold_ahead(self, room: Reservation) -> bool:
        """Hold the room of a nomination this process is about to set (``extender.ahead``), as
        a nomination's; False, holding nothing, when the pod has a reservation or was filtered
        meanwhile (kube-scheduler got to it first)."""
        with self._lock:
            uid = room.pod_uid
            if self._reservations.get(uid) is not None or uid in self._pending:
                return False
            self._visible.discard(uid)
            self._released.pop(uid, None)
            self.nominations.propose(uid, {room.node: room.gpu_uuids})
            self.nominations.hold(uid, room.node)
            self._put(room)
            return True

    def _end_room(self, uid: str, node: str) -> None:
        """Drop the pod's reservation if it is still the nominated room on ``node``."""
        if self.nominations.held_on(uid) == node:
            self._reservations.pop(uid)
            self.nominations.replaced(uid)

    def withdraw_ahead(self, uid: str) -> str | None:
        """The filter refused a pod nominated ahead: drop its room for good; the node it was
        nominated to (for the caller to clear the nomination), ``None`` if it was not."""
        with self._lock:
            node = self.nominations.withdraw(uid)
            if node is not None:
                self._end_room(uid, node)
            return node

    def drop_ahead(self, uid: str, node: str) -> None:
        """The nomination to ``node`` was not set: drop its room if it still holds one."""
        with self._lock:
            self.nominations.propose(uid, {})
            self._end_room(uid, node)

    def propose(self, pod_uid: str, rooms: dict[str, tuple[str, ...]]) -> None:
        """The GPUs the preempt verb predicts the pod takes on each node it kept (for the
        room its nomination holds)."""
        with self._lock:
            self.nominations.propose(pod_uid, rooms)

    def table_sizes(self) -> dict[str, int]:
        """How many entries each table keyed by a caller's string holds (for tests, the fuzz
        run and the bounds they check)."""
        with self._lock:
            return {
                "pending": len(self._pending),
                "released": len(self._released),
                "node_locks": len(self._node_locks),
            }

    def lock_count(self) -> int:
        """How many node locks exist (for tests and the bounds they check)."""
        with self._lock:
            return len(self._node_locks)

    def reservations_by_state(self, now: float) -> dict[str, int]:
        """Active reservations counted by state, every state present (for the metrics)."""
        with self._lock:
            counts = Counter(r.state.value for r in self._reservations if r.active(now))
        return {s.value: counts.get(s.value, 0) for s in ReservationState}

    def node_count(self) -> tuple[int, int]:
        """(nodes with a valid report, nodes with an invalid one)."""
        with self._lock:
            return len(self.fleet), len(self._invalid)


def _newer(a: str, b: str) -> bool:
    """Whether resourceVersion ``a`` is newer than ``b`` (etcd revisions compare as integers)."""
    try:
        return int(a) > int(b)
    except ValueError:
        return a != b and bool(a)
