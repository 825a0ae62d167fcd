"""The NodeGPUState codec: the wire shape the node agent writes and the extender reads.

One cluster-scoped ``NodeGPUState`` object (group ``vramfit.io``) per node carries a report of
the node's GPUs in its ``status``. Both directions live here, pure, so the agent and the
extender cannot drift apart: ``encode_status`` turns a ``NodeState`` into that status, and
``decode_status`` turns it back, reporting every malformed field by its path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

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


class ReportError(ValueError):
    """A NodeGPUState status that does not match the schema; lists every bad field."""

    def __init__(self, node: str, problems: list[str]) -> None:
        super().__init__(f"NodeGPUState {node}: " + "; ".join(problems))
        self.problems = problems


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


class _Reader:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def get(
        self,
        obj: Mapping[str, Any],
        key: str,
        kind: type | tuple[type, ...],
        path: str,
        *,
        optional: bool = False,
        default: Any = None,
    ) -> Any:
        if key not in obj or obj[key] is None:
            if not optional:
                self.problems.append(f"{path}.{key}: missing")
            return default
        value = obj[key]
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            self.problems.append(f"{path}.{key}: expected {_kind_name(kind)}, got a boolean")
            return default
        if not isinstance(value, kind):
            self.problems.append(
                f"{path}.{key}: expected {_kind_name(kind)}, got {type(value).__name__}"
            )
            return default
        return value

    def size(self, obj: Mapping[str, Any], key: str, path: str, *, optional: bool = False) -> Any:
        """A byte count: an integer in 0..MAX_REPORT_BYTES."""
        value = self.get(obj, key, int, path, optional=optional)
        if value is not None and not 0 <= value <= MAX_REPORT_BYTES:
            self.problems.append(f"{path}.{key}: {value} is out of range 0..{MAX_REPORT_BYTES}")
            return None
        return value

    def instance_id(self, obj: Mapping[str, Any], key: str, path: str) -> int | None:
        """An optional MIG instance id: an integer >= 0."""
        value: int | None = self.get(obj, key, int, path, optional=True)
        if value is not None and value < 0:
            self.problems.append(f"{path}.{key}: {value} must not be negative")
            return None
        return value

    def mig_devices(self, gj: Mapping[str, Any], path: str) -> tuple[MigDevice, ...]:
        """A GPU's MIG devices; UUIDs must be present and must not repeat."""
        devices: list[MigDevice] = []
        seen: dict[str, int] = {}
        for j, mj in enumerate(self.get(gj, "migDevices", list, path, optional=True, default=[])):
            p = f"{path}.migDevices[{j}]"
            if not isinstance(mj, Mapping):
                self.problems.append(f"{p}: expected an object")
                continue
            uuid = self.get(mj, "uuid", str, p, default="")
            if "uuid" in mj and mj["uuid"] == "":
                self.problems.append(f"{p}.uuid: must not be empty")
            elif uuid in seen:
                self.problems.append(f"{p}.uuid: {uuid!r} repeats {path}.migDevices[{seen[uuid]}]")
            elif uuid:
                seen[uuid] = j
            mem = self.get(mj, "memory", Mapping, p, optional=True)
            total = free = used = None
            if mem is not None:
                total = self.size(mem, "totalBytes", f"{p}.memory")
                free = self.size(mem, "freeBytes", f"{p}.memory", optional=True)
                used = self.size(mem, "usedBytes", f"{p}.memory", optional=True)
            devices.append(
                MigDevice(
                    uuid=uuid,
                    gpu_instance_id=self.instance_id(mj, "gpuInstanceId", p),
                    compute_instance_id=self.instance_id(mj, "computeInstanceId", p),
                    total_bytes=total,
                    free_bytes=free,
                    used_bytes=used,
                )
            )
        return tuple(devices)

    def rate(self, obj: Mapping[str, Any], key: str, path: str) -> float | None:
        """An optional bandwidth: a finite, non-negative number."""
        value = self.get(obj, key, (int, float), path, optional=True)
        if value is not None and not (math.isfinite(value) and value >= 0):
            self.problems.append(f"{path}.{key}: {value} must be a finite number >= 0")
            return None
        return None if value is None else float(value)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def decode_status(
    node: str,
    status: Mapping[str, Any],
    *,
    lease_renewed_at: float | None,
    lease_duration_s: float = 40.0,
) -> NodeState:
    """Turn a report into a ``NodeState`` (pure); raises ``ReportError`` listing every bad field.

    Byte counts must be integers in 0..``MAX_REPORT_BYTES``; GPU UUIDs and indices must not
    repeat; times must be RFC 3339 with an offset.
    """
    r = _Reader()
    if not isinstance(status, Mapping):
        raise ReportError(node, ["status: expected an object"])
    observed_raw = r.get(status, "observedAt", str, "status")
    observed = 0.0
    if observed_raw is not None:
        try:
            observed = parse_time(observed_raw)
        except ValueError:
            r.problems.append(f"status.observedAt: {observed_raw!r} is not an RFC 3339 time")
    available = r.get(status, "nvmlAvailable", bool, "status", optional=True, default=True)
    error = r.get(status, "error", str, "status", optional=True, default="")
    if not available and not error:
        error = "NVML unavailable"
    gpus: list[GpuState] = []
    seen_uuid: dict[str, int] = {}
    seen_index: dict[int, int] = {}
    for i, gj in enumerate(r.get(status, "gpus", list, "status", default=[])):
        p = f"status.gpus[{i}]"
        if not isinstance(gj, Mapping):
            r.problems.append(f"{p}: expected an object")
            continue
        uuid = r.get(gj, "uuid", str, p, default="")
        if uuid in seen_uuid:
            r.problems.append(f"{p}.uuid: {uuid!r} repeats status.gpus[{seen_uuid[uuid]}]")
        elif uuid:
            seen_uuid[uuid] = i
        elif "uuid" in gj and gj["uuid"] == "":
            r.problems.append(f"{p}.uuid: must not be empty")
        index = r.get(gj, "index", int, p, default=i)
        if index < 0:
            r.problems.append(f"{p}.index: {index} must not be negative")
        elif index in seen_index:
            r.problems.append(f"{p}.index: {index} repeats status.gpus[{seen_index[index]}]")
        else:
            seen_index[index] = i
        mem = r.get(gj, "memory", Mapping, p, default={})
        total = r.size(mem, "totalBytes", f"{p}.memory")
        free = r.size(mem, "freeBytes", f"{p}.memory", optional=True)
        used = r.size(mem, "usedBytes", f"{p}.memory", optional=True)
        pods = []
        for j, pm in enumerate(r.get(gj, "pods", list, p, optional=True, default=[])):
            if isinstance(pm, Mapping):
                pods.append(
                    PodMemory(
                        r.get(pm, "podUID", str, f"{p}.pods[{j}]", default=""),
                        r.size(pm, "bytes", f"{p}.pods[{j}]") or 0,
                    )
                )
            else:
                r.problems.append(f"{p}.pods[{j}]: expected an object")
        peers: list[str] = []
        for j, peer in enumerate(r.get(gj, "nvlinkPeers", list, p, optional=True, default=[])):
            if isinstance(peer, str) and peer:
                peers.append(peer)
            else:
                r.problems.append(f"{p}.nvlinkPeers[{j}]: expected a GPU UUID, got {peer!r}")
        gpus.append(
            GpuState(
                uuid=uuid or f"<missing-{i}>",
                index=index,
                product=r.get(gj, "product", str, p, default=""),
                total_bytes=total or 0,
                free_bytes=free,
                used_bytes=used,
                healthy=r.get(gj, "healthy", bool, p, default=False),
                unhealthy_reason=r.get(gj, "unhealthyReason", str, p, optional=True, default=""),
                mig_enabled=r.get(gj, "migEnabled", bool, p, optional=True, default=False),
                nvlink_peers=frozenset(peers),
                holder_pod_uid=r.get(gj, "holderPodUID", str, p, optional=True) or None,
                pod_memory=tuple(pods),
                pci_bus_id=r.get(gj, "pciBusId", str, p, optional=True, default=""),
                numa_node=r.get(gj, "numaNode", int, p, optional=True),
                mig_devices=r.mig_devices(gj, p),
            )
        )
    cached: list[CachedModel] = []
    for i, cm in enumerate(
        r.get(status, "cachedModels", list, "status", optional=True, default=[])
    ):
        p = f"status.cachedModels[{i}]"
        if not isinstance(cm, Mapping):
            r.problems.append(f"{p}: expected an object")
            continue
        cached.append(
            CachedModel(r.get(cm, "modelId", str, p, default=""), r.size(cm, "bytes", p) or 0)
        )
    bw = r.get(status, "bandwidth", Mapping, "status", optional=True, default={})
    local = r.rate(bw, "localDiskBytesPerSecond", "status.bandwidth")
    remote = r.rate(bw, "remoteBytesPerSecond", "status.bandwidth")
    if r.problems:
        raise ReportError(node, r.problems)
    return NodeState(
        name=node,
        gpus=tuple(gpus),
        observed_at=observed,
        lease_renewed_at=lease_renewed_at,
        lease_duration_s=lease_duration_s,
        cached_models=tuple(cached),
        local_disk_bytes_per_s=local,
        remote_bytes_per_s=remote,
        agent_error=error,
    )
