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
``load_plan``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from placement.fit import product_key
from placement.model import GIB
from simulator.fields import ScenarioError

MIB = 1024**2


@dataclass(frozen=True, slots=True)
class NodeType:
    """The shape of every node of a pool, as the scheduler and the node agent see it."""

    name: str
    gpu_product: str
    gpus: int
    vram_per_gpu: int
    islands: tuple[tuple[int, ...], ...]
    cpu_milli: int
    memory_bytes: int
    local_disk_bytes_per_s: float
    remote_bytes_per_s: float
    reserved_per_gpu: int
    price_per_hour: float

    @property
    def price_per_gpu_hour(self) -> float:
        """Price of one GPU-hour on this node type."""
        return self.price_per_hour / self.gpus if self.gpus else 0.0


def islands_for(nvlink: str, gpus: int) -> tuple[tuple[int, ...], ...]:
    """NVLink islands for ``all`` (one island, NVSwitch) or ``none`` (every GPU alone) (pure)."""
    if nvlink == "all":
        return (tuple(range(gpus)),)
    return tuple((i,) for i in range(gpus))


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
        gpu_product=product,
        gpus=gpus,
        vram_per_gpu=vram,
        islands=islands_for(nvlink, gpus),
        cpu_milli=cpu * 1000,
        memory_bytes=memory_gib * GIB,
        local_disk_bytes_per_s=disk_gib_s * GIB,
        remote_bytes_per_s=remote_gib_s * GIB,
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
    nvlink: NotRequired[str]
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
    same = [t for t in BUILTIN_TYPES.values() if product_key(t.gpu_product) == product_key(product)]
    same.sort(key=lambda t: (t.gpus != gpus, t.name))
    return same[0] if same else None


def _whole(raw: Mapping[str, Any], key: str, where: str, problems: list[str], low: int) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        problems.append(f"{where}.{key}: expected a whole number >= {low}, got {value!r}")
        return low
    return value


def _positive(raw: Mapping[str, Any], key: str, where: str, problems: list[str]) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        problems.append(f"{where}.{key}: expected a number >= 0, got {value!r}")
        return None
    return float(value)


def pools_from_plan(raw: object, source: str) -> tuple[PlanPool, ...]:
    """The pools of a plan document (pure); raises ``ScenarioError`` listing every problem."""
    problems: list[str] = []
    if not isinstance(raw, Mapping) or not isinstance(raw.get("pools"), list):
        raise ScenarioError(source, ["expected a JSON object with a 'pools' list"])
    pools: list[PlanPool] = []
    seen: set[str] = set()
    catalog = raw.get("catalog")
    listed = catalog.get("pools") if isinstance(catalog, Mapping) else None
    catalog_prices = {
        c["name"]: float(c["price_per_hour"])
        for c in (listed if isinstance(listed, list) else [])
        if isinstance(c, Mapping)
        and isinstance(c.get("name"), str)
        and isinstance(c.get("price_per_hour"), int | float)
        and not isinstance(c.get("price_per_hour"), bool)
        and c["price_per_hour"] >= 0
    }
    for i, entry in enumerate(raw["pools"]):
        where = f"pools[{i}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: expected an object")
            continue
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f"{where}.name: expected a non-empty string, got {name!r}")
            name = f"pool-{i}"
        elif name in seen:
            problems.append(f"{where}.name: {name!r} repeats an earlier pool")
        seen.add(name)
        product = entry.get("gpu_product")
        if not isinstance(product, str) or not product:
            problems.append(f"{where}.gpu_product: expected a non-empty string, got {product!r}")
            product = "unknown"
        gpus = _whole(entry, "gpus_per_node", where, problems, 1)
        vram = _whole(entry, "vram_per_gpu_bytes", where, problems, 1)
        nodes = _whole(entry, "nodes", where, problems, 0)
        nvlink = entry.get("nvlink", None)
        if nvlink is not None and nvlink not in ("all", "none"):
            problems.append(f"{where}.nvlink: expected 'all' or 'none', got {nvlink!r}")
            nvlink = None
        base = _similar(product, gpus)
        price = _positive(entry, "price_per_hour", where, problems)
        if price is None:
            price = catalog_prices.get(name)
        total = _positive(entry, "cost_per_hour", where, problems)
        if price is None and total is not None and nodes > 0:
            price = total / nodes
        cpu = _positive(entry, "cpu_milli", where, problems)
        memory = _positive(entry, "memory_bytes", where, problems)
        disk = _positive(entry, "local_disk_bytes_per_s", where, problems)
        remote = _positive(entry, "remote_bytes_per_s", where, problems)
        if price is None and base is None:
            problems.append(
                f"{where}.price_per_hour: missing (nor in the plan's catalog, nor a "
                f"cost_per_hour), and no built-in node type has GPU product {product!r}"
            )
        if base is not None:
            scale = gpus / base.gpus
            defaults = (
                base.price_per_hour * scale,
                base.cpu_milli * scale,
                base.memory_bytes * scale,
                base.local_disk_bytes_per_s,
                base.remote_bytes_per_s,
                "all" if len(base.islands) == 1 and gpus > 1 else "none",
            )
        else:
            defaults = (
                0.0,
                float(DEFAULT_CPU_PER_GPU * gpus),
                float(DEFAULT_MEMORY_PER_GPU * gpus),
                DEFAULT_DISK_BYTES_PER_S,
                DEFAULT_REMOTE_BYTES_PER_S,
                "all",
            )
        pools.append(
            PlanPool(
                name=name,
                nodes=nodes,
                node_type=NodeType(
                    name=name,
                    gpu_product=product,
                    gpus=gpus,
                    vram_per_gpu=vram,
                    islands=islands_for(str(nvlink or defaults[5]), gpus),
                    cpu_milli=int(cpu if cpu is not None else defaults[1]),
                    memory_bytes=int(memory if memory is not None else defaults[2]),
                    local_disk_bytes_per_s=disk or defaults[3],
                    remote_bytes_per_s=remote or defaults[4],
                    reserved_per_gpu=512 * MIB,
                    price_per_hour=price if price is not None else defaults[0],
                ),
            )
        )
    if not pools and not problems:
        problems.append("pools: the plan lists no pools")
    if problems:
        raise ScenarioError(source, problems)
    return tuple(pools)


def load_plan(path: Path) -> tuple[PlanPool, ...]:
    """Read a plan JSON file; raises ``ScenarioError`` naming the file and every problem."""
    source = str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ScenarioError(source, ["plan file not found"]) from None
    except OSError as exc:
        raise ScenarioError(source, [f"cannot read the plan ({exc.strerror})"]) from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ScenarioError(source, [f"not valid JSON ({exc})"]) from None
    return pools_from_plan(raw, source)
