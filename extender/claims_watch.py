"""The extender's view of Dynamic Resource Allocation: ResourceClaims and the GPU driver's
ResourceSlices, watched, and what a pod's claims ask for and were given.

A pod that claims its GPUs through DRA requests no ``nvidia.com/gpu``; its demand is in its
claims (``placement.dra``). Two watches keep this view: ResourceClaims (their requests, and
once kube-scheduler's DRA plugin allocated them, the devices and the pods they are reserved
for) and ResourceSlices (the devices each node offers, with the attributes selectors read and
the ``uuid`` that joins a device to the agent's NodeGPUState). From them:

* ``claimed(pod)`` resolves the pod's claims (``spec.resourceClaims``, a template's claim
  through ``status.resourceClaimStatuses``) to the whole GPUs they ask for, or says why it
  cannot yet (a claim not in the view: the pod is tried again);
* ``eligible`` turns the claims' selectors into the GPUs each node's pod may get (``None``:
  any), which the fleet's query takes;
* an allocation written to a claim reconciles the pod's reservation: it names the GPUs the
  DRA plugin picked (``on_allocated``), and bind re-checks the node on those.

A pod without ``spec.resourceClaims`` costs one dictionary lookup here. The view is not part
of the extender's readiness: a cluster that serves no ``resource.k8s.io/v1`` runs as before,
and only its claim pods wait. Thread-safe.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from extender.decisions import FilterOutcome, Outcome, read_demand
from extender.state import ClusterState
from extender.watch import WatchTarget
from placement.demand import pod_key
from placement.dra import (
    API,
    DRIVER,
    GPU_CLASSES,
    Claim,
    ClaimedGpus,
    ClaimsError,
    Device,
    Slice,
    claimed_gpus,
    pod_claims,
    read_claim,
    read_slice,
)
from placement.dra_selectors import Selectors
from placement.fields import reason_line
from placement.model import Demand

log = logging.getLogger(__name__)

CLAIMS = "resourceclaims"
SLICES = "resourceslices"
MAX_REMEMBERED = 10_000
"""Pods whose claims filter read that the view remembers for their bind (oldest go first)."""
CLAIMS_WAITING = (
    "the pod's ResourceClaims are not in vramfit's view yet (made by the resourceclaim "
    "controller, then watched); the pod is tried again"
)
MAX_ELIGIBLE_CACHED = 64
"""Distinct selector sets whose eligible GPUs per node are kept until the slices change."""

Allocated = Callable[[str, str, tuple[str, ...]], None]
"""``(pod UID, node, GPU UUIDs)``: the DRA plugin gave the pod these GPUs on that node."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """What a pod's claims come to: the GPUs they ask for (``gpus``), or ``problem`` when
    they cannot be read yet (a claim not in the view; the pod is tried again) or at all
    (``unread``: vramfit leaves the pod to the DRA plugin)."""

    gpus: ClaimedGpus | None = None
    problem: str = ""
    unread: bool = False


class DraView:
    """Claims and GPU slices from their watches; see the module docstring."""

    def __init__(
        self,
        gpu_classes: Collection[str] = GPU_CLASSES,
        *,
        on_allocated: Allocated | None = None,
    ) -> None:
        self.gpu_classes = frozenset(gpu_classes)
        self.on_allocated = on_allocated
        self._lock = threading.RLock()
        self._claims: dict[str, Claim] = {}
        self._by_pod: dict[str, set[str]] = {}  # pod UID -> keys of the claims reserved for it
        self._slices: dict[str, Slice] = {}
        self._devices: dict[str, tuple[Device, ...]] = {}  # node -> its GPUs
        self._by_device: dict[tuple[str, str], tuple[str, Device]] = {}  # (pool, name)
        self._version = 0  # bumps when the slices change
        self._eligible: OrderedDict[tuple[Selectors, ...], dict[str, frozenset[str]]] = (
            OrderedDict()
        )
        self._eligible_version = -1
        self._remembered: OrderedDict[str, ClaimedGpus] = OrderedDict()
        self._synced: set[str] = set()

    # ----- watches -------------------------------------------------------------------------

    def targets(self) -> tuple[WatchTarget, WatchTarget]:
        """The ResourceClaim and ResourceSlice watches that feed the view."""

        def replace_claims(items: list[Mapping[str, Any]], _at: float) -> None:
            self.replace_claims(c for c in map(read_claim, items) if c is not None)

        def apply_claim(event: str, raw: Mapping[str, Any]) -> None:
            claim = read_claim(raw)
            if claim is not None:
                self.apply_claim(event, claim)

        def replace_slices(items: list[Mapping[str, Any]], _at: float) -> None:
            self.replace_slices(s for s in map(read_slice, items) if s is not None)

        def apply_slice(event: str, raw: Mapping[str, Any]) -> None:
            found = read_slice(raw)
            if found is not None:
                self.apply_slice(event, found)

        return (
            WatchTarget(CLAIMS, f"/apis/{API}/resourceclaims", replace_claims, apply_claim),
            WatchTarget(SLICES, f"/apis/{API}/resourceslices", replace_slices, apply_slice),
        )

    def mark_synced(self, resource: str) -> None:
        with self._lock:
            self._synced.add(resource)

    def mark_lost(self, resource: str) -> None:
        with self._lock:
            self._synced.discard(resource)

    def replace_claims(self, claims: Iterable[Claim]) -> None:
        """A full list of ResourceClaims."""
        with self._lock:
            self._claims = {c.key: c for c in claims}
            self._by_pod = {}
            for c in self._claims.values():
                for uid in c.reserved_for:
                    self._by_pod.setdefault(uid, set()).add(c.key)
            allocated = list(self._claims.values())
        for claim in allocated:
            self._allocated(claim)

    def apply_claim(self, event: str, claim: Claim) -> None:
        """One ResourceClaim watch event."""
        with self._lock:
            old = self._claims.pop(claim.key, None)
            for uid in old.reserved_for if old is not None else ():
                keys = self._by_pod.get(uid, set())
                keys.discard(claim.key)
                if not keys:
                    self._by_pod.pop(uid, None)
            if event == "DELETED":
                return
            self._claims[claim.key] = claim
            for uid in claim.reserved_for:
                self._by_pod.setdefault(uid, set()).add(claim.key)
        self._allocated(claim)

    def replace_slices(self, slices: Iterable[Slice]) -> None:
        """A full list of ResourceSlices."""
        with self._lock:
            self._slices = {s.name: s for s in slices if s.driver == DRIVER}
            self._index()

    def apply_slice(self, event: str, found: Slice) -> None:
        """One ResourceSlice watch event."""
        if found.driver != DRIVER:
            return
        with self._lock:
            if event == "DELETED":
                self._slices.pop(found.name, None)
            else:
                self._slices[found.name] = found
            self._index()

    def _index(self) -> None:
        devices: dict[str, list[Device]] = {}
        by_device: dict[tuple[str, str], tuple[str, Device]] = {}
        for s in self._slices.values():
            for d in s.devices:
                by_device[(d.pool, d.name)] = (s.node, d)
                if s.node and d.is_gpu and d.uuid:
                    devices.setdefault(s.node, []).append(d)
        self._devices = {n: tuple(ds) for n, ds in devices.items()}
        self._by_device = by_device
        self._version += 1

    # ----- allocations ---------------------------------------------------------------------

    def allocation(self, pod_uid: str) -> tuple[str, tuple[str, ...]] | None:
        """The node and GPUs the DRA plugin allocated to the claims reserved for the pod, as
        far as the view shows them; ``None`` when none is (or the GPUs span nodes)."""
        with self._lock:
            claims = [self._claims[k] for k in self._by_pod.get(pod_uid, ())]
            found: dict[str, list[str]] = {}
            for c in claims:
                for a in c.allocated:
                    if a.driver != DRIVER:
                        continue
                    where = self._by_device.get((a.pool, a.device))
                    if where is not None and where[1].uuid:
                        found.setdefault(where[0], []).append(where[1].uuid)
        if len(found) != 1:
            return None
        ((node, uuids),) = found.items()
        return node, tuple(sorted(set(uuids)))

    def _allocated(self, claim: Claim) -> None:
        """Tell ``on_allocated`` what each pod the claim is reserved for was given."""
        if self.on_allocated is None or not claim.allocated:
            return
        for pod_uid in claim.reserved_for:
            got = self.allocation(pod_uid)
            if got is not None:
                self.on_allocated(pod_uid, *got)

    def reconcile_pod(self, pod_uid: str) -> None:
        """Tell ``on_allocated`` what the pod's claims were given (after a pod event, which
        rebuilds its reservation from its annotation)."""
        if self.on_allocated is None:
            return
        with self._lock:
            if pod_uid not in self._by_pod:
                return
        got = self.allocation(pod_uid)
        if got is not None:
            self.on_allocated(pod_uid, *got)

    def reconcile_all(self) -> None:
        """Tell ``on_allocated`` every allocation in the view (after the pods were relisted,
        so the reservations rebuilt from them name the GPUs really given)."""
        with self._lock:
            claims = list(self._claims.values())
        for claim in claims:
            self._allocated(claim)

    # ----- what filter and bind ask -------------------------------------------------------

    def claimed(self, pod: Mapping[str, Any]) -> Claimed | None:
        """What the pod's claims ask for in whole GPUs; ``None`` for a pod that names no
        claim, or whose claims ask for no GPU of ``gpu_classes``."""
        refs = pod_claims(pod)
        if not refs:
            return None
        meta = pod.get("metadata") if isinstance(pod.get("metadata"), Mapping) else {}
        assert isinstance(meta, Mapping)
        namespace = str(meta.get("namespace") or "default")
        claims: list[Claim] = []
        missing: list[str] = []
        with self._lock:
            listed = CLAIMS in self._synced
            for ref in refs:
                claim = self._claims.get(f"{namespace}/{ref.claim}") if ref.claim else None
                if claim is None:
                    missing.append(ref.claim or f"from template {ref.template}")
                else:
                    claims.append(claim)
        try:
            gpus = claimed_gpus(claims, self.gpu_classes)
        except ClaimsError as exc:
            return Claimed(problem=str(exc), unread=True)
        if missing:
            why = "not listed yet" if not listed else "not in vramfit's view yet"
            return Claimed(problem=f"ResourceClaim {', '.join(missing)} of the pod {why}")
        return Claimed(gpus) if gpus.gpus else None

    def claimed_count(self, pod: Mapping[str, Any]) -> int:
        """The GPUs the pod's claims ask for, 0 when it names none or they are not known."""
        found = self.claimed(pod)
        return found.gpus.gpus if found is not None and found.gpus is not None else 0

    def eligible(self, gpus: ClaimedGpus) -> dict[str, frozenset[str]] | None:
        """The GPUs the claims may get on each node with a slice (a node left out: any);
        ``None`` when some request reads no selector (any GPU anywhere)."""
        if not gpus.requests or any(not s.clauses for s in gpus.requests):
            return None
        key = gpus.requests
        with self._lock:
            if self._eligible_version != self._version:
                self._eligible.clear()
                self._eligible_version = self._version
            cached = self._eligible.get(key)
            if cached is None:
                cached = {}
                for node, devices in self._devices.items():
                    found = gpus.eligible(devices)
                    if found is not None:
                        cached[node] = found
                self._eligible[key] = cached
                while len(self._eligible) > MAX_ELIGIBLE_CACHED:
                    self._eligible.popitem(last=False)
            return cached

    def remember(self, pod_uid: str, gpus: ClaimedGpus) -> None:
        """Keep what filter read of a pod's claims for its bind."""
        with self._lock:
            self._remembered.pop(pod_uid, None)
            self._remembered[pod_uid] = gpus
            while len(self._remembered) > MAX_REMEMBERED:
                self._remembered.popitem(last=False)

    def bind_eligible(self, pod_uid: str, node: str) -> Collection[str] | None:
        """The GPUs bind re-checks ``node`` on: those the DRA plugin allocated there (it
        writes the allocation before the binding), else those the claims' selectors accept
        there, else ``None`` (any)."""
        got = self.allocation(pod_uid)
        if got is not None and got[0] == node:
            return got[1]
        with self._lock:
            gpus = self._remembered.get(pod_uid)
        if gpus is None:
            return None
        eligible = self.eligible(gpus)
        return None if eligible is None else eligible.get(node)


def log_notes(pod: Mapping[str, Any], gpus: ClaimedGpus) -> None:
    """Say in the log what vramfit did not read of the pod's claims (left to the DRA
    plugin); the reply repeats no text of the pod's."""
    for note in gpus.notes:
        log.info("pod %s: %s", pod_key(pod), note)


def reconcile_reservation(
    state: ClusterState, pod_uid: str, node: str, gpus: tuple[str, ...], now: float
) -> None:
    """The allocation written to the pod's claims reconciles its reservation: on the node it
    names, the reservation holds the GPUs the DRA plugin gave the pod (an ``on_allocated``
    for ``DraView``)."""
    with state.locked_view(now) as view:
        r = view.fleet.claims.get(pod_uid)
        if r is None or r.node != node or tuple(sorted(r.gpu_uuids)) == gpus:
            return
        view.fleet.claims.put(dataclasses.replace(r, gpu_uuids=gpus))
    log.info("reservation of %s reconciled to its claims' GPUs %s", r.pod_key, ", ".join(gpus))


@dataclass(frozen=True, slots=True)
class PodDemand:
    """A pod's GPU demand for filter and prioritize: by ``nvidia.com/gpu``, or by its claims
    (with the GPUs each node may give them, ``eligible``); ``waiting`` when its claims are not
    in the view yet."""

    demand: Demand | None
    eligible: Mapping[str, Collection[str]] | None = None
    waiting: bool = False


def pod_demand(pod: Mapping[str, Any], policy: str, dra: DraView | None, pod_uid: str) -> PodDemand:
    """The demand of the pod in a filter or prioritize request (``InvalidPodError`` for one
    that cannot be read). A pod of ``nvidia.com/gpu`` is read as ever; one that claims GPUs
    through DRA by its claims, remembered for its bind; one whose claims ask for what
    vramfit cannot place (all GPUs of a node) is left to the DRA plugin, as a pod without
    GPU demand."""
    demand = read_demand(pod, policy)
    if demand is not None or dra is None:
        return PodDemand(demand)
    found = dra.claimed(pod)
    if found is None:
        return PodDemand(None)
    if found.unread:
        log.info("pod %s: %s; left to the DRA plugin", pod_key(pod), found.problem)
        return PodDemand(None)
    if found.gpus is None:
        log.info("pod %s: %s", pod_key(pod), found.problem)
        return PodDemand(None, waiting=True)
    log_notes(pod, found.gpus)
    dra.remember(pod_uid, found.gpus)
    demand = read_demand(pod, policy, claimed_gpus=found.gpus.gpus)
    return PodDemand(demand, dra.eligible(found.gpus))


def claims_waiting(names: Sequence[str]) -> FilterOutcome:
    """Pure: every node fails (resolvable) while the pod's claims are not in the view."""
    return FilterOutcome(
        Outcome.UNSCHEDULABLE,
        (),
        dict.fromkeys(names, reason_line(CLAIMS_WAITING)),
        {},
        reason="claims-waiting",
    )
