"""The NodeGPUState codec: the wire shape the node agent writes and the extender reads.

One cluster-scoped ``NodeGPUState`` object (group ``vramfit.io``) per node carries a report of
the node's GPUs in its ``status``. Both directions live here, pure, so the agent and the
extender cannot drift apart: ``encode_status`` turns a ``NodeState`` into that status, and
``decode_status`` turns it back with the core's field reader (``placement.fields``), reporting
every malformed field by its path at once (``ReportError``, an ``InputError``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

from placement.fields import Fields, InputError, Problem, quote
from placement.model import CachedModel, GpuState, MigDevice, NodeState, PodMemory

GROUP = "vramfit.io"
VERSION = "v1alpha1"
KIND = "NodeGPUState"
PLURAL = "nodegpustates"
LEASE_PREFIX = "vramfit-agent-"

MAX_REPORT_BYTES = 2**53
"""The largest byte count a report may carry: exact in a JSON number (IEEE double) anywhere."""


class MemoryJSON(TypedDict):
    totalBytes: int
    freeBytes: NotRequired[int | None]
    usedBytes: NotRequired[int | None]
    reservedBytes: NotRequired[int | None]


class PodMemoryJSON(TypedDict):
    podUID: str
    bytes: int


class MigDeviceJSON(TypedDict):
    uuid: str
    gpuInstanceId: NotRequired[int | None]
    computeInstanceId: NotRequired[int | None]
    memory: NotRequired[MemoryJSON]


class GpuJSON(TypedDict):
    uuid: str
    index: int
    product: str
    memory: MemoryJSON
    healthy: bool
    unhealthyReason: NotRequired[str]
    migEnabled: NotRequired[bool]
    migDevices: NotRequired[list[MigDeviceJSON]]
    nvlinkPeers: NotRequired[list[str]]
    holderPodUID: NotRequired[str | None]
    pods: NotRequired[list[PodMemoryJSON]]
    pciBusId: NotRequired[str]
    numaNode: NotRequired[int | None]


class CachedModelJSON(TypedDict):
    modelId: str
    bytes: int
    path: NotRequired[str]


class BandwidthJSON(TypedDict, total=False):
    localDiskBytesPerSecond: float | None
    remoteBytesPerSecond: float | None


class StatusJSON(TypedDict):
    observedAt: str
    nvmlAvailable: bool
    error: NotRequired[str]
    driverVersion: NotRequired[str]
    gpus: list[GpuJSON]
    cachedModels: NotRequired[list[CachedModelJSON]]
    bandwidth: NotRequired[BandwidthJSON]


class ReportError(InputError):
    """A NodeGPUState status that does not match the schema: an ``InputError`` whose source is
    ``NodeGPUState <node>`` and whose ``problems`` name every bad field by its path."""

    def __init__(self, node: str, problems: Iterable[Problem]) -> None:
        super().__init__(f"NodeGPUState {node}", problems)


def format_time(ts: float) -> str:
    """Epoch seconds to RFC 3339 UTC with microseconds, as written in reports."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> float:
    """RFC 3339 (as Kubernetes writes it) to epoch seconds (pure).

    Raises ``ValueError`` for anything else, including a time without a UTC offset (which
    would otherwise be read in the local time zone of whoever reads it).
    """
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return parsed.timestamp()


def encode_status(node: NodeState, *, driver_version: str = "") -> StatusJSON:
    """The report for ``node`` (pure); ``decode_status`` gives the same node back.

    Node labels are not part of the report (they live on the Node object), and times keep
    microseconds.
    """
    gpus: list[GpuJSON] = []
    for g in node.gpus:
        gj: GpuJSON = {
            "uuid": g.uuid,
            "index": g.index,
            "product": g.product,
            "memory": {
                "totalBytes": g.total_bytes,
                "freeBytes": g.free_bytes,
                "usedBytes": g.used_bytes,
            },
            "healthy": g.healthy,
            "unhealthyReason": g.unhealthy_reason,
            "migEnabled": g.mig_enabled,
            "nvlinkPeers": sorted(g.nvlink_peers),
            "holderPodUID": g.holder_pod_uid,
            "pods": [{"podUID": p.pod_uid, "bytes": p.bytes} for p in g.pod_memory],
            "pciBusId": g.pci_bus_id,
            "numaNode": g.numa_node,
        }
        if g.mig_devices:
            gj["migDevices"] = [_encode_mig(m) for m in g.mig_devices]
        gpus.append(gj)
    status: StatusJSON = {
        "observedAt": format_time(node.observed_at),
        "nvmlAvailable": not node.agent_error,
        "gpus": gpus,
        "cachedModels": [{"modelId": m.model_id, "bytes": m.bytes} for m in node.cached_models],
        "bandwidth": {
            "localDiskBytesPerSecond": node.local_disk_bytes_per_s,
            "remoteBytesPerSecond": node.remote_bytes_per_s,
        },
    }
    if node.agent_error:
        status["error"] = node.agent_error
    if driver_version:
        status["driverVersion"] = driver_version
    return status


def _encode_mig(m: MigDevice) -> MigDeviceJSON:
    mj: MigDeviceJSON = {
        "uuid": m.uuid,
        "gpuInstanceId": m.gpu_instance_id,
        "computeInstanceId": m.compute_instance_id,
    }
    if m.total_bytes is not None:
        mj["memory"] = {
            "totalBytes": m.total_bytes,
            "freeBytes": m.free_bytes,
            "usedBytes": m.used_bytes,
        }
    return mj


def _string(f: Fields, key: str, *, required: bool = False) -> str:
    """A string that may be empty (a product NVML did not name, a reason not given), kept as
    written; ``""`` when absent."""
    value = f.get(key)
    if value is None:
        if required:
            f.bad(key, "missing (required)")
        return ""
    if not isinstance(value, str):
        f.bad(key, f"expected a string, got {quote(value)}")
        return ""
    return value


def _uuid(f: Fields, seen: dict[str, int], at: int, first: str) -> str:
    """A required, non-empty UUID that no earlier entry (``first`` + ``[index]``) has."""
    uuid = _string(f, "uuid", required=True)
    if uuid in seen:
        f.bad("uuid", f"{quote(uuid)} repeats {first}[{seen[uuid]}]")
    elif uuid:
        seen[uuid] = at
    elif f.get("uuid") == "":
        f.bad("uuid", "must not be empty")
    return uuid


def _size(f: Fields, key: str, *, required: bool = False) -> int | None:
    """A byte count: a whole number in 0..MAX_REPORT_BYTES."""
    return f.integer(key, None, minimum=0, maximum=MAX_REPORT_BYTES, required=required)


def _entries(f: Fields, key: str, *, required: bool = False) -> list[tuple[int, Fields]]:
    """Each mapping in the list under ``key``, with its position; an entry that is not a
    mapping is a problem, and skipped."""
    out: list[tuple[int, Fields]] = []
    for i, raw in enumerate(f.items(key, required=required)):
        if isinstance(raw, Mapping):
            out.append((i, Fields(raw, f.where(f"{key}[{i}]"), f.problems, unknown="ignore")))
        else:
            f.bad(f"{key}[{i}]", f"expected a mapping, got {quote(raw)}")
    return out


def _memory(f: Fields) -> tuple[int | None, int | None, int | None]:
    """Total (required), free and used bytes of a ``memory`` mapping."""
    return (
        _size(f, "totalBytes", required=True),
        _size(f, "freeBytes"),
        _size(f, "usedBytes"),
    )


def _mig_devices(g: Fields) -> tuple[MigDevice, ...]:
    """A GPU's MIG devices; UUIDs must be present and must not repeat."""
    devices: list[MigDevice] = []
    seen: dict[str, int] = {}
    for j, m in _entries(g, "migDevices"):
        uuid = _uuid(m, seen, j, g.where("migDevices"))
        total = free = used = None
        memory = m.get("memory")
        if isinstance(memory, Mapping):
            total, free, used = _memory(m.child("memory"))
        elif memory is not None:
            m.bad("memory", f"expected a mapping, got {quote(memory)}")
        devices.append(
            MigDevice(
                uuid=uuid,
                gpu_instance_id=m.integer("gpuInstanceId", None),
                compute_instance_id=m.integer("computeInstanceId", None),
                total_bytes=total,
                free_bytes=free,
                used_bytes=used,
            )
        )
    return tuple(devices)


def _peers(g: Fields) -> frozenset[str]:
    """A GPU's NVLink peers: each a GPU UUID."""
    peers: list[str] = []
    for j, peer in enumerate(g.items("nvlinkPeers")):
        if isinstance(peer, str) and peer:
            peers.append(peer)
        else:
            g.bad(f"nvlinkPeers[{j}]", f"expected a GPU UUID, got {quote(peer)}")
    return frozenset(peers)


def _gpu(g: Fields, i: int, seen_uuid: dict[str, int], seen_index: dict[int, int]) -> GpuState:
    """The GPU at ``status.gpus[i]``; UUIDs and indices must not repeat an earlier GPU's."""
    uuid = _uuid(g, seen_uuid, i, "status.gpus")
    index = g.integer("index", i, minimum=None, required=True)
    if index < 0:
        g.bad("index", f"{index} must not be negative")
    elif index in seen_index:
        g.bad("index", f"{index} repeats status.gpus[{seen_index[index]}]")
    else:
        seen_index[index] = i
    total, free, used = _memory(g.child("memory", required=True))
    pods = tuple(
        PodMemory(_string(pm, "podUID", required=True), _size(pm, "bytes", required=True) or 0)
        for _, pm in _entries(g, "pods")
    )
    peers = _peers(g)
    return GpuState(
        uuid=uuid or f"<missing-{i}>",
        index=index,
        product=_string(g, "product", required=True),
        total_bytes=total or 0,
        free_bytes=free,
        used_bytes=used,
        healthy=g.flag("healthy", False, required=True),
        unhealthy_reason=_string(g, "unhealthyReason"),
        mig_enabled=g.flag("migEnabled", False),
        nvlink_peers=peers,
        holder_pod_uid=_string(g, "holderPodUID") or None,
        pod_memory=pods,
        pci_bus_id=_string(g, "pciBusId"),
        numa_node=g.integer("numaNode", None, minimum=None),
        mig_devices=_mig_devices(g),
    )


def _observed_at(f: Fields) -> float:
    """When the agent read the GPUs: an RFC 3339 time with an offset (0.0 when unreadable)."""
    text = f.text("observedAt", None, required=True)
    if text is None:
        return 0.0
    try:
        return parse_time(text)
    except ValueError:
        f.bad("observedAt", f"{quote(text)} is not an RFC 3339 time")
        return 0.0


def decode_status(
    node: str,
    status: Mapping[str, Any],
    *,
    lease_renewed_at: float | None,
    lease_duration_s: float = 40.0,
) -> NodeState:
    """Turn a report into a ``NodeState`` (pure); raises ``ReportError`` listing every bad field.

    Byte counts must be whole numbers in 0..``MAX_REPORT_BYTES``; GPU UUIDs and indices must
    not repeat; times must be RFC 3339 with an offset. Fields this version does not read are
    ignored (a newer agent may write more).
    """
    if not isinstance(status, Mapping):
        raise ReportError(node, [Problem("status", f"expected a mapping, got {quote(status)}")])
    f = Fields(status, "status", unknown="ignore")
    observed = _observed_at(f)
    available = f.flag("nvmlAvailable", True)
    error = _string(f, "error")
    if not available and not error:
        error = "NVML unavailable"
    seen_uuid: dict[str, int] = {}
    seen_index: dict[int, int] = {}
    gpus = tuple(_gpu(g, i, seen_uuid, seen_index) for i, g in _entries(f, "gpus", required=True))
    cached = tuple(
        CachedModel(_string(c, "modelId", required=True), _size(c, "bytes", required=True) or 0)
        for _, c in _entries(f, "cachedModels")
    )
    bandwidth = f.child("bandwidth", unknown="ignore")
    local = bandwidth.number("localDiskBytesPerSecond", None)
    remote = bandwidth.number("remoteBytesPerSecond", None)
    if f.problems:
        raise ReportError(node, f.problems)
    return NodeState(
        name=node,
        gpus=gpus,
        observed_at=observed,
        lease_renewed_at=lease_renewed_at,
        lease_duration_s=lease_duration_s,
        cached_models=cached,
        local_disk_bytes_per_s=local,
        remote_bytes_per_s=remote,
        agent_error=error,
    )
