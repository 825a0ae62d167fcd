"""Builders of GPUs, GPU nodes and reservations for the tests, in one place.

A test names only what its case is about; every other field takes a default that suits most
tests. Sizes are in GiB, times in seconds around ``NOW``. GPU ``i`` of node ``n`` has the UUID
``n/GPU-i`` (``uuid``), so UUIDs differ between nodes as real ones do, and a reservation built
for node ``n`` names the same UUIDs as the node built with that name.

The simulator's own node and pod types have their builders in ``tests/simulator/builders.py``,
so that the core's tests never load the simulator.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Literal

from placement.model import (
    GIB,
    CachedModel,
    GpuState,
    MigDevice,
    NodeState,
    PodMemory,
    Reservation,
    ReservationState,
)

NOW = 10_000.0
NODE = "n1"
H100 = "NVIDIA-H100-80GB-HBM3"


class _Full(enum.Enum):
    FULL = "full"


FULL = _Full.FULL
"""``free=FULL``: all of the GPU's memory is free."""

Nvlink = Literal["all"] | Sequence[Sequence[int]] | None
"""How a node's GPUs are linked: all to all, in islands of GPU indices, or not at all."""


def uuid(index: int, node: str = NODE) -> str:
    """The UUID of GPU ``index`` on ``node``."""
    return f"{node}/GPU-{index}"


def uuids(*indices: int, node: str = NODE) -> tuple[str, ...]:
    """The UUIDs of GPUs ``indices`` on ``node``, in that order."""
    return tuple(uuid(i, node) for i in indices)


def gpu(
    index: int,
    *,
    node: str = NODE,
    total: float = 80,
    free: float | _Full | None = FULL,
    used: float | None = None,
    product: str = H100,
    healthy: bool = True,
    reason: str | None = None,
    holder: str | None = None,
    mig: bool = False,
    mig_devices: Sequence[MigDevice] = (),
    pod_memory: Sequence[PodMemory] = (),
) -> GpuState:
    """GPU ``index`` of ``node``: an H100 with 80 GiB, all free, healthy, held by no pod.

    ``free=None`` is a GPU whose memory could not be read; ``used`` defaults to what is not
    free, and an unhealthy GPU's ``reason`` to an XID.
    """
    free_gib = total if free is _Full.FULL else free
    if used is None and free_gib is not None:
        used = total - free_gib
    return GpuState(
        uuid=uuid(index, node),
        index=index,
        product=product,
        total_bytes=int(total * GIB),
        free_bytes=None if free_gib is None else int(free_gib * GIB),
        used_bytes=None if used is None else int(used * GIB),
        healthy=healthy,
        unhealthy_reason=("" if healthy else "XID 79") if reason is None else reason,
        mig_enabled=mig,
        mig_devices=tuple(mig_devices),
        holder_pod_uid=holder,
        pod_memory=tuple(pod_memory),
    )


def node(
    gpus: int | Iterable[GpuState] = 8,
    *,
    name: str = NODE,
    free: float | Sequence[float] | _Full = FULL,
    total: float = 80,
    product: str = H100,
    held: Collection[int] | Mapping[int, str] = (),
    held_gib: float | None = None,
    nvlink: Nvlink = "all",
    observed: float = NOW,
    lease: float | None = NOW,
    lease_duration: float = 40.0,
    models: Iterable[str] = (),
    error: str = "",
) -> NodeState:
    """A node reported and heartbeating at ``NOW``, its GPUs linked by ``nvlink``.

    ``gpus`` is either the GPUs themselves or how many to build: ``total`` GiB of ``product``
    each, ``free`` GiB free (one amount, or one per GPU), and ``held`` GPUs held by a pod
    (``other``, or the pod a mapping names) that uses ``held_gib`` GiB on each, where given.
    A list of islands leaves GPUs it does not name without NVLink.
    """
    if isinstance(gpus, int):
        frees = [free] * gpus if isinstance(free, float | int | _Full) else list(free)
        if len(frees) != gpus:
            raise ValueError(f"{len(frees)} free amounts for {gpus} GPUs")
        holders = held if isinstance(held, Mapping) else dict.fromkeys(held, "other")
        uses = {} if held_gib is None else {i: int(held_gib * GIB) for i in holders}
        built = [
            gpu(
                i,
                node=name,
                total=total,
                free=f,
                product=product,
                holder=holders.get(i),
                pod_memory=[PodMemory(holders[i], uses[i])] if i in uses else [],
            )
            for i, f in enumerate(frees)
        ]
    else:
        if free is not FULL or total != 80 or product != H100 or held or held_gib is not None:
            raise ValueError("free, total, product and held shape GPUs built from a count")
        built = list(gpus)
    islands = [[g.index for g in built]] if nvlink == "all" else nvlink or []
    by_index = {g.index: g.uuid for g in built}
    peers = {i: frozenset(by_index[j] for j in isle if j != i) for isle in islands for i in isle}
    return NodeState(
        name=name,
        gpus=tuple(
            dataclasses.replace(g, nvlink_peers=peers.get(g.index, frozenset())) for g in built
        ),
        observed_at=observed,
        lease_renewed_at=lease,
        lease_duration_s=lease_duration,
        cached_models=tuple(CachedModel(m, 10 * GIB) for m in models),
        agent_error=error,
    )


def reservation(
    pod: str = "p",
    gpus: Iterable[int] = (0,),
    *,
    node: str = NODE,
    state: ReservationState = ReservationState.ASSUMED,
    gib: float = 40,
    created: float = NOW - 1,
    expires_at: float | None = None,
) -> Reservation:
    """Pod ``pod``'s reservation of GPUs ``gpus`` (indices) on ``node``, ``gib`` GiB on each."""
    return Reservation(
        pod_uid=pod,
        pod_key=f"ns/{pod}",
        node=node,
        gpu_uuids=uuids(*gpus, node=node),
        bytes_per_gpu=int(gib * GIB),
        state=state,
        created_at=created,
        expires_at=expires_at,
    )
