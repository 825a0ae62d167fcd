"""When a reservation begins and ends, and whether its pod's load is still in flight: one rule.

A reservation begins *assumed* (``assume``): the filter records it for the node it returns,
with a short expiry, so the next pod's filter does not hand out the same GPUs before the
binding writes it down.

A reservation covers two windows. It holds GPUs while the node agent does not show the pod
holding them yet (NVML and the kubelet's pod-resources API lag a pod by seconds to tens of
seconds, and a GPU that looked free in that gap would be handed out twice). And while the pod is
not Ready its weights may still be loading, which shares the node's disks, NIC and PCIe with
every other load there (the in-flight penalty of ``placement.policies``).

The extender applies this rule to pods it watches and the simulator to the pods it simulates,
so what the simulator shows is what the extender does:

* the pod is gone, Failed or Succeeded: the reservation ends (its containers, and so its claim
  on GPUs, are gone);
* the pod is Ready and the agent's report shows it holding as many GPUs as it reserved (with
  ``EndRule.LOADED``, also the reserved bytes in use on each): the reservation ends, the GPUs
  count as held from now on;
* otherwise the reservation holds its GPUs; its load is in flight unless the pod is Ready. A
  terminating pod keeps its GPUs until it is gone, and a pod that was Ready and is not any more
  (a container restart) is loading again.

The GPUs a reservation names are vramfit's prediction until the pod gets its own: the kubelet
and the device plugin pick them, not vramfit. Once the agent's report shows the pod holding GPUs
(from the kubelet's pod-resources API), the reservation takes those (``reconcile``).

A pod that preempted waits for its victims to go, nominated to their node: its *room* there
(``nominated_room``) is an assumed reservation with no expiry, on the GPUs the preempt verb
predicted, so other pods' filters leave them to it and its coming load counts as in flight.

Pure: plain values in, plain values out; expiry of an assumed reservation is
``Reservation.active``'s business, not this rule's.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from placement.loadbudget import load_bytes
from placement.model import Demand, Fit, NodeState, Reservation, ReservationState

FINISHED_PHASES = frozenset({"Failed", "Succeeded"})
"""Pod phases after which no container of the pod runs again."""


class EndRule(enum.StrEnum):
    """What the agent's report must show before a Ready pod's reservation ends."""

    HELD = "held"
    """The pod holds as many GPUs as it reserved (the extender's rule)."""
    LOADED = "loaded"
    """It also uses at least the reserved bytes on each of them."""


class Ended(enum.StrEnum):
    """Why a reservation ended; ``NO`` while it stands."""

    NO = ""
    POD_GONE = "pod-gone"
    POD_FINISHED = "pod-finished"
    LOAD_VISIBLE = "load-visible"


@dataclass(frozen=True, slots=True)
class PodFacts:
    """What the rule reads about the reserved pod, as plain values.

    ``phase`` is the pod's ``status.phase`` ("" when not set yet); ``ready`` is its Ready
    condition; ``terminating`` whether it has a deletion timestamp; ``exists`` is false once the
    pod is deleted and gone.
    """

    exists: bool = True
    phase: str = "Pending"
    ready: bool = False
    terminating: bool = False


GONE = PodFacts(exists=False, phase="")
"""The facts of a pod that no longer exists."""


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a reservation stands: ended (and why), holding its GPUs, its load in flight."""

    ended: Ended
    holds_gpus: bool
    in_flight: bool


def shows_load(node: NodeState, reservation: Reservation, rule: EndRule = EndRule.HELD) -> bool:
    """Whether the report of ``node`` shows the reserved pod's load (pure): the pod holds as
    many GPUs as it reserved (at least one), and with ``EndRule.LOADED`` uses at least the
    reserved bytes on each of them."""
    uid = reservation.pod_uid
    held = [g for g in node.gpus if g.holder_pod_uid == uid]
    if len(held) < max(1, len(reservation.gpu_uuids)):
        return False
    if rule is EndRule.HELD:
        return True
    return all(
        sum(m.bytes for m in g.pod_memory if m.pod_uid == uid) >= reservation.bytes_per_gpu
        for g in held
    )


def reconcile(reservation: Reservation, node: NodeState | None) -> Reservation:
    """The reservation with the GPUs its pod really got (pure): those ``node`` (the report of
    the reservation's node) shows the pod holding, in GPU index order, in place of the
    predicted ones; the reservation itself while the report shows the pod holding none."""
    if node is None or node.name != reservation.node:
        return reservation
    uid = reservation.pod_uid
    held = tuple(
        g.uuid for g in sorted(node.gpus, key=lambda g: g.index) if g.holder_pod_uid == uid
    )
    if not held or held == reservation.gpu_uuids:
        return reservation
    return dataclasses.replace(reservation, gpu_uuids=held)


def standing(
    reservation: Reservation,
    pod: PodFacts,
    node: NodeState | None,
    rule: EndRule = EndRule.HELD,
) -> Standing:
    """Whether ``reservation`` has ended, still holds its GPUs, and whether its load is in
    flight, given its pod's facts and the last report of its node (pure).

    ``node`` is the node the reservation is on, ``None`` when there is no report of it (then
    nothing is visible there, and only the pod's own end ends the reservation).
    """
    if not pod.exists:
        return Standing(Ended.POD_GONE, holds_gpus=False, in_flight=False)
    if pod.phase in FINISHED_PHASES:
        return Standing(Ended.POD_FINISHED, holds_gpus=False, in_flight=False)
    if pod.ready and node is not None and shows_load(node, reservation, rule):
        return Standing(Ended.LOAD_VISIBLE, holds_gpus=False, in_flight=False)
    return Standing(Ended.NO, holds_gpus=True, in_flight=not pod.ready)


def settle(
    reservation: Reservation,
    pod: PodFacts,
    node: NodeState | None,
    rule: EndRule = EndRule.HELD,
) -> Reservation | None:
    """The reservation as the rule leaves it (pure): ``None`` when it ended; else reconciled
    with the GPUs its pod got (``reconcile``), in state ``ready`` when its pod is Ready (so
    ``Reservation.in_flight`` is false), and back in ``bound`` when a Ready pod is no longer
    Ready. Assumed and bound reservations of pods that are not Ready keep their state."""
    s = standing(reservation, pod, node, rule)
    if s.ended is not Ended.NO:
        return None
    reservation = reconcile(reservation, node)
    if not s.in_flight:
        state = ReservationState.READY
    elif reservation.state is ReservationState.READY:
        state = ReservationState.BOUND
    else:
        return reservation
    if state is reservation.state:
        return reservation
    return dataclasses.replace(reservation, state=state)


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
        load_bytes=load_bytes(demand),
    )


def nominated_room(
    demand: Demand,
    *,
    pod_uid: str,
    pod_key: str,
    node: str,
    gpu_uuids: tuple[str, ...],
    now: float,
) -> Reservation:
    """The room a pod nominated to ``node`` holds there while its victims go (pure): assumed,
    with no expiry; it ends when the pod is placed (its own reservation replaces it), bound,
    gone, or no longer nominated, which the caller applies."""
    return Reservation(
        pod_uid=pod_uid,
        pod_key=pod_key,
        node=node,
        gpu_uuids=gpu_uuids,
        bytes_per_gpu=demand.vram_per_gpu,
        state=ReservationState.ASSUMED,
        created_at=now,
        model_id=demand.model_id,
    )
