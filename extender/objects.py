"""The watched Kubernetes objects (Pods, agent Leases, NodeGPUState reports), read at the edge.

The watches deliver raw JSON; everything past this module works on the typed values read here,
so the cluster state and the requeue signals never look inside an API object. Each reader is
pure and tolerant: an object without the identity it needs reads as ``None``, and a report whose
status cannot be decoded reads as a ``NodeReport`` that carries the reason instead of a node.

A pod's ``vramfit.io/reservation`` annotation holds GPUs, so it is believed only where the
extender could have written it (deploy/'s admission policy lets no one else write it; this is
the second line): on a pod that requests GPUs and that vramfit's scheduler places, dated no
later than now plus a small clock skew, and for no more GPUs than the pod requests.

A pod that claims its GPUs through DRA requests none of ``nvidia.com/gpu``: a reader given
``claimed`` (the extender's view of claims, ``extender.claims_watch``) counts the GPUs its
claims ask for instead. While those are not known (its claims not listed yet), its annotation
is believed uncapped if the pod names claims at all.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from placement.annotation import (
    AnnotationError,
    decode_reservation,
    encode_reservation,
    reservation_of,
)
from placement.demand import DemandError, demand_from_pod, gpu_count
from placement.dra import pod_claims
from placement.fields import reason_line
from placement.lifecycle import PodFacts
from placement.membership import Membership, MembershipError, membership_of
from placement.model import Demand, NodeState
from placement.nodegpustate import LEASE_PREFIX, ReportError, decode_status, parse_time

log = logging.getLogger(__name__)

DNS_SUBDOMAIN_MAX = 253
"""Longest node name (a DNS subdomain)."""

DEFAULT_LEASE_DURATION_S = 40.0
"""The duration assumed for a Lease that states none (the agent's own default)."""

SCHEDULER_NAME = "vramfit"
"""The ``schedulerName`` of the profile that calls the extender (deploy/scheduler-config.yaml)."""

MAX_CLOCK_SKEW_S = 60.0
"""How far in the future a reservation's time may be: the replica that wrote it may run on a
node whose clock is a little ahead. Anything later is a forgery or a broken clock."""


@dataclass(frozen=True, slots=True)
class PodInfo:
    """The few facts about a pod that reservations depend on, read from its raw JSON.

    ``group`` is the multi-node group the pod belongs to (``extender.groups``), if any.
    ``priority`` (``spec.priority``), ``started_at`` (``status.startTime``, epoch seconds) and
    ``nominated_node`` (``status.nominatedNodeName``) serve preemption (``extender.preempt``).
    """

    uid: str
    name: str
    namespace: str
    resource_version: str
    node_name: str
    phase: str
    ready: bool
    terminating: bool
    demand: Demand | None
    annotation: str | None
    group: Membership | None = None
    priority: int = 0
    started_at: float | None = None
    nominated_node: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def facts(self) -> PodFacts:
        """What the reservation rule reads about this pod."""
        return PodFacts(phase=self.phase, ready=self.ready, terminating=self.terminating)


@dataclass(frozen=True, slots=True)
class AgentLease:
    """A node agent's Lease: the node it speaks for, and when it last renewed."""

    node: str
    renewed_at: float | None
    duration_s: float = DEFAULT_LEASE_DURATION_S


@dataclass(frozen=True, slots=True)
class NodeReport:
    """A NodeGPUState object: its node, decoded, or the reason it cannot be used.

    ``node`` carries no Lease facts (those arrive on their own watch); exactly one of ``node``
    and ``problem`` is set.
    """

    name: str
    node: NodeState | None = None
    problem: str = ""

    @property
    def free_gpus(self) -> int:
        """GPUs reported healthy and held by no pod (none for a report that cannot be used)."""
        if self.node is None:
            return 0
        return sum(1 for g in self.node.gpus if g.healthy and g.holder_pod_uid is None)

    @property
    def observed_at(self) -> float | None:
        """When the agent read the node, or ``None`` for a report that cannot be used."""
        return None if self.node is None else self.node.observed_at


def _mapping(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key)
    return value if isinstance(value, Mapping) else {}


def _name(raw: Mapping[str, Any]) -> str:
    name = _mapping(raw, "metadata").get("name")
    return name if isinstance(name, str) else ""


def _ready(status: Mapping[str, Any]) -> bool:
    """Whether the pod's Ready condition is true (the last one listed, if it repeats)."""
    ready = False
    conditions = status.get("conditions")
    if isinstance(conditions, list):
        for c in conditions:
            if isinstance(c, Mapping) and c.get("type") == "Ready":
                ready = c.get("status") == "True"
    return ready


Claimed = Callable[[Mapping[str, Any]], int]
"""The GPUs a raw pod's ResourceClaims ask for (0 when none, or not known)."""


def trusted_annotation(
    raw: Mapping[str, Any],
    key: str,
    *,
    now: float,
    scheduler_name: str = SCHEDULER_NAME,
    claimed: Claimed | None = None,
) -> str | None:
    """Pure: the pod's reservation annotation as the extender believes it, or ``None``.

    Ignored on a pod that requests no GPU or that another scheduler places, and when dated
    more than ``MAX_CLOCK_SKEW_S`` after ``now``; capped at the GPUs the pod requests. A value
    that does not decode is passed on, for the state to report (it holds nothing).
    """
    value = reservation_of(raw)
    if value is None:
        return None
    spec = _mapping(raw, "spec")
    if spec.get("schedulerName") != scheduler_name:
        log.debug("pod %s is not placed by %s: reservation ignored", key, scheduler_name)
        return None
    try:
        gpus = gpu_count(raw)
    except DemandError:
        gpus = 0
    if gpus == 0 and claimed is not None:
        gpus = claimed(raw)
        if gpus == 0 and pod_claims(raw):
            return value  # its claims are not known yet: it may hold GPUs through them
    if gpus == 0:
        log.debug("pod %s requests no GPU: reservation ignored", key)
        return None
    try:
        r = decode_reservation(value, pod_uid="", pod_key=key)
    except AnnotationError:
        return value
    if r.created_at > now + MAX_CLOCK_SKEW_S:
        log.warning(
            "pod %s: reservation dated %.0fs in the future: ignored", key, r.created_at - now
        )
        return None
    if len(r.gpu_uuids) > gpus:
        log.warning(
            "pod %s: reservation names %d GPUs for a pod that requests %d: capped",
            key,
            len(r.gpu_uuids),
            gpus,
        )
        return encode_reservation(dataclasses.replace(r, gpu_uuids=r.gpu_uuids[:gpus]))
    return value


def read_pod(
    raw: Mapping[str, Any],
    *,
    now: float,
    scheduler_name: str = SCHEDULER_NAME,
    claimed: Claimed | None = None,
) -> PodInfo | None:
    """Pure: the reservation-relevant facts of a raw pod, or ``None`` if it has no identity.

    A pod whose GPU demand cannot be read keeps ``demand=None``; its reservation annotation
    still counts, since GPUs promised to it are promised whatever its annotations say, as far
    as ``trusted_annotation`` believes it (read at ``now``).
    """
    meta = raw.get("metadata")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("uid"), str):
        return None
    spec = _mapping(raw, "spec")
    status = _mapping(raw, "status")
    try:
        # None for a pod without GPUs
        demand = demand_from_pod(raw, claimed_gpus=claimed(raw) if claimed is not None else 0)
    except DemandError:
        demand = None
    name = str(meta.get("name", ""))
    namespace = str(meta.get("namespace", "default"))
    return PodInfo(
        uid=meta["uid"],
        name=name,
        namespace=namespace,
        resource_version=str(meta.get("resourceVersion", "")),
        node_name=str(spec.get("nodeName") or ""),
        phase=str(status.get("phase") or ""),
        ready=_ready(status),
        terminating=meta.get("deletionTimestamp") is not None,
        demand=demand,
        annotation=trusted_annotation(
            raw, f"{namespace}/{name}", now=now, scheduler_name=scheduler_name, claimed=claimed
        ),
        group=_group(raw),
        priority=_priority(spec),
        started_at=_start(status),
        nominated_node=_nominated(status),
    )


def _priority(spec: Mapping[str, Any]) -> int:
    """``spec.priority`` (set by the API server's Priority admission), 0 when absent."""
    value = spec.get("priority")
    return value if type(value) is int else 0


def _start(status: Mapping[str, Any]) -> float | None:
    """``status.startTime`` in epoch seconds, ``None`` when absent or unreadable."""
    value = status.get("startTime")
    try:
        return parse_time(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _nominated(status: Mapping[str, Any]) -> str:
    """``status.nominatedNodeName``, "" when absent or not a node name."""
    value = status.get("nominatedNodeName")
    return value if isinstance(value, str) and 0 < len(value) <= DNS_SUBDOMAIN_MAX else ""


def _group(raw: Mapping[str, Any]) -> Membership | None:
    """The pod's group; ``None`` when its group labels cannot be read (its filter says why)."""
    try:
        return membership_of(raw)
    except MembershipError:
        return None


def lease_times(raw: Mapping[str, Any]) -> tuple[float | None, float]:
    """Pure: (last renewal in epoch seconds or ``None``, duration) of a raw Lease."""
    spec = _mapping(raw, "spec")
    duration = spec.get("leaseDurationSeconds")
    dur = (
        float(duration)
        if isinstance(duration, int | float) and duration > 0
        else DEFAULT_LEASE_DURATION_S
    )
    stamp = spec.get("renewTime") or spec.get("acquireTime")
    if not isinstance(stamp, str):
        return None, dur
    try:
        return parse_time(stamp), dur
    except ValueError:
        return None, dur


def read_lease(raw: Mapping[str, Any], prefix: str = LEASE_PREFIX) -> AgentLease | None:
    """Pure: the agent Lease in ``raw``, or ``None`` for a Lease of something else."""
    name = _name(raw)
    if not name.startswith(prefix) or not name[len(prefix) :]:
        return None
    renewed, duration = lease_times(raw)
    return AgentLease(name[len(prefix) :], renewed, duration)


def read_report(raw: Mapping[str, Any]) -> NodeReport | None:
    """The report in a raw NodeGPUState, or ``None`` (logged) when it names no node."""
    name = _name(raw)
    if not name:
        log.warning("ignoring a NodeGPUState without metadata.name")
        return None
    status = raw.get("status")
    if not isinstance(status, Mapping):
        return NodeReport(name, problem="GPU report is invalid: NodeGPUState has no status yet")
    try:
        return NodeReport(name, node=decode_status(name, status, lease_renewed_at=None))
    except ReportError as exc:
        problem = reason_line(f"GPU report is invalid: {exc}")
        log.warning("NodeGPUState %s: %s", name, problem)
        return NodeReport(name, problem=problem)


def read_pods(
    items: Iterable[Mapping[str, Any]], *, now: float, scheduler_name: str = SCHEDULER_NAME
) -> list[PodInfo]:
    """The pods of a list that have an identity."""
    pods = (read_pod(i, now=now, scheduler_name=scheduler_name) for i in items)
    return [p for p in pods if p is not None]


def read_leases(items: Iterable[Mapping[str, Any]], prefix: str = LEASE_PREFIX) -> list[AgentLease]:
    """The agent Leases of a list."""
    return [a for a in (read_lease(i, prefix) for i in items) if a is not None]


def read_reports(items: Iterable[Mapping[str, Any]]) -> list[NodeReport]:
    """The reports of a list that name their node."""
    return [r for r in map(read_report, items) if r is not None]
