"""``fit()``: can this node take this pod now, on which GPUs, and if not, why and could it ever.

This is the readable definition of vramfit's placement rules (whole-GPU mode, which works with
the stock NVIDIA device plugin). vramfit does not pick the GPUs: the kubelet gives the pod any
set the device plugin's rule may give from the node's *unallocated* GPUs (healthy, not in MIG
mode, held by no pod; ``placement.deviceplugin``), and it reads no reservation. So a node passes
only if every such set satisfies the pod:

* count: the unallocated GPUs, less those promised to pods that have not got theirs yet
  (reservations whose pod the node does not show holding any GPU), are at least the pod's GPUs;
* memory: every unallocated GPU is of a product the pod accepts and has the pod's VRAM free
  (its free memory known): the pod's need is held against the smallest free VRAM among them. A
  GPU whose memory is used by no pod (a leaked or outside process) is named in the reason;
* NVLink: a pod that requires one island goes only where every set the rule may give, also
  after the pods still waiting took theirs, lies on one island; with the ``best-effort``
  setting, where the predicted set does;
* load budget, last: a pod whose weights are not on the node's disk goes only where the cold
  loads in flight leave room for its load (``placement.loadbudget``).

The GPUs a ``Fit`` names are vramfit's prediction: what the rule gives when the kubelet lists
the available GPUs (unallocated, and not promised to a waiting pod) in index order. Pure: no
I/O, and ``now`` is an argument.

A pod that claims its GPUs through Dynamic Resource Allocation (``Demand.allocator`` is
``DRA``) gets them from kube-scheduler's DRA plugin instead, which may allocate any devices of
the claim's class that its selectors accept (it does not score, and knows nothing of free
memory or NVLink). ``eligible`` names those GPUs on the node (``placement.dra`` reads them from
the ResourceSlices and the selectors; ``None``: every GPU). The same rules then hold over the
eligible GPUs only (the others are none of the pod's concern): enough of them unallocated and
not promised to another pod (the DRA plugin allocated a waiting pod its own GPUs, and its
reservation names them once the claim shows them: not a count of any GPUs, as the kubelet
hands out), each with the VRAM free, and for a pod that requires one NVLink island, all the
unallocated eligible GPUs on one island (the allocator may take any of them). The prediction is what the allocator
takes when it walks the devices in index order: the first available ones.

The reject reasons are built by the small ``reason_*`` functions below, which the fleet's fast
path shares (``placement.fleet.rejects``), so both say exactly the same thing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from placement.deviceplugin import always_one_island, mask_of, predicted_allocation
from placement.loadbudget import check_budget
from placement.model import (
    Allocator,
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
from placement.topology import islands, node_layout

# Why a GPU of the node is not unallocated, in the order fit() checks; and GPUs promised to pods
# that have not got theirs yet.
UNHEALTHY = "unhealthy"
MIG_ENABLED = "MIG-enabled"
HELD = "held"
RESERVED = "reserved"
CAUSES = (HELD, MIG_ENABLED, RESERVED, UNHEALTHY)

MAX_NAMED_GPUS = 3
"""The most GPUs one reason names (a reason's length stays bounded)."""
MAX_NAMED_ISLANDS = 8
"""The most NVLink islands one reason counts."""

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


def promised(node: NodeState, r: Reservation) -> set[str]:
    """The GPUs of ``node`` that reservation ``r`` promises its pod, while the pod has not got
    any there yet (pure): its GPUs on the node, none once the node shows the pod holding a GPU
    (then what it holds is what it got, whatever was predicted)."""
    on_node = {g.uuid for g in node.gpus}
    if any(g.holder_pod_uid == r.pod_uid for g in node.gpus):
        return set()
    return {u for u in r.gpu_uuids if u in on_node}


def _waiting(node: NodeState, reservations: Iterable[Reservation], now: float) -> list[set[str]]:
    return [promised(node, r) for r in reservations if r.node == node.name and r.active(now)]


def hidden_gpus(node: NodeState, reservations: Iterable[Reservation], now: float) -> set[str]:
    """GPUs of ``node`` that active reservations predict for pods that have not got their GPUs
    yet (pure): not free for the prediction or the scores, whatever NVML says."""
    return set().union(*_waiting(node, reservations, now))


def pending_counts(
    node: NodeState, reservations: Iterable[Reservation], now: float
) -> tuple[int, ...]:
    """How many GPUs each active reservation on ``node`` promises a pod that has not got its
    GPUs yet, sorted (pure): what the kubelet must still hand out there."""
    return tuple(sorted(len(p) for p in _waiting(node, reservations, now) if p))


def orphan_bytes(gpu: GpuState) -> int:
    """Memory of ``gpu`` in use by no pod: a leaked or outside process (pure)."""
    return max(0, (gpu.used_bytes or 0) - sum(m.bytes for m in gpu.pod_memory))


def describe_gpus(gpus: Iterable[GpuState]) -> str:
    """A node's GPUs for messages: "8x NVIDIA-A100-SXM4-40GB 40 GiB" (pure)."""
    counts: dict[tuple[str, int], int] = {}
    for g in gpus:
        counts[(g.product, g.total_bytes)] = counts.get((g.product, g.total_bytes), 0) + 1
    return ", ".join(f"{n}x {p} {format_bytes(t)}" for (p, t), n in sorted(counts.items()))


def reason_no_product(products: Collection[str], described: str) -> str:
    """Unresolvable: the node has no GPU of any product the pod accepts."""
    return f"no GPU of product {', '.join(sorted(products))} (node has {described})"


def reason_not_selected(described: str) -> str:
    """Unresolvable: no GPU of the node is one the pod's ResourceClaim selectors accept."""
    return f"no GPU the pod's ResourceClaim selectors accept (node has {described})"


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


def reason_not_free(gpus: int, free_now: int, why: Mapping[str, int]) -> str:
    """Resolvable: too few unallocated GPUs not promised to a waiting pod; ``why`` counts the
    others by cause (``reserved``: promised to pods that have not got their GPUs yet)."""
    detail = ", ".join(f"{n} {w}" for w, n in sorted(why.items()) if n)
    return f"needs {gpus} free GPU(s); {max(0, free_now)} free now ({detail})"


def describe_unfit(index: int, free: int | None, orphan: int, product: str | None) -> str:
    """One unallocated GPU that could not hold the pod, for ``reason_unfit``: another product
    (``product``), memory unknown, or too little free (with what no pod uses)."""
    if product is not None:
        return f"GPU {index} is {product}"
    if free is None:
        return f"GPU {index} memory unknown"
    if orphan:
        return f"GPU {index} has {format_bytes(free)} free, {format_bytes(orphan)} used by no pod"
    return f"GPU {index} has {format_bytes(free)} free"


def reason_unfit(
    vram: int, products: bool, unfit: int, named: Iterable[str], *, dra: bool = False
) -> str:
    """Resolvable: the kubelet (``dra``: the DRA plugin) may hand out any unallocated GPU, and
    ``unfit`` of them could not hold the pod (its VRAM free, one of its ``products`` where it
    names some); ``named`` describes the first few (``describe_unfit``)."""
    listed = list(named)
    more = f"; {unfit - len(listed)} more" if unfit > len(listed) else ""
    of = ", of a product the pod accepts," if products else ""
    every = "eligible unallocated GPU" if dra else "unallocated GPU"
    who = "the DRA plugin may allocate any" if dra else "the kubelet may hand out any"
    return (
        f"needs {format_bytes(vram)} free on every {every}{of} ({who}): {'; '.join(listed)}{more}"
    )


def reason_split(gpus: int, sizes: Iterable[int], *, dra: bool = False) -> str:
    """Resolvable: the device plugin (``dra``: the DRA scheduler plugin) may hand out GPUs
    across NVLink islands; ``sizes`` are the unallocated GPUs per island."""
    counts = [str(s) for s in sorted(sizes, reverse=True) if s]
    split = "+".join(counts[:MAX_NAMED_ISLANDS]) + (
        "+..." if len(counts) > MAX_NAMED_ISLANDS else ""
    )
    who = "the DRA plugin may allocate" if dra else "the device plugin may hand out"
    return (
        f"needs {gpus} GPUs on one NVLink island; {who} GPUs across "
        f"islands (unallocated per island: {split})"
    )


def fit(
    node: NodeState,
    demand: Demand,
    reservations: Iterable[Reservation],
    *,
    now: float,
    settings: FitSettings = FitSettings(),
    pod_uid: str = "",
    eligible: Collection[str] | None = None,
) -> Fit | Reject:
    """Decide whether ``node`` can take a pod with ``demand`` at ``now`` (pure).

    ``reservations`` may hold reservations of any node; only this node's count. A reservation
    of ``pod_uid`` itself is ignored (a pod re-filtered after its own assumption), and so are
    GPUs the pod holds itself. ``eligible`` (UUIDs) limits the GPUs the pod may get to those
    (a DRA claim's selectors); ``None`` leaves every GPU of the node. Returns a ``Fit`` with
    the predicted GPUs, or a ``Reject`` whose ``resolvable`` is false when the node could never
    take the pod (no GPUs of the product, too few GPUs large enough, no NVLink island large
    enough). A demand of no GPU fits any node, on no GPU.
    """
    name, k = node.name, demand.gpus
    if k <= 0:
        return Fit(name, (), True)
    nvlink = effective_nvlink(demand, settings)
    # Unresolvable first: what the node could never offer, whatever it is doing now.
    lasting = _lasting(node, demand, nvlink, eligible)
    if lasting is not None:
        return lasting
    # Resolvable: the agent, the report, and what the kubelet may hand out now.
    down = _agent_down(node, now, settings)
    if down is not None:
        return down
    others = [r for r in reservations if r.pod_uid != pod_uid]
    pending = pending_counts(node, others, now)
    gpus = sorted(node.gpus, key=lambda g: g.index)
    considered = gpus if eligible is None else [g for g in gpus if g.uuid in eligible]
    unallocated, why = unallocated_gpus(considered, pod_uid)
    dra = demand.allocator is Allocator.DRA
    promised = hidden_gpus(node, others, now)
    # The kubelet hands a waiting pod any GPUs; the DRA plugin gave it its own (reconciled).
    reserved = sum(1 for g in unallocated if g.uuid in promised) if dra else sum(pending)
    why[RESERVED] = reserved
    if len(unallocated) - reserved < k:
        return Reject(name, reason_not_free(k, len(unallocated) - reserved, why), True)
    unfit = reason_unfit_gpus(unallocated, demand)
    if unfit is not None:
        return Reject(name, unfit, resolvable=True)
    # Which GPUs the plugin gives: vramfit's prediction, and (NVLink) every possible set.
    layout = node_layout(node)
    position = {g.uuid: p for p, g in enumerate(gpus)}
    free_mask = mask_of([position[g.uuid] for g in unallocated])
    hidden = mask_of([position[u] for u in promised])
    if dra:
        predicted = first_available(free_mask & ~hidden, k)
    else:
        predicted = predicted_allocation(free_mask & ~hidden, k, layout)
    same_island = any(predicted <= set(i) for i in layout.islands)
    if nvlink is NvlinkMode.REQUIRED and not (
        same_island
        if settings.nvlink_best_effort
        else (
            any(free_mask & mask_of(i) == free_mask for i in layout.islands)
            if dra
            else always_one_island(free_mask, k, layout, pending)
        )
    ):
        sizes = [sum(1 for p in island if free_mask >> p & 1) for island in layout.islands]
        return Reject(name, reason_split(k, sizes, dra=dra), resolvable=True)
    busy = check_budget(node, demand, others, now=now, settings=settings, pod_uid=pod_uid)
    if busy is not None:
        return busy
    return Fit(name, tuple(gpus[p].uuid for p in sorted(predicted)), same_island)


def first_available(available_mask: int, size: int) -> frozenset[int]:
    """The DRA plugin's pick as vramfit predicts it (pure): the first ``size`` GPU positions
    in ``available_mask``, lowest first; empty when fewer are available."""
    picked = [p for p in range(available_mask.bit_length()) if available_mask >> p & 1][:size]
    return frozenset(picked) if len(picked) == size else frozenset()


def _lasting(
    node: NodeState, demand: Demand, nvlink: NvlinkMode, eligible: Collection[str] | None
) -> Reject | None:
    """What the node could never offer, in fit()'s order: GPUs, the product (and the GPUs
    ``eligible``), GPUs large enough, an NVLink island large enough. A ``Reject``
    (unresolvable, but for an agent that reads no GPUs), else ``None``."""
    name = node.name
    if not node.gpus:
        if node.agent_error:
            # An agent that cannot read NVML publishes no GPUs; that says nothing lasting.
            return Reject(name, reason_agent_error(node.agent_error), resolvable=True)
        return Reject(name, REASON_NO_GPUS, resolvable=False)
    wanted = {product_key(p) for p in demand.products}
    matching = [
        g
        for g in node.gpus
        if (not wanted or product_key(g.product) in wanted)
        and (eligible is None or g.uuid in eligible)
    ]
    if not matching:
        described = describe_gpus(node.gpus)
        why = (
            reason_no_product(demand.products, described)
            if demand.products
            else reason_not_selected(described)
        )
        return Reject(name, why, resolvable=False)
    large = [g for g in matching if g.total_bytes >= demand.vram_per_gpu]
    if len(large) < demand.gpus:
        return Reject(
            name,
            reason_too_small(
                demand.gpus, demand.vram_per_gpu, len(large), describe_gpus(node.gpus)
            ),
            resolvable=False,
        )
    if nvlink is NvlinkMode.REQUIRED:
        large_ids = {g.uuid for g in large}
        best_island = max((len(i & large_ids) for i in islands(node)), default=0)
        if best_island < demand.gpus:
            return Reject(name, reason_no_island(demand.gpus, best_island), resolvable=False)
    return None


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


def unallocated_gpus(
    gpus: Iterable[GpuState], pod_uid: str
) -> tuple[list[GpuState], dict[str, int]]:
    """The GPUs of ``gpus`` the kubelet may hand out (healthy, not in MIG mode, held by no pod
    but the pod ``pod_uid`` itself), in their order, and how many each cause keeps from it
    (pure)."""
    why: dict[str, int] = {}
    out: list[GpuState] = []
    for g in gpus:
        if not g.healthy:
            cause: str | None = UNHEALTHY
        elif g.mig_enabled:
            cause = MIG_ENABLED
        elif g.holder_pod_uid is not None and g.holder_pod_uid != pod_uid:
            cause = HELD
        else:
            cause = None
        if cause is None:
            out.append(g)
        else:
            why[cause] = why.get(cause, 0) + 1
    return out, why


def reason_unfit_gpus(unallocated: Iterable[GpuState], demand: Demand) -> str | None:
    """The reason when an unallocated GPU could not hold the pod (``reason_unfit``, naming the
    first few), ``None`` when every one could (pure)."""
    unfit = [d for g in unallocated if (d := _unfit(g, demand)) is not None]
    if not unfit:
        return None
    named = unfit[:MAX_NAMED_GPUS]
    dra = demand.allocator is Allocator.DRA
    return reason_unfit(demand.vram_per_gpu, bool(demand.products), len(unfit), named, dra=dra)


def _unfit(g: GpuState, demand: Demand) -> str | None:
    """Why the unallocated GPU ``g`` could not hold the pod (``describe_unfit``), or ``None``."""
    wanted = {product_key(p) for p in demand.products}
    other = g.product if wanted and product_key(g.product) not in wanted else None
    if other is None and g.free_bytes is not None and g.free_bytes >= demand.vram_per_gpu:
        return None
    return describe_unfit(g.index, g.free_bytes, orphan_bytes(g), other)
