"""Scenario documents: a raw YAML scenario validated and read into ``Scenario`` (pure).

A scenario is a YAML document (a file, or one of the built-ins ``scenario_files`` ships) read
into the frozen dataclasses of ``scenario``. Every field is validated at once and every problem
names its path, such as ``services[2].traffic.rate: expected a number > 0.0, got -1``. Times are durations (``90s``,
``15m``, ``2h``), sizes are Kubernetes quantities (``131Gi``), bandwidths are bytes per second
as quantities (``2Gi``). The shape::

    name: morning-burst            # default: the file name
    description: ...
    seed: 7                        # default seed (the CLI's --seed wins)
    duration: 30m                  # required
    settings: {...}                # see Settings and SETTINGS_KEYS (agentInterval, ...)
    pools:                         # node names are <pool>-<index>
      - name: a100-80
        type: a100-80gb-8          # built-in node type; or give product, gpus,
        nodes: 3                   #   memoryPerGpu and pricePerHour; any field overrides:
        # product, gpus, memoryPerGpu, nvlink, cpu, memory, localDiskBandwidth,
        # remoteBandwidth, reservedPerGpu, pricePerHour
        nvlink: all                # all | none | {islands: [[0,1],[2,3]]} (a GPU not listed
                                   #   is joined to no other; each GPU at most once)
        cachedModels: [{model: org/name, nodes: 1}]   # nodes: how many hold it (default all)
    outOfBand: [{node: a100-80-1, gpu: 3, memory: 22Gi}]   # memory used outside Kubernetes
    services:
      - name: chat
        count: 1                   # > 1: chat-0, chat-1, ... each with its own traffic
        model: meta-llama/Llama-3.1-70B-Instruct
        modelSize: 131Gi           # bytes of weights
        gpus: 2                    # per pod (tensor parallel)
        podsPerReplica: 1          # > 1: a multi-node replica (LeaderWorkerSet group) of this
                                   #   many pods, each with gpus GPUs and its shard of the model
        vramPerGpu: 80Gi           # default modelSize / (gpus x podsPerReplica) x (1 + kvHeadroom)
        kvHeadroom: 0.2
        nvlink: preferred          # required | preferred | none
        gpuProduct: [NVIDIA-A100-SXM4-80GB]   # node selector and vramfit.io/gpu-product
        policy: spread             # vramfit.io/policy annotation
        priority: 0                # PriorityClass value: may evict pods of lower priority
        initTime: 30s              # after the weights are in: KV cache, warm-up, Ready
        minReplicas: 0
        maxReplicas: 4
        scaleToZeroAfter: 5m
        capacity: 1                # requests per second one replica serves
        cpu: 16                    # requests (default 8 cores and 64Gi per GPU)
        memory: 128Gi
        traffic:                   # requests per second over time
          pattern: burst           # burst | onoff | diurnal | constant
          rate: 3
          start: [0s, 60s]         # burst: when (a window draws uniformly), duration
          duration: 25m
          # onoff: onMean, offMean; diurnal: trough, period (24h), peakAt (14h)
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from placement.fields import Fields, InputError, Problem
from placement.fit import product_key
from placement.model import NvlinkMode
from placement.policies import PROFILES
from placement.shape import NodeShape, NvLink, read_nvlink
from simulator.catalog import (
    BUILTIN_TYPES,
    DEFAULT_CPU_PER_GPU,
    DEFAULT_DISK_BYTES_PER_S,
    DEFAULT_MEMORY_PER_GPU,
    DEFAULT_REMOTE_BYTES_PER_S,
    NodeType,
)
from simulator.scenario import PATTERNS, OutOfBand, Pool, Scenario, Service, Traffic
from simulator.settings import SETTINGS_KEYS, Settings, read_settings

_TRAFFIC_DEFAULTS = Traffic("constant", 0.0)
"""Traffic with every optional field at its default."""
_SERVICE_DEFAULTS = Service("", "", 0, 1, 0, _TRAFFIC_DEFAULTS)
"""A one-GPU service with every optional field at its default (CPU and memory are per GPU)."""

_TOP = (
    "name",
    "description",
    "seed",
    "duration",
    "settings",
    "pools",
    "outOfBand",
    "services",
)
_POOL = (
    "name",
    "type",
    "nodes",
    "product",
    "gpus",
    "memoryPerGpu",
    "nvlink",
    "cpu",
    "memory",
    "localDiskBandwidth",
    "remoteBandwidth",
    "reservedPerGpu",
    "pricePerHour",
    "cachedModels",
)
_SERVICE = (
    "name",
    "count",
    "model",
    "modelSize",
    "gpus",
    "podsPerReplica",
    "vramPerGpu",
    "kvHeadroom",
    "nvlink",
    "gpuProduct",
    "initTime",
    "minReplicas",
    "maxReplicas",
    "scaleToZeroAfter",
    "capacity",
    "cpu",
    "memory",
    "policy",
    "priority",
    "traffic",
)
_TRAFFIC = (
    "pattern",
    "rate",
    "trough",
    "start",
    "duration",
    "onMean",
    "offMean",
    "period",
    "peakAt",
)


def _base_type(f: Fields) -> tuple[str, NodeType | None]:
    """The pool's ``type``: its name and the built-in type it names (``None``: a type of its
    own, which must then give what a built-in type would)."""
    type_name = f.text("type")
    if type_name:
        base = BUILTIN_TYPES.get(type_name)
        if base is None:
            f.bad("type", f"unknown node type {type_name!r}; known: {', '.join(BUILTIN_TYPES)}")
        return type_name, base
    if not all(f.has(k) for k in ("product", "gpus", "memoryPerGpu", "pricePerHour")):
        f.bad(
            "type",
            "missing: name a built-in node type, or give product, gpus, memoryPerGpu and "
            f"pricePerHour (built-in types: {', '.join(BUILTIN_TYPES)})",
        )
    return "", None


def _node_type(f: Fields, name: str, base: NodeType | None) -> NodeType:
    """A pool's node type: the built-in ``base`` with the fields the pool sets, or the pool's
    own. A different GPU count scales CPU, memory and price; NVLink, unsaid, is the base's
    when the count is the same, else every GPU joined."""
    gpus = f.integer("gpus", base.shape.gpus if base else 1, minimum=1, maximum=64)
    vram = f.size("memoryPerGpu", base.shape.vram_per_gpu if base else 0, positive=True)
    scale = gpus / base.shape.gpus if base else 1.0
    disk, remote = (
        base.bandwidths if base else (DEFAULT_DISK_BYTES_PER_S, DEFAULT_REMOTE_BYTES_PER_S)
    )
    product = f.text("product", base.shape.product if base else "")
    same_count = base is not None and base.shape.gpus == gpus
    nvlink = read_nvlink(
        f, "nvlink", gpus, base.shape.nvlink if base and same_count else NvLink.all(gpus)
    )
    return NodeType(
        name=name,
        cpu_milli=f.milli(
            "cpu", int(base.cpu_milli * scale) if base else gpus * DEFAULT_CPU_PER_GPU
        ),
        memory_bytes=f.size(
            "memory", int(base.memory_bytes * scale) if base else gpus * DEFAULT_MEMORY_PER_GPU
        ),
        shape=NodeShape(
            product=product,
            gpus=gpus,
            vram_per_gpu=vram,
            nvlink=nvlink,
            local_disk_bytes_per_s=f.rate("localDiskBandwidth", disk),
            remote_bytes_per_s=f.rate("remoteBandwidth", remote),
        ),
        reserved_per_gpu=f.size("reservedPerGpu", base.reserved_per_gpu if base else 0),
        price_per_hour=f.number("pricePerHour", base.price_per_hour * scale if base else 0.0),
    )


def _pool(raw: object, path: str, problems: list[Problem]) -> Pool | None:
    f = Fields(raw, path, problems, _POOL)
    name = f.text("name", required=True)
    type_name, base = _base_type(f)
    nodes = f.integer("nodes", 0, required=True)
    node_type = _node_type(f, type_name or name, base)
    if node_type.reserved_per_gpu >= node_type.shape.vram_per_gpu > 0:
        f.bad("reservedPerGpu", "must be below memoryPerGpu")
    cached: list[tuple[str, int | None]] = []
    for j, entry in enumerate(f.items("cachedModels")):
        c = Fields(entry, f"{path}.cachedModels[{j}]", problems, ("model", "nodes"))
        model = c.text("model", required=True)
        count = c.integer("nodes", -1) if c.has("nodes") else -1
        if count > nodes:
            c.bad("nodes", f"the pool has only {nodes} nodes")
        if model:
            cached.append((model, None if count < 0 else count))
    if not name:
        return None
    return Pool(name, node_type, nodes, tuple(cached))


def _start(f: Fields) -> tuple[float, float]:
    """A burst's ``start``: one time, or a window ``[from, to]`` to draw it from."""
    if not f.has("start"):
        return (0.0, 0.0)
    raw = f.get("start")
    if not isinstance(raw, list):
        t = f.duration("start", 0.0)
        return (t, t)
    if len(raw) != 2:
        f.bad("start", f"expected a duration or a window [from, to], got {raw!r}")
        return (0.0, 0.0)
    w = Fields({"from": raw[0], "to": raw[1]}, f.where("start"), f.problems, ("from", "to"))
    lo, hi = w.duration("from", 0.0), w.duration("to", 0.0)
    if hi < lo:
        f.bad("start", f"window ends before it starts: {raw!r}")
        return (0.0, 0.0)
    return (lo, hi)


_PATTERN_FIELDS = {
    "burst": {"start", "duration"},
    "onoff": {"onMean", "offMean"},
    "diurnal": {"trough", "period", "peakAt"},
    "constant": set(),
}
"""The fields each traffic pattern reads (besides ``rate``)."""


def _traffic(f: Fields, duration: float) -> Traffic:
    pattern = f.choice("pattern", PATTERNS, "")
    if not pattern:
        if not f.has("pattern"):
            f.bad("pattern", f"missing (required): one of {', '.join(PATTERNS)}")
        return Traffic("constant", 0.0)
    rate = f.number("rate", 1.0, exclusive_minimum=True, required=True)
    start = _start(f)
    if start[0] >= duration > 0:
        f.bad("start", "starts after the scenario ends")
    traffic = Traffic(
        pattern=pattern,
        rate=rate,
        trough=f.number("trough", _TRAFFIC_DEFAULTS.trough),
        start=start,
        duration_s=f.duration("duration", 0.0, positive=True) if f.has("duration") else None,
        on_mean_s=f.duration("onMean", _TRAFFIC_DEFAULTS.on_mean_s, positive=True),
        off_mean_s=f.duration("offMean", _TRAFFIC_DEFAULTS.off_mean_s, positive=True),
        period_s=f.duration("period", _TRAFFIC_DEFAULTS.period_s, positive=True),
        peak_at_s=f.duration("peakAt", _TRAFFIC_DEFAULTS.peak_at_s),
    )
    for key in ("trough", "start", "duration", "onMean", "offMean", "period", "peakAt"):
        if f.has(key) and key not in _PATTERN_FIELDS[pattern]:
            f.bad(key, f"does not apply to pattern {pattern!r}")
    if pattern == "diurnal" and traffic.trough > rate:
        f.bad("trough", f"must not exceed rate (the peak), {rate}")
    return traffic


def _services(
    raw: object, path: str, problems: list[Problem], settings: Settings, duration: float
) -> list[Service]:
    f = Fields(raw, path, problems, _SERVICE)
    name = f.text("name", required=True)
    count = f.integer("count", 1, minimum=1, maximum=100_000)
    model = f.text("model", required=True)
    size = f.size("modelSize", 0, positive=True, required=True)
    gpus = f.integer("gpus", 1, minimum=1, maximum=64)
    pods = f.integer("podsPerReplica", 1, minimum=1, maximum=64)
    shards = gpus * pods
    headroom = f.number("kvHeadroom", settings.kv_headroom, maximum=10.0)
    default_vram = math.ceil(size / shards * (1.0 + headroom)) if size else 0
    vram = f.size("vramPerGpu", default_vram, positive=True)
    if size and vram < math.ceil(size / shards):
        f.bad(
            "vramPerGpu",
            "is below the model's weights per GPU (modelSize / (gpus x podsPerReplica))",
        )
    nvlink_raw = f.choice("nvlink", ("required", "preferred", "none"), "preferred")
    policy = f.text("policy")
    if policy and policy not in PROFILES:
        f.bad("policy", f"unknown placement policy {policy!r}; known: {', '.join(PROFILES)}")
    min_r = f.integer("minReplicas", _SERVICE_DEFAULTS.min_replicas)
    max_r = f.integer("maxReplicas", max(1, min_r, _SERVICE_DEFAULTS.max_replicas), minimum=1)
    if min_r > max_r:
        f.bad("minReplicas", f"{min_r} is above maxReplicas {max_r}")
    traffic = _traffic(f.child("traffic", _TRAFFIC, required=True), duration)
    base = Service(
        name=name or "<unnamed>",
        model_id=model,
        model_bytes=size,
        gpus=gpus,
        vram_per_gpu=vram,
        traffic=traffic,
        nvlink=NvlinkMode(nvlink_raw),
        products=f.strings("gpuProduct"),
        init_s=f.duration("initTime", _SERVICE_DEFAULTS.init_s),
        min_replicas=min_r,
        max_replicas=max_r,
        scale_to_zero_after_s=f.duration(
            "scaleToZeroAfter", settings.scale_to_zero_after_s, positive=True
        ),
        capacity=f.number("capacity", _SERVICE_DEFAULTS.capacity, exclusive_minimum=True),
        cpu_milli=f.milli("cpu", _SERVICE_DEFAULTS.cpu_milli * gpus),
        memory_bytes=f.size("memory", _SERVICE_DEFAULTS.memory_bytes * gpus),
        policy=policy,
        pods_per_replica=pods,
        priority=f.integer("priority", 0, minimum=-(2**31), maximum=10**9),
    )
    if count == 1:
        return [base]
    width = len(str(count - 1))
    return [dataclasses.replace(base, name=f"{base.name}-{i:0{width}d}") for i in range(count)]


def parse_scenario(raw: object, source: str) -> Scenario:
    """Validate a raw scenario document (pure); raises ``InputError`` listing every problem."""
    problems: list[Problem] = []
    f = Fields(raw, "", problems, _TOP)
    name = f.text("name", default=Path(source).stem)
    description = f.text("description")
    duration = f.duration("duration", 3600.0, positive=True, required=True)
    settings = read_settings(f.child("settings", SETTINGS_KEYS))
    pools = _pools(f)
    services = _all_services(f, pools, settings, duration)
    oob = _out_of_band(f, pools)
    sizes = {s.model_id: s.model_bytes for s in services}
    _check_cached(pools, sizes, problems)
    seed = f.integer("seed", 1)
    if problems:
        raise InputError(source, problems)
    return Scenario(
        name=name,
        description=description,
        duration_s=duration,
        seed=seed,
        settings=settings,
        pools=tuple(pools),
        services=tuple(services),
        out_of_band=tuple(oob),
        model_sizes=tuple(sorted(sizes.items())),
    )


def _pools(f: Fields) -> list[Pool]:
    """The ``pools`` list: at least one, each name once."""
    problems = f.problems
    pools: list[Pool] = []
    for i, entry in enumerate(f.items("pools", required=True)):
        p = _pool(entry, f"pools[{i}]", problems)
        if p is not None:
            if any(q.name == p.name for q in pools):
                problems.append(Problem(f"pools[{i}].name", f"{p.name!r} repeats an earlier pool"))
            pools.append(p)
    if f.has("pools") and not pools and not any(p.where.startswith("pools") for p in problems):
        f.bad("pools", "lists no pool")
    return pools


def _all_services(
    f: Fields, pools: list[Pool], settings: Settings, duration: float
) -> list[Service]:
    """The ``services`` list, counts expanded: each name once, each placeable on some pool."""
    problems = f.problems
    services: list[Service] = []
    for i, entry in enumerate(f.items("services", required=True)):
        for s in _services(entry, f"services[{i}]", problems, settings, duration):
            if any(t.name == s.name for t in services):
                problems.append(
                    Problem(f"services[{i}].name", f"{s.name!r} repeats an earlier service")
                )
            services.append(s)
            _check_service(s, pools, f"services[{i}]", problems)
    return services


def _out_of_band(f: Fields, pools: list[Pool]) -> list[OutOfBand]:
    """The ``outOfBand`` list: memory on a GPU of a node of the pools, within what it holds."""
    node_names = {n: p for p in pools for n in p.node_names()}
    oob: list[OutOfBand] = []
    for o in f.children("outOfBand", ("node", "gpu", "memory")):
        node = o.text("node", required=True)
        gpu = o.integer("gpu", 0, required=True)
        size = o.size("memory", 0, positive=True, required=True)
        pool = node_names.get(node)
        if node and pool is None:
            o.bad("node", f"no node {node!r} in the pools (names are <pool>-<index>)")
        elif pool is not None:
            shape = pool.node_type.shape
            if gpu >= shape.gpus:
                o.bad("gpu", f"node {node} has GPUs 0..{shape.gpus - 1}")
            elif size + pool.node_type.reserved_per_gpu > shape.vram_per_gpu:
                o.bad("memory", "is more than the GPU holds")
        oob.append(OutOfBand(node, gpu, size))
    return oob


def _check_cached(pools: list[Pool], sizes: dict[str, int], problems: list[Problem]) -> None:
    """A cached model must be one a service serves: its size comes from the service."""
    for i, p in enumerate(pools):
        for model, _ in p.cached:
            if model not in sizes:
                problems.append(
                    Problem(
                        f"pools[{i}].cachedModels",
                        f"model {model!r} is served by no service, so its size is unknown",
                    )
                )


def _check_service(s: Service, pools: list[Pool], path: str, problems: list[Problem]) -> None:
    """Mistakes that would leave a service pending for a reason no policy can change."""
    if not pools:
        return
    if s.products:
        wanted = {product_key(p) for p in s.products}
        matching = [p for p in pools if product_key(p.node_type.shape.product) in wanted]
        if not matching:
            have = sorted({p.node_type.shape.product for p in pools})
            problems.append(
                Problem(
                    f"{path}.gpuProduct",
                    f"{', '.join(s.products)} matches no pool (pools have {', '.join(have)})",
                )
            )
            return
    else:
        matching = pools
    largest = max(p.node_type.shape.gpus for p in matching)
    if s.gpus > largest:
        problems.append(Problem(f"{path}.gpus", f"{s.gpus} is more than any node has ({largest})"))
