"""Which node pools a component's pods may use, and why each other pool is ruled out.

A pool is out when its GPU product is not among the wanted ones, when the pods' nodeSelector,
required node affinity or missing tolerations keep them off its nodes (they are *pinned out*),
or when one pod can never fit a node of it (GPUs, VRAM per GPU, NVLink island, CPU, memory).
The reasons are the sentences the report shows. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

from placement.model import NvlinkMode
from placement.quantity import format_bytes
from planner.inputs.catalog import PoolType
from planner.inputs.pod_spec import Placement


def _matches(req_key: str, op: str, values: tuple[str, ...], labels: Mapping[str, str]) -> bool:
    have = labels.get(req_key)
    if op == "In":
        return have is not None and have in values
    if op == "NotIn":
        return have is None or have not in values
    if op == "Exists":
        return have is not None
    if op == "DoesNotExist":
        return have is None
    if have is None or not values:
        return False
    try:
        return float(have) > float(values[0]) if op == "Gt" else float(have) < float(values[0])
    except ValueError:
        return False


def placement_rejection(placement: Placement, pool: PoolType) -> str | None:
    """Why nodeSelector, node affinity or taints keep the pods off ``pool`` (``None``: they
    allow it). Pure."""
    labels = dict(pool.labels)
    for k, v in placement.node_selector:
        if labels.get(k) != v:
            return f"nodeSelector {k}={v} (pool has {k}={labels.get(k, '<unset>')})"
    if placement.affinity_terms and not any(
        all(_matches(r.key, r.operator, r.values, labels) for r in term)
        for term in placement.affinity_terms
    ):
        return "required node affinity matches no label of the pool"
    for taint in pool.taints:
        if taint.effect == "PreferNoSchedule":
            continue
        tolerated = any(
            (t.key == taint.key or (t.key == "" and t.operator == "Exists"))
            and (t.operator == "Exists" or t.value == taint.value)
            and (t.effect in ("", taint.effect))
            for t in placement.tolerations
        )
        if not tolerated:
            return f"taint {taint.key}={taint.value}:{taint.effect} is not tolerated"
    return None


def pool_rejection(
    pool: PoolType,
    *,
    gpus: int,
    vram_per_gpu: int | None,
    nvlink: NvlinkMode,
    products: frozenset[str],
    cpu_milli: int,
    memory_bytes: int,
    placement: Placement,
) -> str | None:
    """Why one pod of this shape can never run on a node of ``pool`` (``None``: it can). Pure."""
    if products and pool.gpu_product not in products:
        return f"GPU product {pool.gpu_product} is not in {', '.join(sorted(products))}"
    pinned = placement_rejection(placement, pool)
    if pinned:
        return pinned
    if gpus > pool.gpus:
        return f"needs {gpus} GPUs per pod, node has {pool.gpus}"
    if vram_per_gpu is not None and vram_per_gpu > pool.vram_per_gpu:
        return (
            f"needs {format_bytes(vram_per_gpu)} per GPU, {pool.gpu_product} has "
            f"{format_bytes(pool.vram_per_gpu)}"
        )
    if nvlink is NvlinkMode.REQUIRED and gpus > 1 and pool.largest_island < gpus:
        return f"needs {gpus} GPUs on one NVLink island, largest island has {pool.largest_island}"
    if cpu_milli > pool.cpu_milli:
        return f"needs {cpu_milli / 1000:g} CPU, node allows {pool.cpu_milli / 1000:g}"
    if memory_bytes > pool.memory_bytes:
        return f"needs {format_bytes(memory_bytes)} memory, node allows {format_bytes(pool.memory_bytes)}"
    return None
