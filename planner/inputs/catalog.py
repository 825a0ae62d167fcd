"""The node-pool catalog: which GPU node types can be bought, their shape and their price.

A catalog is YAML (one entry per pool: GPU product, GPUs per node, VRAM per GPU, NVLink, CPU,
memory, local disk, price per hour with its source and date, optional min/max/existing nodes,
labels and taints). The shipped default lists common AWS, GCP and Azure GPU instances. Parsing is
pure and reports every problem at once; ``load_catalog`` is the thin file-reading shell.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from placement.quantity import QuantityError, parse_bytes, parse_milli
from planner.diagnostics import InputError, Problem

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
    """One node type that a pool is made of.

    ``islands`` are the NVLink islands as GPU index tuples (one island of all GPUs for NVSwitch
    machines, single GPUs for PCIe-only ones). ``cpu_milli`` and ``memory_bytes`` are what pods
    may request.
    """

    name: str
    cloud: str
    instance_type: str
    region: str
    gpu_product: str
    gpus: int
    vram_per_gpu: int
    nvlink: str
    islands: tuple[tuple[int, ...], ...]
    cpu_milli: int
    memory_bytes: int
    local_disk_bytes: int
    local_disk_bytes_per_s: float | None
    price: Price
    min_nodes: int = 0
    max_nodes: int | None = None
    existing_nodes: int = 0
    labels: tuple[tuple[str, str], ...] = ()
    taints: tuple[Taint, ...] = ()

    @property
    def cost_per_hour(self) -> float:
        """Price of one node per hour."""
        return self.price.per_hour

    @property
    def cost_per_gpu_hour(self) -> float:
        """Price of one of its GPUs per hour."""
        return self.price.per_hour / self.gpus

    @property
    def largest_island(self) -> int:
        """GPUs in its largest NVLink island."""
        return max((len(i) for i in self.islands), default=1)

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


class _Reader:
    """Collects problems while reading one pool entry."""

    def __init__(self, where: str, problems: list[Problem]) -> None:
        self.where = where
        self.problems = problems

    def bad(self, key: str, message: str) -> None:
        self.problems.append(Problem(f"{self.where}.{key}", message))

    def int_(
        self, raw: Mapping[str, Any], key: str, minimum: int, default: int | None = None
    ) -> int | None:
        v = raw.get(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            self.bad(key, f"expected an integer of at least {minimum}, got {v!r}")
            return None
        return int(v)

    def bytes_(self, raw: Mapping[str, Any], key: str) -> int | None:
        if key not in raw:
            return None
        try:
            return parse_bytes(raw[key], key)
        except QuantityError as exc:
            self.bad(key, exc.detail)
            return None

    def cpu(self, value: object, key: str) -> int | None:
        try:
            milli = parse_milli(value, key)
        except QuantityError as exc:
            self.bad(key, f"{value!r} is not a valid CPU quantity ({exc.why})")
            return None
        if milli <= 0:
            self.bad(key, f"{value!r} must be positive")
            return None
        return milli


def _islands(reader: _Reader, raw: object, gpus: int) -> tuple[str, tuple[tuple[int, ...], ...]]:
    if raw is None or raw == "none" or raw is False:
        return "none", tuple((i,) for i in range(gpus))
    if raw == "all" or raw is True:
        return "all", (tuple(range(gpus)),)
    if isinstance(raw, Mapping) and set(raw) == {"islands"} and isinstance(raw["islands"], list):
        seen: set[int] = set()
        out: list[tuple[int, ...]] = []
        for isl in raw["islands"]:
            if not isinstance(isl, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) and 0 <= i < gpus for i in isl
            ):
                reader.bad("nvlink.islands", f"each island must list GPU indices 0..{gpus - 1}")
                return "none", ()
            if seen & set(isl):
                reader.bad("nvlink.islands", "a GPU appears in two islands")
                return "none", ()
            seen |= set(isl)
            out.append(tuple(sorted(isl)))
        out.extend((i,) for i in range(gpus) if i not in seen)
        return "islands", tuple(sorted(out))
    reader.bad("nvlink", f"{raw!r} is not all, none or {{islands: [[0,1],...]}}")
    return "none", ()


def _pool(raw: Any, where: str, problems: list[Problem]) -> PoolType | None:
    r = _Reader(where, problems)
    if not isinstance(raw, Mapping):
        problems.append(Problem(where, "expected an object"))
        return None
    before = len(problems)
    for k in raw:
        if k not in _POOL_FIELDS:
            r.bad(str(k), "unknown field")
    missing = [k for k in _REQUIRED if k not in raw]
    for k in missing:
        r.bad(k, "missing")
    if missing:
        return None
    name = str(raw["name"])
    gpus = r.int_(raw, "gpus", 1)
    vram = r.bytes_(raw, "memoryPerGpu")
    cpu = r.cpu(raw["cpu"], "cpu")
    memory = r.bytes_(raw, "memory")
    disk = r.bytes_(raw, "localDisk") or 0
    disk_bw = r.bytes_(raw, "localDiskBandwidth")
    min_nodes = r.int_(raw, "minNodes", 0, 0)
    max_nodes = r.int_(raw, "maxNodes", 0)
    existing = r.int_(raw, "existingNodes", 0, 0)
    if min_nodes is not None and max_nodes is not None and max_nodes < min_nodes:
        r.bad("maxNodes", f"{max_nodes} is below minNodes {min_nodes}")
    nvlink, islands = _islands(r, raw.get("nvlink"), gpus or 1)
    price_raw = raw["price"]
    price: Price | None = None
    if not isinstance(price_raw, Mapping):
        r.bad("price", "expected an object with perHour, currency, source, asOf")
    else:
        for k in price_raw:
            if k not in _PRICE_FIELDS:
                r.bad(f"price.{k}", "unknown field")
        per_hour = price_raw.get("perHour")
        if isinstance(per_hour, bool) or not isinstance(per_hour, int | float) or per_hour <= 0:
            r.bad("price.perHour", f"expected a positive number, got {per_hour!r}")
        source = price_raw.get("source")
        if not isinstance(source, str) or not source.strip():
            r.bad("price.source", "missing: say where the price comes from")
        as_of = price_raw.get("asOf")
        as_of_text = as_of.isoformat() if isinstance(as_of, dt.date) else str(as_of or "")
        try:
            dt.date.fromisoformat(as_of_text[:10])
        except ValueError:
            r.bad("price.asOf", f"expected a date such as 2026-11-09, got {as_of!r}")
        if isinstance(per_hour, int | float) and source and as_of_text:
            price = Price(
                float(per_hour),
                str(price_raw.get("currency", "USD")),
                str(source),
                as_of_text,
                str(price_raw.get("note", "")),
            )
    labels_raw = raw.get("labels") or {}
    if not isinstance(labels_raw, Mapping):
        r.bad("labels", "expected a mapping of label to value")
        labels_raw = {}
    taints: list[Taint] = []
    taints_raw = raw.get("taints") or []
    if not isinstance(taints_raw, list):
        r.bad("taints", "expected a list")
        taints_raw = []
    for i, t in enumerate(taints_raw):
        if (
            not isinstance(t, Mapping)
            or "key" not in t
            or t.get("effect")
            not in (
                "NoSchedule",
                "PreferNoSchedule",
                "NoExecute",
            )
        ):
            r.bad(
                f"taints[{i}]",
                "expected {key, value, effect: NoSchedule|PreferNoSchedule|NoExecute}",
            )
            continue
        taints.append(Taint(str(t["key"]), str(t.get("value", "")), str(t["effect"])))
    alloc = raw.get("allocatable")
    if alloc is not None and not isinstance(alloc, Mapping):
        r.bad("allocatable", "expected {cpu, memory}")
        alloc = None
    if len(problems) > before:
        return None
    assert gpus is not None and vram is not None and cpu is not None and memory is not None
    assert price is not None
    cpu_alloc = math.floor(cpu * ALLOCATABLE_FRACTION)
    mem_alloc = math.floor(memory * ALLOCATABLE_FRACTION)
    if alloc is not None:
        if "cpu" in alloc:
            cpu_alloc = r.cpu(alloc["cpu"], "allocatable.cpu") or cpu_alloc
        if "memory" in alloc:
            mem_alloc = r.bytes_(alloc, "memory") or mem_alloc
    instance = str(raw.get("instanceType", name))
    mib = 1024**2
    derived = {
        "node.kubernetes.io/instance-type": instance,
        "nvidia.com/gpu.product": str(raw["gpuProduct"]),
        "nvidia.com/gpu.count": str(gpus),
        "nvidia.com/gpu.memory": str(vram // mib),
        "vramfit.io/pool": name,
    }
    derived.update({str(k): str(v) for k, v in labels_raw.items()})
    return PoolType(
        name=name,
        cloud=str(raw.get("cloud", "")),
        instance_type=instance,
        region=str(raw.get("region", "")),
        gpu_product=str(raw["gpuProduct"]),
        gpus=gpus,
        vram_per_gpu=vram,
        nvlink=nvlink,
        islands=islands,
        cpu_milli=cpu_alloc,
        memory_bytes=mem_alloc,
        local_disk_bytes=disk,
        local_disk_bytes_per_s=float(disk_bw) if disk_bw else None,
        price=price,
        min_nodes=min_nodes or 0,
        max_nodes=max_nodes,
        existing_nodes=existing or 0,
        labels=tuple(sorted(derived.items())),
        taints=tuple(taints),
    )


def parse_catalog(raw: Any, where: str) -> Catalog:
    """Validate a raw catalog; raises ``InputError`` listing every problem. Pure."""
    if not isinstance(raw, Mapping):
        raise InputError([Problem(where, "expected a mapping with a 'pools' list")])
    problems: list[Problem] = []
    for k in raw:
        if k not in ("version", "pools"):
            problems.append(Problem(f"{where}: {k}", "unknown field"))
    entries = raw.get("pools")
    if not isinstance(entries, list) or not entries:
        problems.append(Problem(f"{where}: pools", "missing or empty: list at least one pool"))
        raise InputError(problems)
    pools: list[PoolType] = []
    names: set[str] = set()
    for i, entry in enumerate(entries):
        label = entry.get("name", i) if isinstance(entry, Mapping) else i
        p = _pool(entry, f"{where}: pools[{label}]", problems)
        if p is None:
            continue
        if p.name in names:
            problems.append(Problem(f"{where}: pools[{label}].name", "duplicate pool name"))
            continue
        names.add(p.name)
        pools.append(p)
    if problems:
        raise InputError(problems)
    return Catalog(tuple(pools), where)


def keep_existing(catalog: Catalog) -> Catalog:
    """The catalog with each pool's existing nodes kept: ``minNodes`` raised to
    ``existingNodes`` (pure). A plan over it grows pools but never shrinks one."""

    def kept(p: PoolType) -> PoolType:
        existing = p.existing_nodes if p.max_nodes is None else min(p.existing_nodes, p.max_nodes)
        return dataclasses.replace(p, min_nodes=max(p.min_nodes, existing))

    return dataclasses.replace(catalog, pools=tuple(kept(p) for p in catalog.pools))


def load_catalog(path: Path | None = None) -> Catalog:
    """Read a catalog file, or the shipped default when ``path`` is ``None``."""
    if path is None:
        text = resources.files("planner.data").joinpath("pools.yaml").read_text()
        where = "built-in pool catalog"
    else:
        where = str(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise InputError([Problem(where, "catalog file not found")]) from None
        except OSError as exc:
            raise InputError([Problem(where, f"cannot read catalog ({exc.strerror})")]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError([Problem(where, f"not valid YAML ({exc})")]) from None
    return parse_catalog(raw, where)
