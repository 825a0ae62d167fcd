"""Model loads on a simulated node: which GPUs a pod gets and how fast its weights arrive.

Pure functions over frozen values (the GPU choice takes the random generator that stands for Go's
map order), so the rules can be tested exactly:

- a pod gets the GPUs the kubelet and the stock NVIDIA device plugin would give it: from the
  GPUs no running pod holds, listed in a random order, by the plugin's preferred allocation
  (``placement.deviceplugin``); vramfit's reservation is not read, unless the node is told to
  honour reservations (a kinder world than a real cluster, for comparison only);

- a pod's bytes to load are its ``vramfit.io/model-size`` annotation, else its
  ``vramfit.io/vram-per-gpu`` times its GPU count;
- weights cached on the node come at the local disk's bandwidth, others at the remote
  bandwidth; loads that overlap on the node share their tier's bandwidth equally (so two
  concurrent loads each take twice as long);
- each GPU's memory grows in proportion to the bytes loaded, up to the pod's VRAM per GPU
  (``vramfit.io/vram-per-gpu``, else the model split over its GPUs).
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from placement.annotation import AnnotationError, decode_reservation, reservation_of
from placement.demand import DemandError, demand_from_pod, gpu_count, pod_key
from placement.deviceplugin import pair_scores, preferred_allocation
from placement.shape import NvLink


class Source(enum.StrEnum):
    """Where the weights come from."""

    LOCAL = "local"
    REMOTE = "remote"


@dataclass(frozen=True, slots=True)
class Load:
    """One pod's GPUs and the progress of its weights into them."""

    pod_uid: str
    pod_key: str
    gpu_uuids: tuple[str, ...]
    bytes_per_gpu: int
    model_id: str
    total_bytes: int
    source: Source
    started_at: float
    loaded_bytes: float = 0.0

    @property
    def fraction(self) -> float:
        """Share of the weights loaded, 0..1."""
        if self.total_bytes <= 0:
            return 1.0
        return min(1.0, self.loaded_bytes / self.total_bytes)

    @property
    def done(self) -> bool:
        """Whether every byte has arrived."""
        return self.fraction >= 1.0

    def memory_per_gpu(self) -> int:
        """Bytes this pod uses on each of its GPUs now."""
        return math.floor(self.bytes_per_gpu * self.fraction)


def advance(
    loads: Sequence[Load], dt: float, local_bw: float, remote_bw: float
) -> tuple[Load, ...]:
    """``loads`` after ``dt`` seconds (pure).

    Within each tier the bandwidth is shared equally by the unfinished loads, and a load that
    finishes inside ``dt`` hands its share to the others from that instant on.
    """
    if dt <= 0:
        return tuple(loads)
    progress = {ld.pod_uid: ld.loaded_bytes for ld in loads}
    for tier, bw in ((Source.LOCAL, local_bw), (Source.REMOTE, remote_bw)):
        active = [ld for ld in loads if ld.source is tier and not ld.done]
        left = dt
        while active and left > 1e-12 and bw > 0:
            share = bw / len(active)
            remaining = {ld.pod_uid: ld.total_bytes - progress[ld.pod_uid] for ld in active}
            step = min(left, min(remaining.values()) / share)
            for ld in active:
                progress[ld.pod_uid] = min(
                    float(ld.total_bytes), progress[ld.pod_uid] + share * step
                )
            left -= step
            active = [ld for ld in active if progress[ld.pod_uid] < ld.total_bytes]
    return tuple(replace(ld, loaded_bytes=progress[ld.pod_uid]) for ld in loads)


def seconds_left(loads: Sequence[Load], uid: str, local_bw: float, remote_bw: float) -> float:
    """How long until pod ``uid``'s load finishes if no other load starts (pure)."""
    t = 0.0
    current = tuple(loads)
    for _ in range(len(current) + 1):
        mine = next(ld for ld in current if ld.pod_uid == uid)
        if mine.done:
            return t
        peers = [ld for ld in current if ld.source is mine.source and not ld.done]
        bw = local_bw if mine.source is Source.LOCAL else remote_bw
        share = bw / len(peers)
        step = min(ld.total_bytes - ld.loaded_bytes for ld in peers) / share
        current = advance(current, step, local_bw, remote_bw)
        t += step
    return t


def choose_gpus(
    count: int,
    free: Sequence[int],
    layout: NvLink,
    rng: random.Random,
    *,
    reserved: Sequence[int] = (),
    honour_reservation: bool = False,
) -> tuple[int, ...] | None:
    """The GPU indices a pod asking for ``count`` gets from the ``free`` ones (held by no
    running pod), in index order; ``None`` if too few (the kubelet refuses the pod).

    As the kubelet does: list the free GPUs in Go's map order (``rng`` shuffles them) and take
    the device plugin's preferred allocation on the node's ``layout``
    (``deviceplugin.preferred_allocation``). Only with ``honour_reservation`` are the GPUs the
    pod's reservation names (``reserved``) used, when they are all free and as many as it asks
    for: no real kubelet does this.
    """
    if honour_reservation and len(reserved) == count and all(g in free for g in reserved):
        return tuple(sorted(reserved))
    if len(free) < count:
        return None
    order = list(free)
    rng.shuffle(order)
    return tuple(sorted(preferred_allocation(order, count, pair_scores(layout))))


@dataclass(frozen=True, slots=True)
class PodNeeds:
    """What the kubelet stand-in reads from a pod."""

    gpus: int
    bytes_per_gpu: int
    model_bytes: int
    model_id: str
    preferred_gpus: tuple[str, ...]
    problem: str = ""


def pod_needs(
    pod: Mapping[str, Any], node: str, memory_per_gpu: int, *, reservation: bool = False
) -> PodNeeds:
    """GPU count, memory and (with ``reservation``) the GPUs vramfit reserved, of a raw pod
    (pure). Without ``reservation`` the ``vramfit.io/reservation`` annotation is not read, as
    the real kubelet does not read it.

    A malformed vramfit annotation does not stop the pod (the real kubelet does not read
    them): it loads nothing and ``problem`` says why.
    """
    try:
        gpus = gpu_count(pod)
    except DemandError as exc:
        return PodNeeds(0, 0, 0, "", (), problem=str(exc))
    problem = ""
    try:
        demand = demand_from_pod(pod)
    except DemandError as exc:
        demand, problem = None, str(exc)
    preferred: tuple[str, ...] = ()
    value = reservation_of(pod) if reservation else None
    if value is not None:
        meta = pod.get("metadata") or {}
        try:
            r = decode_reservation(value, pod_uid=str(meta.get("uid", "")), pod_key=pod_key(pod))
            if r.node == node:
                preferred = r.gpu_uuids
        except AnnotationError as exc:
            problem = problem or str(exc)
    if demand is None or gpus == 0:
        return PodNeeds(gpus, 0, 0, "", preferred, problem)
    model_bytes = demand.model_bytes or demand.vram_per_gpu * gpus
    per_gpu = demand.vram_per_gpu or math.ceil(model_bytes / gpus)
    return PodNeeds(
        gpus=gpus,
        bytes_per_gpu=min(per_gpu, memory_per_gpu),
        model_bytes=model_bytes,
        model_id=demand.model_id,
        preferred_gpus=preferred,
        problem=problem,
    )
