"""``fit()``: can this node take this pod now, on which GPUs, and if not, why and could it ever.

This is the readable definition of vramfit's placement rules (whole-GPU mode, which works with
the stock NVIDIA device plugin). A GPU is a candidate when it is healthy, not in MIG mode (the
device plugin does not offer a MIG-enabled GPU as a whole ``nvidia.com/gpu``), held by no pod,
its free memory is known and covers the demand, and no reservation that the node does not show
yet has claimed it. Pure: no I/O, and ``now`` is an argument.

The reject reasons are built by the small ``reason_*`` functions below, which the fleet's fast
path shares (``placement.fleet.rejects``), so both say exactly the same thing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

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

# Why a GPU of the right product and size is not a candidate now, in the order fit() checks.
UNHEALTHY = "unhealthy"
MIG_ENABLED = "MIG-enabled"
HELD = "held"
RESERVED = "reserved"
UNKNOWN = "unknown"
BUSY = "busy"

REASON_NO_GPUS = "node reports no GPUs"
REASON_NO_LEASE = "no node agent heartbeat (Lease) seen for this node"


def product_key(name: str) -> str:
    """A GPU product name in the form GPU Feature Discovery labels use, case-folded (pure).

    NVML says "NVIDIA H100 80GB HBM3", the ``nvidia.com/gpu.product`` label says
    "NVIDIA-H100-80GB-HBM3"; a ``vramfit.io/gpu-product`` annotation may use either.
    """
    return "-".join(name.split()).casefold()


def effective_nvlink(demand: Demand, settings: FitSettings) -> NvlinkMode:
    """The NVLink rule for this demand (pure): one GPU needs none; the pod's annotation wins
    over the setting, except that the setting can make "preferred" required."""
    if demand.gpus <= 1:
        return NvlinkMode.NONE
    if (
        demand.nvlink is NvlinkMode.PREFERRED
        and settings.nvlink_for_multi_gpu is NvlinkMode.REQUIRED
    ):
        return NvlinkMode.REQUIRED
    return demand.nvlink


def hidden_gpus(node: NodeState, reservations: Iterable[Reservation], now: float) -> set[str]:
    """GPUs of ``node`` claimed by active reservations that the node does not show as held yet
    (pure)."""
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


def describe_gpus(gpus: Iterable[GpuState]) -> str:
    """A node's GPUs for messages: "8x NVIDIA-A100-SXM4-40GB 40 GiB" (pure)."""
    counts: dict[tuple[str, int], int] = {}
    for g in gpus:
        counts[(g.product, g.total_bytes)] = counts.get((g.product, g.total_bytes), 0) + 1
    return ", ".join(f"{n}x {p} {format_bytes(t)}" for (p, t), n in sorted(counts.items()))


def reason_no_product(products: Collection[str], described: str) -> str:
    """Unresolvable: the node has no GPU of any product the pod accepts."""
    return f"no GPU of product {', '.join(sorted(products))} (node has {described})"


def reason_too_small(gpus: int, vram: int, large: int, described: str) -> str:
    """Unresolvable: too few GPUs whose total memory could ever hold the demand."""
    return (
        f"needs {gpus} GPU(s) with at least {format_bytes(vram)} each; "
        f"node has {large} ({described})"
    )


def reason_no_island(gpus: int, best_island: int) -> str:
    """Unresolvable: no NVLink island has enough suitable GPUs for a required-NVLink pod."""
    return (
        f"needs {gpus} GPUs on one NVLink island; the largest island of suitable "
        f"GPUs has {best_island}"
    )


def reason_agent_error(error: str) -> str:
    """Resolvable: the node agent reports a whole-node fault."""
    return f"node agent reports an error: {error}"


def reason_lease_expired(age: float, duration: float) -> str:
    """Resolvable: the agent's heartbeat Lease has not been renewed in time."""
    return f"node agent heartbeat is {age:.0f}s old (lease {duration:.0f}s)"


def reason_report_old(age: float, limit: float) -> str:
    """Resolvable: the GPU report is older than the settings allow."""
    return f"GPU report is {age:.0f}s old (limit {limit:.0f}s)"


def reason_not_free(gpus: int, vram: int, free_now: int, why: Mapping[str, int]) -> str:
    """Resolvable: too few candidate GPUs now; ``why`` counts the others by cause."""
    detail = ", ".join(f"{n} {w}" for w, n in sorted(why.items()) if n)
    return (
        f"needs {gpus} free GPU(s) with {format_bytes(vram)} each; {free_now} free now ({detail})"
    )


def reason_split(gpus: int, sizes: Iterable[int]) -> str:
    """Resolvable: enough free GPUs, but not on one NVLink island; ``sizes`` per island."""
    split = "+".join(str(s) for s in sorted(sizes, reverse=True) if s)
    return (
        f"needs {gpus} free GPUs on one NVLink island; free GPUs are split across islands ({split})"
    )


def _why_not(gpu: GpuState, demand: Demand, hidden: set[str], own_uid: str) -> str | None:
    if not gpu.healthy:
        return UNHEALTHY
    if gpu.mig_enabled:
        return MIG_ENABLED
    if gpu.holder_pod_uid is not None and gpu.holder_pod_uid != own_uid:
        return HELD
    if gpu.uuid in hidden:
        return RESERVED
    if gpu.free_bytes is None:
        return UNKNOWN
    if gpu.free_bytes < demand.vram_per_gpu:
        return BUSY
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
    """Decide whether ``node`` can take a pod with ``demand`` at ``now`` (pure).

    ``reservations`` may hold reservations of any node; only this node's count. A reservation
    of ``pod_uid`` itself is ignored (a pod re-filtered after its own assumption). Returns a
    ``Fit`` with the chosen GPUs, or a ``Reject`` whose ``resolvable`` is false when the node
    could never take the pod (no GPUs of the product, too few GPUs large enough, no NVLink
    island large enough). A demand of no GPU fits any node, on no GPU.
    """
    name = node.name
    if demand.gpus <= 0:
        return Fit(name, (), True)
    nvlink = effective_nvlink(demand, settings)
    # Unresolvable first: what the node could never offer, whatever it is doing now.
    lasting = _lasting(node, demand, nvlink)
    if isinstance(lasting, Reject):
        return lasting
    large, node_islands = lasting
    # Resolvable: the agent, the report, and what is free now.
    down = _agent_down(node, now, settings)
    if down is not None:
        return down
    hidden = hidden_gpus(node, (r for r in reservations if r.pod_uid != pod_uid), now)
    candidates, why = _candidates(large, demand, hidden, pod_uid)
    if len(candidates) < demand.gpus:
        return Reject(
            name,
            reason_not_free(demand.gpus, demand.vram_per_gpu, len(candidates), why),
            resolvable=True,
        )
    chosen, same_island = _choose(node_islands, candidates, demand.gpus)
    if nvlink is NvlinkMode.REQUIRED and not same_island:
        free_ids = {g.uuid for g in candidates}
        return Reject(
            name,
            reason_split(demand.gpus, (len(i & free_ids) for i in node_islands)),
            resolvable=True,
        )
    return Fit(name, chosen, same_island)


def _lasting(
    node: NodeState, demand: Demand, nvlink: NvlinkMode
) -> Reject | tuple[list[GpuState], list[frozenset[str]]]:
    """What the node could never offer, in fit()'s order: GPUs, the product, GPUs large enough,
    an NVLink island large enough. A ``Reject`` (unresolvable, but for an agent that reads no
    GPUs), else the GPUs of the right product and size and the node's islands."""
    name = node.name
    if not node.gpus:
        if node.agent_error:
            # An agent that cannot read NVML publishes no GPUs; that says nothing lasting.
            return Reject(name, reason_agent_error(node.agent_error), resolvable=True)
        return Reject(name, REASON_NO_GPUS, resolvable=False)
    wanted = {product_key(p) for p in demand.products}
    matching = [g for g in node.gpus if not wanted or product_key(g.product) in wanted]
    if not matching:
        return Reject(
            name,
            reason_no_product(demand.products, describe_gpus(node.gpus)),
            resolvable=False,
        )
    large = [g for g in matching if g.total_bytes >= demand.vram_per_gpu]
    if len(large) < demand.gpus:
        return Reject(
            name,
            reason_too_small(
                demand.gpus, demand.vram_per_gpu, len(large), describe_gpus(node.gpus)
            ),
            resolvable=False,
        )
    node_islands = islands(node) if demand.gpus > 1 else []
    if nvlink is NvlinkMode.REQUIRED:
        large_ids = {g.uuid for g in large}
        best_island = max((len(i & large_ids) for i in node_islands), default=0)
        if best_island < demand.gpus:
            return Reject(name, reason_no_island(demand.gpus, best_island), resolvable=False)
    return large, node_islands


def _agent_down(node: NodeState, now: float, settings: FitSettings) -> Reject | None:
    """Whether the node's agent is failing, gone quiet or behind, in fit()'s order: its error,
    its Lease (never seen, or expired), the age of its report."""
    name = node.name
    if node.agent_error:
        return Reject(name, reason_agent_error(node.agent_error), resolvable=True)
    if node.lease_renewed_at is None:
        return Reject(name, REASON_NO_LEASE, resolvable=True)
    lease_age = now - node.lease_renewed_at
    if lease_age > node.lease_duration_s:
        return Reject(name, reason_lease_expired(lease_age, node.lease_duration_s), resolvable=True)
    report_age = now - node.observed_at
    if report_age > settings.max_report_age_s:
        return Reject(
            name, reason_report_old(report_age, settings.max_report_age_s), resolvable=True
        )
    return None


def _candidates(
    large: list[GpuState], demand: Demand, hidden: set[str], pod_uid: str
) -> tuple[list[GpuState], dict[str, int]]:
    """The GPUs free for the pod now, and how many each cause keeps from being free."""
    why: dict[str, int] = {}
    candidates: list[GpuState] = []
    for g in large:
        cause = _why_not(g, demand, hidden, pod_uid)
        if cause is None:
            candidates.append(g)
        else:
            why[cause] = why.get(cause, 0) + 1
    return candidates, why


def _choose(
    node_islands: list[frozenset[str]], candidates: list[GpuState], count: int
) -> tuple[tuple[str, ...], bool]:
    """Pick ``count`` GPUs: inside the smallest island that holds them (keeping big islands
    whole), the tightest-fitting ones; across islands only when no island has enough.

    "Tightest" orders by free memory, then GPU index, then UUID; the result is in GPU index
    order.
    """
    by_uuid = {g.uuid: g for g in candidates}

    def tightest(pool: Iterable[GpuState]) -> tuple[str, ...]:
        ordered = sorted(pool, key=lambda g: (g.free_bytes or 0, g.index, g.uuid))
        return tuple(g.uuid for g in sorted(ordered[:count], key=lambda g: (g.index, g.uuid)))

    if count == 1:
        return tightest(candidates), True
    usable = [i & by_uuid.keys() for i in node_islands]
    big_enough = [i for i in usable if len(i) >= count]
    if big_enough:
        island = min(big_enough, key=lambda i: (len(i), min(i)))
        return tightest(by_uuid[u] for u in island), True
    return tightest(candidates), False
