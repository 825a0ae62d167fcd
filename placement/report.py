"""The NodeGPUState report: the wire shape the node agent writes and the extender reads.

One cluster-scoped ``NodeGPUState`` object (group ``vramfit.io``) per node carries this in its
``status``. Both directions live here, pure, so the agent and the extender cannot drift apart;
``decode_status`` reports every malformed field by its path.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

from placement.model import CachedModel, GpuState, NodeState, PodMemory

GROUP = "vramfit.io"
VERSION = "v1alpha1"
KIND = "NodeGPUState"
PLURAL = "nodegpustates"
LEASE_PREFIX = "vramfit-agent-"


class MemoryJSON(TypedDict):
    totalBytes: int
    freeBytes: NotRequired[int | None]
    usedBytes: NotRequired[int | None]
    reservedBytes: NotRequired[int | None]


class PodMemoryJSON(TypedDict):
    podUID: str
    bytes: int


class GpuJSON(TypedDict):
    uuid: str
    index: int
    product: str
    memory: MemoryJSON
    healthy: bool
    unhealthyReason: NotRequired[str]
    migEnabled: NotRequired[bool]
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
    """RFC 3339 (as Kubernetes writes it) to epoch seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def encode_status(node: NodeState, *, driver_version: str = "") -> StatusJSON:
    """The report for ``node``; ``decode_status`` gives the same node back."""
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
    """Turn a report into a ``NodeState``; raises ``ReportError`` listing every bad field."""
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
    for i, gj in enumerate(r.get(status, "gpus", list, "status", default=[])):
        p = f"status.gpus[{i}]"
        if not isinstance(gj, Mapping):
            r.problems.append(f"{p}: expected an object")
            continue
        mem = r.get(gj, "memory", Mapping, p, default={})
        total = r.get(mem, "totalBytes", int, f"{p}.memory", default=0)
        free = r.get(mem, "freeBytes", int, f"{p}.memory", optional=True)
        used = r.get(mem, "usedBytes", int, f"{p}.memory", optional=True)
        pods = []
        for j, pm in enumerate(r.get(gj, "pods", list, p, optional=True, default=[])):
            if isinstance(pm, Mapping):
                pods.append(
                    PodMemory(
                        r.get(pm, "podUID", str, f"{p}.pods[{j}]", default=""),
                        r.get(pm, "bytes", int, f"{p}.pods[{j}]", default=0),
                    )
                )
            else:
                r.problems.append(f"{p}.pods[{j}]: expected an object")
        peers = r.get(gj, "nvlinkPeers", list, p, optional=True, default=[])
        gpus.append(
            GpuState(
                uuid=r.get(gj, "uuid", str, p, default=f"<missing-{i}>"),
                index=r.get(gj, "index", int, p, default=i),
                product=r.get(gj, "product", str, p, default=""),
                total_bytes=total,
                free_bytes=free,
                used_bytes=used,
                healthy=r.get(gj, "healthy", bool, p, default=False),
                unhealthy_reason=r.get(gj, "unhealthyReason", str, p, optional=True, default=""),
                mig_enabled=r.get(gj, "migEnabled", bool, p, optional=True, default=False),
                nvlink_peers=frozenset(str(x) for x in peers),
                holder_pod_uid=r.get(gj, "holderPodUID", str, p, optional=True) or None,
                pod_memory=tuple(pods),
                pci_bus_id=r.get(gj, "pciBusId", str, p, optional=True, default=""),
                numa_node=r.get(gj, "numaNode", int, p, optional=True),
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
            CachedModel(
                r.get(cm, "modelId", str, p, default=""), r.get(cm, "bytes", int, p, default=0)
            )
        )
    bw = r.get(status, "bandwidth", Mapping, "status", optional=True, default={})
    local = r.get(bw, "localDiskBytesPerSecond", (int, float), "status.bandwidth", optional=True)
    remote = r.get(bw, "remoteBytesPerSecond", (int, float), "status.bandwidth", optional=True)
    if r.problems:
        raise ReportError(node, r.problems)
    return NodeState(
        name=node,
        gpus=tuple(gpus),
        observed_at=observed,
        lease_renewed_at=lease_renewed_at,
        lease_duration_s=lease_duration_s,
        cached_models=tuple(cached),
        local_disk_bytes_per_s=None if local is None else float(local),
        remote_bytes_per_s=None if remote is None else float(remote),
        agent_error=error,
    )
