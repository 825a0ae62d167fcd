"""``fit()``: can this node take this pod now, on which GPUs, and if not, why and could it ever.

This is the readable definition of vramfit's placement rules (whole-GPU mode, which works with
the stock NVIDIA device plugin). A GPU is a candidate when it is healthy, held by no pod, its
free memory is known and covers the demand, and no reservation that the node does not show yet
has claimed it. Pure: no I/O, and ``now`` is an argument.
"""

from __future__ import annotations

from collections.abc import Iterable

from placement.model import (
    Demand,
    Fit,
    FitSettings,
    GpuState,
    NodeState,
    NvlinkMode,
    Reject,
    Reservation,
)
from placement.quantity import format_bytes
from placement.topology import islands


def effective_nvlink(demand: Demand, settings: FitSettings) -> NvlinkMode:
    """The NVLink rule for this demand: one GPU needs none; the pod's annotation wins over policy."""
    if demand.gpus <= 1:
        return NvlinkMode.NONE
    if (
        demand.nvlink is NvlinkMode.PREFERRED
        and settings.nvlink_for_multi_gpu is NvlinkMode.REQUIRED
    ):
        return NvlinkMode.REQUIRED
    return demand.nvlink


def hidden_gpus(node: NodeState, reservations: Iterable[Reservation], now: float) -> set[str]:
    """GPUs of ``node`` claimed by active reservations that the node does not show as held yet."""
    hidden: set[str] = set()
    for r in reservations:
        if r.node != node.name or not r.active(now):
            continue
        for uuid in r.gpu_uuids:
            gpu = node.gpu(uuid)
            if gpu is not None and gpu.holder_pod_uid == r.pod_uid:
                continue  # the load is visible on the node: the GPU counts as held already
            hidden.add(uuid)
    return hidden


def _describe(gpus: Iterable[GpuState]) -> str:
    counts: dict[tuple[str, int], int] = {}
    for g in gpus:
        counts[(g.product, g.total_bytes)] = counts.get((g.product, g.total_bytes), 0) + 1
    return ", ".join(f"{n}x {p} {format_bytes(t)}" for (p, t), n in sorted(counts.items()))


def _why_not(gpu: GpuState, demand: Demand, hidden: set[str], own_uid: str) -> str | None:
    if not gpu.healthy:
        return "unhealthy"
    if gpu.holder_pod_uid is not None and gpu.holder_pod_uid != own_uid:
        return "held"
    if gpu.uuid in hidden:
        return "reserved"
    if gpu.free_bytes is None:
        return "unknown"
    if gpu.free_bytes < demand.vram_per_gpu:
        return "busy"
    return None


def fit(
    node: NodeState,
    demand: Demand,
    reservations: Iterable[Reservation],
    *,
    now: float,
    settings: FitSettings = FitSettings(),
    pod_uid: str = "",
) -> Fit | Reject:
    """Decide whether ``node`` can take a pod with ``demand`` at ``now``.

    ``reservations`` may hold reservations of any node; only this node's count. A reservation
    of ``pod_uid`` itself is ignored (a pod re-filtered after its own assumption). Returns a
    ``Fit`` with the chosen GPUs, or a ``Reject`` whose ``resolvable`` is false when the node
    could never take the pod (no GPUs of the product, too few GPUs large enough, no NVLink
    island large enough).
    """
    name = node.name
    # Unresolvable first: what the node could never offer, whatever it is doing now.
    if not node.gpus:
        return Reject(name, "node reports no GPUs", resolvable=False)
    matching = [g for g in node.gpus if not demand.products or g.product in demand.products]
    if not matching:
        return Reject(
            name,
            f"no GPU of product {', '.join(sorted(demand.products))} (node has {_describe(node.gpus)})",
            resolvable=False,
        )
    large = [g for g in matching if g.total_bytes >= demand.vram_per_gpu]
    if len(large) < demand.gpus:
        return Reject(
            name,
            f"needs {demand.gpus} GPU(s) with at least {format_bytes(demand.vram_per_gpu)} each; "
            f"node has {len(large)} ({_describe(node.gpus)})",
            resolvable=False,
        )
    nvlink = effective_nvlink(demand, settings)
    large_ids = {g.uuid for g in large}
    if nvlink is NvlinkMode.REQUIRED:
        best_island = max((len(i & large_ids) for i in islands(node)), default=0)
        if best_island < demand.gpus:
            return Reject(
                name,
                f"needs {demand.gpus} GPUs on one NVLink island; the largest island of suitable "
                f"GPUs has {best_island}",
                resolvable=False,
            )

    # Resolvable: the agent, the report, and what is free now.
    if node.agent_error:
        return Reject(name, f"node agent reports an error: {node.agent_error}", resolvable=True)
    if node.lease_renewed_at is None:
        return Reject(name, "no node agent heartbeat (Lease) seen for this node", resolvable=True)
    lease_age = now - node.lease_renewed_at
    if lease_age > node.lease_duration_s:
        return Reject(
            name,
            f"node agent heartbeat is {lease_age:.0f}s old (lease {node.lease_duration_s:.0f}s)",
            resolvable=True,
        )
    report_age = now - node.observed_at
    if report_age > settings.max_report_age_s:
        return Reject(
            name,
            f"GPU report is {report_age:.0f}s old (limit {settings.max_report_age_s:.0f}s)",
            resolvable=True,
        )
    hidden = hidden_gpus(node, (r for r in reservations if r.pod_uid != pod_uid), now)
    reasons: dict[str, int] = {}
    candidates: list[GpuState] = []
    for g in large:
        why = _why_not(g, demand, hidden, pod_uid)
        if why is None:
            candidates.append(g)
        else:
            reasons[why] = reasons.get(why, 0) + 1
    if len(candidates) < demand.gpus:
        detail = ", ".join(f"{n} {w}" for w, n in sorted(reasons.items()))
        return Reject(
            name,
            f"needs {demand.gpus} free GPU(s) with {format_bytes(demand.vram_per_gpu)} each; "
            f"{len(candidates)} free now ({detail})",
            resolvable=True,
        )
    chosen, same_island = _choose(node, candidates, demand.gpus)
    if nvlink is NvlinkMode.REQUIRED and not same_island:
        sizes = sorted((len(i & {g.uuid for g in candidates}) for i in islands(node)), reverse=True)
        return Reject(
            name,
            f"needs {demand.gpus} free GPUs on one NVLink island; free GPUs are split across "
            f"islands ({'+'.join(str(s) for s in sizes if s)})",
            resolvable=True,
        )
    return Fit(name, chosen, same_island)


def _choose(
    node: NodeState, candidates: list[GpuState], count: int
) -> tuple[tuple[str, ...], bool]:
    """Pick ``count`` GPUs: inside the smallest island that holds them (keeping big islands
    whole), the tightest-fitting ones; across islands only when no island has enough."""
    by_uuid = {g.uuid: g for g in candidates}

    def tightest(pool: Iterable[GpuState]) -> tuple[str, ...]:
        ordered = sorted(pool, key=lambda g: (g.free_bytes or 0, g.index, g.uuid))
        return tuple(sorted((g.uuid for g in ordered[:count]), key=lambda u: by_uuid[u].index))

    if count == 1:
        return tightest(candidates), True
    usable = [i & by_uuid.keys() for i in islands(node)]
    big_enough = [i for i in usable if len(i) >= count]
    if big_enough:
        island = min(big_enough, key=lambda i: (len(i), min(i)))
        return tightest(by_uuid[u] for u in island), True
    return tightest(candidates), False
