"""GPU node types the simulator can build a cluster from: a small built-in set, or a plan's pools.

A node type fixes what every node of a pool looks like to the scheduler and to the agent: GPU
product and count, VRAM per GPU, NVLink islands, CPU and memory allocatable, how fast weights
come from local disk and from remote storage, memory NVML shows as used with no pod on the GPU
(driver and context reservations), and a price per node-hour.

The built-in prices are rough on-demand list prices of comparable cloud instances, rounded, for
comparing policies with each other; set ``pricePerHour`` in a scenario for real figures. A plan
JSON written by ``vramfit-plan`` lists ``pools`` (``name``, ``gpu_product``, ``gpus_per_node``,
``vram_per_gpu_bytes``, ``nodes``); what a plan does not say is taken from the built-in type of
the same GPU product, or from conservative defaults; a pool's price comes from the pool itself
(``price_per_hour``), the plan's ``catalog.pools`` entry of the same name, the pool's total
``cost_per_hour`` over its nodes, or the built-in type, in that order. Pure, except
``load_plan``, which reads the file with the one document loader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NotRequired, TypedDict

from documents import load_document
from placement.fields import Fields, InputError, Problem
from placement.fit import product_key
from placement.model import GIB
from placement.shape import NodeShape, NvLink, read_nvlink

MIB = 1024**2


@dataclass(frozen=True, slots=True)
class NodeType:
    """Every node of a pool, as the scheduler and the node agent see it: the core's GPU node
    shape (product, GPUs, VRAM per GPU, NVLink, load bandwidths) and what only a simulation
    needs besides (CPU and memory allocatable, GPU memory in use with no pod, a price).

    A simulated node loads weights at known speeds: both bandwidths of the shape must be set.
    """

    name: str
    shape: NodeShape
    cpu_milli: int
    memory_bytes: int
    reserved_per_gpu: int
    price_per_hour: float

    def __post_init__(self) -> None:
        if self.shape.local_disk_bytes_per_s is None or self.shape.remote_bytes_per_s is None:
            raise ValueError(f"node type {self.name}: both load bandwidths must be known")

    @property
    def bandwidths(self) -> tuple[float, float]:
        """Bytes per second from local disk and from remote storage."""
        disk, remote = self.shape.local_disk_bytes_per_s, self.shape.remote_bytes_per_s
        assert disk is not None and remote is not None  # __post_init__
        return disk, remote

    @property
    def price_per_gpu_hour(self) -> float:
        """Price of one GPU-hour on this node type."""
        return self.price_per_hour / self.shape.gpus


def _type(
    name: str,
    *,
    product: str,
    gpus: int,
    vram: int,
    nvlink: str,
    cpu: int,
    memory_gib: int,
    disk_gib_s: float,
    remote_gib_s: float,
    price: float,
) -> NodeType:
    return NodeType(
        name=name,
        shape=NodeShape(
            product=product,
            gpus=gpus,
            vram_per_gpu=vram,
            nvlink=NvLink.all(gpus) if nvlink == "all" else NvLink.none(gpus),
            local_disk_bytes_per_s=disk_gib_s * GIB,
            remote_bytes_per_s=remote_gib_s * GIB,
        ),
        cpu_milli=cpu * 1000,
        memory_bytes=memory_gib * GIB,
        reserved_per_gpu=512 * MIB,
        price_per_hour=price,
    )


BUILTIN_TYPES: Mapping[str, NodeType] = {
    t.name: t
    for t in (
        _type(
            "a100-40gb-8",
            product="NVIDIA-A100-SXM4-40GB",
            gpus=8,
            vram=40 * GIB,
            nvlink="all",
            cpu=96,
            memory_gib=1152,
            disk_gib_s=2,
            remote_gib_s=1.25,
            price=32.8,
        ),
        _type(
            "a100-80gb-8",
            product="NVIDIA-A100-SXM4-80GB",
            gpus=8,
            vram=80 * GIB,
            nvlink="all",
            cpu=96,
            memory_gib=1152,
            disk_gib_s=4,
            remote_gib_s=2.5,
            price=41.0,
        ),
        _type(
            "h100-80gb-8",
            product="NVIDIA-H100-80GB-HBM3",
            gpus=8,
            vram=80 * GIB,
            nvlink="all",
            cpu=192,
            memory_gib=2048,
            disk_gib_s=8,
            remote_gib_s=5,
            price=55.0,
        ),
        _type(
            "l40s-48gb-4",
            product="NVIDIA-L40S",
            gpus=4,
            vram=46068 * MIB,
            nvlink="none",
            cpu=48,
            memory_gib=384,
            disk_gib_s=2,
            remote_gib_s=1.25,
            price=10.5,
        ),
        _type(
            "a10g-24gb-4",
            product="NVIDIA-A10G",
            gpus=4,
            vram=23028 * MIB,
            nvlink="none",
            cpu=48,
            memory_gib=192,
            disk_gib_s=1,
            remote_gib_s=1.25,
            price=5.7,
        ),
    )
}

# What a pool gets when neither it (a plan's, or a scenario's own) nor a built-in type says more.
DEFAULT_CPU_PER_GPU = 12_000
DEFAULT_MEMORY_PER_GPU = 128 * GIB
DEFAULT_DISK_BYTES_PER_S = 2.0 * GIB
DEFAULT_REMOTE_BYTES_PER_S = 1.25 * GIB


class PlanPoolJSON(TypedDict):
    """One pool of a ``vramfit-plan`` plan, as the simulator reads it."""

    name: str
    gpu_product: str
    gpus_per_node: int
    vram_per_gpu_bytes: int
    nodes: int
    existing_nodes: NotRequired[int]
    cost_per_hour: NotRequired[float]
    price_per_hour: NotRequired[float]
    nvlink: NotRequired[object]  # as a scenario's: all, none, or islands
    cpu_milli: NotRequired[int]
    memory_bytes: NotRequired[int]
    local_disk_bytes_per_s: NotRequired[float]
    remote_bytes_per_s: NotRequired[float]


@dataclass(frozen=True, slots=True)
class PlanPool:
    """A pool read from a plan: its node type and how many nodes it has."""

    name: str
    node_type: NodeType
    nodes: int


def _similar(product: str, gpus: int) -> NodeType | None:
    """The built-in type with the same GPU product, preferring the same GPU count."""
    key = product_key(product)
    same = [t for t in BUILTIN_TYPES.values() if product_key(t.shape.product) == key]
    same.sort(key=lambda t: (t.shape.gpus != gpus, t.name))
    return same[0] if same else None


def _catalog_prices(catalog: object) -> dict[str, float]:
    """Price per node-hour by pool name from a plan's ``catalog.pools`` (pure); entries without
    a usable name and price are left out: the catalog is only a fallback."""
    listed = catalog.get("pools") if isinstance(catalog, Mapping) else None
    return {
        c["name"]: float(c["price_per_hour"])
        for c in (listed if isinstance(listed, list) else [])
        if isinstance(c, Mapping)
        and isinstance(c.get("name"), str)
        and isinstance(c.get("price_per_hour"), int | float)
        and not isinstance(c.get("price_per_hour"), bool)
        and c["price_per_hour"] >= 0
    }


def _plan_price(f: Fields, name: str, nodes: int, catalog: Mapping[str, float]) -> float | None:
    """A plan pool's price per node: its own, the catalog's, or its total cost over its nodes."""
    price = f.number("price_per_hour", None)
    if price is None:
        price = catalog.get(name)
    total = f.number("cost_per_hour", None)
    if price is None and total is not None and nodes > 0:
        price = total / nodes
    return price


def _plan_pool(f: Fields, index: int, catalog: Mapping[str, float]) -> PlanPool:
    """One pool of a plan; what it does not say comes from the built-in type of its product."""
    name = f.text("name", f"pool-{index}", required=True)
    product = f.text("gpu_product", "unknown", required=True)
    gpus = f.integer("gpus_per_node", 1, minimum=1, required=True)
    vram = f.integer("vram_per_gpu_bytes", 1, minimum=1, required=True)
    nodes = f.integer("nodes", 0, required=True)
    base = _similar(product, gpus)
    # Unsaid, NVLink is the built-in type's when it joins every GPU, else none; no built-in
    # type of the product: all.
    joined = base is None or (len(base.shape.islands) == 1 and gpus > 1)
    nvlink = read_nvlink(f, "nvlink", gpus, NvLink.all(gpus) if joined else NvLink.none(gpus))
    price = _plan_price(f, name, nodes, catalog)
    cpu = f.number("cpu_milli", None)
    memory = f.number("memory_bytes", None)
    disk = f.number("local_disk_bytes_per_s", None)
    remote = f.number("remote_bytes_per_s", None)
    if price is None and base is None:
        f.bad(
            "price_per_hour",
            "missing (nor in the plan's catalog, nor a cost_per_hour), and no built-in node "
            f"type has GPU product {product!r}",
        )
    if base is not None:
        scale = gpus / base.shape.gpus
        defaults = (
            base.price_per_hour * scale,
            base.cpu_milli * scale,
            base.memory_bytes * scale,
            *base.bandwidths,
        )
    else:
        defaults = (
            0.0,
            float(DEFAULT_CPU_PER_GPU * gpus),
            float(DEFAULT_MEMORY_PER_GPU * gpus),
            DEFAULT_DISK_BYTES_PER_S,
            DEFAULT_REMOTE_BYTES_PER_S,
        )
    return PlanPool(
        name=name,
        nodes=nodes,
        node_type=NodeType(
            name=name,
            shape=NodeShape(
                product=product,
                gpus=gpus,
                vram_per_gpu=vram,
                nvlink=nvlink,
                local_disk_bytes_per_s=disk or defaults[3],
                remote_bytes_per_s=remote or defaults[4],
            ),
            cpu_milli=int(cpu if cpu is not None else defaults[1]),
            memory_bytes=int(memory if memory is not None else defaults[2]),
            reserved_per_gpu=512 * MIB,
            price_per_hour=price if price is not None else defaults[0],
        ),
    )


def pools_from_plan(raw: object, source: str) -> tuple[PlanPool, ...]:
    """The pools of a plan document (pure); raises ``InputError`` listing every problem.

    A plan carries much the simulator does not read: fields it does not know are ignored.
    """
    if not isinstance(raw, Mapping) or not isinstance(raw.get("pools"), list):
        raise InputError(source, [Problem("", "expected a JSON object with a 'pools' list")])
    plan = Fields(raw, unknown="ignore")
    catalog = _catalog_prices(raw.get("catalog"))
    pools: list[PlanPool] = []
    for i, f in enumerate(plan.children("pools")):
        pool = _plan_pool(f, i, catalog)
        if any(p.name == pool.name for p in pools):
            f.bad("name", f"{pool.name!r} repeats an earlier pool")
        pools.append(pool)
    if not pools:
        plan.bad("pools", "the plan lists no pools")
    plan.raise_if_problems(source)
    return tuple(pools)


def load_plan(path: Path) -> tuple[PlanPool, ...]:
    """Read a plan JSON file; raises ``InputError`` naming the file and every problem."""
    return pools_from_plan(load_document(path, syntax="json"), str(path))
