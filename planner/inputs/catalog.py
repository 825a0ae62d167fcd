"""The node-pool catalog: which GPU node types can be bought, their shape and their price.

A catalog is YAML (one entry per pool: GPU product, GPUs per node, VRAM per GPU, NVLink, CPU,
memory, local disk, price per hour with its source and date, optional min/max/existing nodes,
labels and taints). The shipped default lists common AWS, GCP and Azure GPU instances. A pool's
GPU node is the core's ``NodeShape``: its NVLink islands are read by the core's one parser and
its node labels include the GPU Feature Discovery labels the shape implies. Parsing is pure and
reports every problem at once (the core's ``Fields``); ``load_catalog`` is the thin
file-reading shell.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from placement.fields import Fields
from placement.shape import NodeShape, NvLink, read_nvlink
from planner.data import builtin_document
from planner.inputs.files import load_input

# Share of a node's CPU and memory that pods may request (kubelet system and kube reservations
# typically keep about 5% back). A pool may give `allocatable` explicitly instead.
ALLOCATABLE_FRACTION = 0.95

_POOL_FIELDS = frozenset(
    {
        "name",
        "cloud",
        "instanceType",
        "region",
        "gpuProduct",
        "gpus",
        "memoryPerGpu",
        "nvlink",
        "cpu",
        "memory",
        "allocatable",
        "localDisk",
        "localDiskBandwidth",
        "price",
        "minNodes",
        "maxNodes",
        "existingNodes",
        "labels",
        "taints",
    }
)
_PRICE_FIELDS = frozenset({"perHour", "currency", "source", "asOf", "note"})
_REQUIRED = ("name", "gpuProduct", "gpus", "memoryPerGpu", "cpu", "memory", "price")


@dataclass(frozen=True, slots=True)
class Taint:
    """A node taint every node of the pool carries."""

    key: str
    value: str
    effect: str


@dataclass(frozen=True, slots=True)
class Price:
    """Price of one node per hour, where it was read and when."""

    per_hour: float
    currency: str
    source: str
    as_of: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class PoolType:
    """One node type that a pool is made of: a GPU node ``shape`` (the core's) and what the
    catalog adds, where it runs, its price and its node limits.

    ``cpu_milli`` and ``memory_bytes`` are what pods may request. ``labels`` are the labels
    every node of the pool carries: the instance type, the GPU Feature Discovery labels its
    shape implies, the pool's name, then the catalog's own.
    """

    name: str
    cloud: str
    instance_type: str
    region: str
    shape: NodeShape
    cpu_milli: int
    memory_bytes: int
    local_disk_bytes: int
    price: Price
    min_nodes: int = 0
    max_nodes: int | None = None
    existing_nodes: int = 0
    labels: tuple[tuple[str, str], ...] = ()
    taints: tuple[Taint, ...] = ()

    @property
    def gpu_product(self) -> str:
        """The GPU product as the catalog names it."""
        return self.shape.product

    @property
    def gpus(self) -> int:
        """GPUs per node."""
        return self.shape.gpus

    @property
    def vram_per_gpu(self) -> int:
        """VRAM of each GPU, in bytes."""
        return self.shape.vram_per_gpu

    @property
    def islands(self) -> tuple[tuple[int, ...], ...]:
        """The NVLink islands as GPU index tuples (one island of all GPUs for NVSwitch machines,
        single GPUs for PCIe-only ones)."""
        return self.shape.islands

    @property
    def largest_island(self) -> int:
        """GPUs in its largest NVLink island."""
        return self.shape.nvlink.largest

    @property
    def local_disk_bytes_per_s(self) -> float | None:
        """How fast weights load from the node's local disk, when the catalog says."""
        return self.shape.local_disk_bytes_per_s

    @property
    def cost_per_hour(self) -> float:
        """Price of one node per hour."""
        return self.price.per_hour

    @property
    def cost_per_gpu_hour(self) -> float:
        """Price of one of its GPUs per hour."""
        return self.price.per_hour / self.gpus

    def label(self, key: str) -> str | None:
        """Value of a node label every node of the pool carries."""
        for k, v in self.labels:
            if k == key:
                return v
        return None


@dataclass(frozen=True, slots=True)
class Catalog:
    """The pools the planner may use, and where they were read from."""

    pools: tuple[PoolType, ...]
    source: str

    def pool(self, name: str) -> PoolType:
        """The pool named ``name``."""
        for p in self.pools:
            if p.name == name:
                return p
        raise KeyError(name)


_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _price(f: Fields) -> Price | None:
    """The ``price`` object: per hour, currency, and the source and date it was read."""
    per_hour = f.number("perHour", None, minimum=0.0, exclusive_minimum=True, required=True)
    currency = f.text("currency", "USD")
    note = f.text("note", "")
    source = f.get("source")
    if not isinstance(source, str) or not source.strip():
        f.bad("source", "missing: say where the price comes from")
    as_of = f.get("asOf")
    as_of_text = as_of.isoformat() if isinstance(as_of, dt.date) else str(as_of or "")
    try:
        dt.date.fromisoformat(as_of_text[:10])
    except ValueError:
        f.bad("asOf", f"expected a date such as 2026-11-09, got {as_of!r}")
        return None
    if per_hour is None or not isinstance(source, str) or not source.strip():
        return None
    return Price(per_hour, currency, source, as_of_text, note)


def _taints(f: Fields) -> tuple[Taint, ...]:
    taints: list[Taint] = []
    for t in f.children("taints"):
        key = t.text("key", None, required=True)
        effect = t.choice("effect", _TAINT_EFFECTS, "", required=True)
        if key is not None and effect:
            taints.append(Taint(key, str(t.get("value") or ""), effect))
    return tuple(taints)


def _allocatable(f: Fields, cpu_milli: int | None, memory: int | None) -> tuple[int, int]:
    """What pods may request: ``allocatable`` where given, else ``ALLOCATABLE_FRACTION``."""
    alloc = f.child("allocatable")
    cpu = math.floor((cpu_milli or 0) * ALLOCATABLE_FRACTION)
    mem = math.floor((memory or 0) * ALLOCATABLE_FRACTION)
    return alloc.milli("cpu", cpu), alloc.size("memory", mem)


def _labels(name: str, instance: str, shape: NodeShape, own: dict[str, str]) -> dict[str, str]:
    """The labels every node of a pool carries; the catalog's own win."""
    labels = {"node.kubernetes.io/instance-type": instance, **shape.gfd_labels()}
    labels["vramfit.io/pool"] = name
    labels.update(own)
    return labels


def _pool(f: Fields) -> PoolType | None:
    """One pool entry; ``None`` (with its problems recorded) when it is not usable."""
    before = len(f.problems)
    name = f.text("name", None, required=True)
    product = f.text("gpuProduct", None, required=True)
    gpus = f.integer("gpus", None, minimum=1, required=True)
    vram = f.size("memoryPerGpu", None, required=True)
    cpu = f.milli("cpu", None, required=True)
    memory = f.size("memory", None, required=True)
    disk = f.size("localDisk", 0)
    disk_bw = f.rate("localDiskBandwidth", None)
    min_nodes = f.integer("minNodes", 0)
    max_nodes = f.integer("maxNodes", None)
    existing = f.integer("existingNodes", 0)
    if max_nodes is not None and max_nodes < min_nodes:
        f.bad("maxNodes", f"{max_nodes} is below minNodes {min_nodes}")
    nvlink = read_nvlink(f, "nvlink", gpus or 1, NvLink.none(gpus or 1))
    price = _price(f.child("price", _PRICE_FIELDS, required=True))
    own_labels = f.string_map("labels")
    taints = _taints(f)
    cpu_alloc, mem_alloc = _allocatable(f, cpu, memory)
    cloud, region = f.text("cloud", ""), f.text("region", "")
    instance = f.text("instanceType", name or "")
    if len(f.problems) > before:
        return None
    assert name is not None and product is not None and gpus is not None and vram is not None
    assert price is not None
    shape = NodeShape(product, gpus, vram, nvlink, local_disk_bytes_per_s=disk_bw)
    return PoolType(
        name=name,
        cloud=cloud,
        instance_type=instance,
        region=region,
        shape=shape,
        cpu_milli=cpu_alloc,
        memory_bytes=mem_alloc,
        local_disk_bytes=disk,
        price=price,
        min_nodes=min_nodes,
        max_nodes=max_nodes,
        existing_nodes=existing,
        labels=tuple(sorted(_labels(name, instance, shape, own_labels).items())),
        taints=taints,
    )


def parse_catalog(raw: Any, where: str) -> Catalog:
    """Validate a raw catalog; raises ``InputError`` (its source ``where``) listing every
    problem. Pure."""
    f = Fields(raw, "", known=("version", "pools"))
    entries = f.items("pools")
    if not entries and not f.problems:
        f.bad("pools", "missing or empty: list at least one pool")
    pools: list[PoolType] = []
    names: set[str] = set()
    for i, entry in enumerate(entries):
        label = entry.get("name", i) if isinstance(entry, Mapping) else i
        p = _pool(Fields(entry, f"pools[{label}]", f.problems, _POOL_FIELDS))
        if p is None:
            continue
        if p.name in names:
            f.bad(f"pools[{label}].name", "duplicate pool name")
            continue
        names.add(p.name)
        pools.append(p)
    f.raise_if_problems(where)
    return Catalog(tuple(pools), where)


def keep_existing(catalog: Catalog) -> Catalog:
    """The catalog with each pool's existing nodes kept: ``minNodes`` raised to
    ``existingNodes`` (pure). A plan over it grows pools but never shrinks one."""

    def kept(p: PoolType) -> PoolType:
        existing = p.existing_nodes if p.max_nodes is None else min(p.existing_nodes, p.max_nodes)
        return dataclasses.replace(p, min_nodes=max(p.min_nodes, existing))

    return dataclasses.replace(catalog, pools=tuple(kept(p) for p in catalog.pools))


def load_catalog(path: Path | None = None) -> Catalog:
    """Read a catalog file, or the shipped default when ``path`` is ``None``; raises
    ``InputError`` (a ``DocumentError`` when the file cannot be read)."""
    if path is None:
        where = "built-in pool catalog"
        return parse_catalog(builtin_document("pools.yaml", where), where)
    return parse_catalog(load_input(path, "pool catalog"), str(path))
