"""The load budget: a hard limit on the cold loads a node has in flight at once.

Two loads that read weights from remote storage on one node share its NIC and both take longer;
during a burst the scheduler would place the second before the first has moved a byte. So a
node takes a pod whose load is *cold* there only within its budget. Precisely, with ``B`` the
node's remote bandwidth (``NodeState.remote_bytes_per_s``) and ``T`` the setting
``FitSettings.load_budget_s``:

    a node may take a cold load of ``b`` bytes when no cold load is in flight there, or when
    ``R + b <= T x B``, ``R`` being the bytes its cold loads in flight have still to move.

That is: after the node takes the load, its link could finish every cold load it has in flight
within ``T`` seconds, the new one included (with ``n`` loads sharing it, each still gets at least
its own bytes / ``T`` per second). One load always may start, however large: a load larger than
the budget alone waits for an idle link, not forever.

* A load is *cold* on a node when its model's weights are not on the node's disk
  (``NodeState.cached_models``; a pod that names no model is cold everywhere). A *warm* load reads
  the local disk, not the network: it is exempt, and it does not count against the budget.
* The bytes a pod loads (``load_bytes``): its ``vramfit.io/model-size``, but no more than the
  memory it asks for (a shard of a multi-node replica loads only its part); either alone when
  the other is unknown.
* A load in flight is an active reservation on the node whose pod is not Ready
  (``Reservation.in_flight``) and whose model is cold there. What it has still to move is its
  bytes (``Reservation.load_bytes``; ``bytes_per_gpu`` per GPU when unknown) less the memory the
  node's report shows its pod using: the report lags the load, so this errs on the side of
  more bytes. A load with nothing left to move is not in flight, even while its pod warms up.
* A node that reports no remote bandwidth has no budget.

A node at its budget refuses the pod with a resolvable reason (``reason_load_budget``): the pod
waits for a load to finish, or goes to another node that fits; kube-scheduler retries it when a
pod is bound, gets Ready or is deleted. ``placement.fit`` applies the rule last, after every
other; ``placement.fleet`` applies it over every row from the claims' sums. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable

from placement.model import Demand, FitSettings, NodeState, Reject, Reservation
from placement.quantity import format_bytes


def load_bytes(demand: Demand) -> int:
    """The bytes a pod with ``demand`` loads (pure): its model size, at most the memory it asks
    for over all its GPUs; whichever is known when the other is not (0: neither)."""
    memory = demand.vram_per_gpu * max(0, demand.gpus)
    if demand.model_bytes and memory:
        return min(demand.model_bytes, memory)
    return demand.model_bytes or memory


def reservation_bytes(r: Reservation, gpus: int | None = None) -> int:
    """The bytes the pod of ``r`` loads: ``r.load_bytes``, or when unknown its memory on its
    GPUs (``gpus`` of them, default those ``r`` names)."""
    return r.load_bytes or r.bytes_per_gpu * (len(r.gpu_uuids) if gpus is None else gpus)


def is_cold(node: NodeState, model_id: str) -> bool:
    """Whether a load of ``model_id`` on ``node`` reads remote storage (pure)."""
    return not (model_id and node.has_cached(model_id))


def loaded_bytes(node: NodeState, pod_uid: str) -> int:
    """The memory ``node``'s report shows the pod ``pod_uid`` using, over all its GPUs."""
    return sum(m.bytes for g in node.gpus for m in g.pod_memory if m.pod_uid == pod_uid)


def left_to_load(node: NodeState, r: Reservation) -> int:
    """The bytes the cold load of reservation ``r`` has still to move on ``node`` (pure): 0
    when its pod is Ready or its model is cached there (``r`` on ``node``, active: the
    caller's to check). Once the report shows the pod holding GPUs, those are its GPUs
    (as ``lifecycle.reconcile`` takes them)."""
    if not r.in_flight() or not is_cold(node, r.model_id):
        return 0
    held = sum(1 for g in node.gpus if g.holder_pod_uid == r.pod_uid)
    total = reservation_bytes(r, held or None)
    return max(0, total - loaded_bytes(node, r.pod_uid))


def cold_in_flight(
    node: NodeState, reservations: Iterable[Reservation], now: float, pod_uid: str = ""
) -> tuple[int, int]:
    """The cold loads in flight on ``node`` and the bytes they have still to move (pure),
    from the active reservations there other than ``pod_uid``'s."""
    loads = moving = 0
    for r in reservations:
        if r.node != node.name or r.pod_uid == pod_uid or not r.active(now):
            continue
        left = left_to_load(node, r)
        if left > 0:
            loads += 1
            moving += left
    return loads, moving


def over_budget(loads: int, moving: int, new: int, bandwidth: float, budget_s: float) -> bool:
    """Whether a cold load of ``new`` bytes would break the budget (pure): some load is in
    flight and the bytes left, the new ones included, take longer than ``budget_s`` at
    ``bandwidth``. Compared in float64, as the fleet compares them."""
    return loads > 0 and float(moving + new) > budget_s * bandwidth


def reason_load_budget(loads: int, moving: int, new: int, bandwidth: float, budget_s: float) -> str:
    """Resolvable: the node's cold loads in flight leave no room for this one."""
    return (
        f"node is loading {loads} model(s) from remote storage ({format_bytes(moving)} left, "
        f"{moving / bandwidth:.0f}s at {format_bytes(bandwidth)}/s); this pod's "
        f"{format_bytes(new)} would exceed the node's {budget_s:.0f}s load budget: it waits for "
        "a load to finish (weights cached on a node load from its disk, outside the budget)"
    )


def budget_of(node: NodeState, demand: Demand, settings: FitSettings) -> float | None:
    """The budget in seconds that holds for ``demand`` on ``node`` (pure): ``None`` when the
    setting is off, the node reports no remote bandwidth, or the pod's load is warm there."""
    budget_s, bandwidth = settings.load_budget_s, node.remote_bytes_per_s
    if budget_s is None or not bandwidth or bandwidth <= 0:
        return None
    if not is_cold(node, demand.model_id):
        return None
    return budget_s


def check_budget(
    node: NodeState,
    demand: Demand,
    reservations: Iterable[Reservation],
    *,
    now: float,
    settings: FitSettings,
    pod_uid: str = "",
) -> Reject | None:
    """The load budget for a pod with ``demand`` on ``node`` (pure): a resolvable ``Reject``
    when its cold load would break it, else ``None``."""
    budget_s = budget_of(node, demand, settings)
    if budget_s is None:
        return None
    bandwidth = float(node.remote_bytes_per_s or 0.0)
    loads, moving = cold_in_flight(node, reservations, now, pod_uid)
    new = load_bytes(demand)
    if not over_budget(loads, moving, new, bandwidth, budget_s):
        return None
    return Reject(
        node.name, reason_load_budget(loads, moving, new, bandwidth, budget_s), resolvable=True
    )
