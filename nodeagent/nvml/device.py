"""One poll of one GPU through NVML: memory, processes, MIG devices and health.

The backend decides when to read and what a failure means for the node; this module reads one
enumerated GPU into a ``GpuReading``, leaving out each field the driver lacks and raising
``NvmlCallError`` for a failure the backend must see (a lost GPU, NVML going away).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nodeagent.health import ErrorKind, XidLedger
from nodeagent.nvml.calls import NvmlCallError, NvmlCalls, text
from nodeagent.reading import GpuReading, MigReading, ProcessUse

log = logging.getLogger(__name__)

_MEMORY_V2 = 0x02000028  # nvmlMemory_v2
_MEMORY_ERROR_TYPE_UNCORRECTED = 1
_VOLATILE_ECC = 0


@dataclass(slots=True)
class Device:
    """What enumeration found for one GPU; kept by UUID across re-initialisations."""

    uuid: str
    index: int
    product: str
    pci_bus_id: str
    numa_node: int | None
    total_bytes: int
    handle: Any = None
    peers: frozenset[str] = frozenset()
    minor: int | None = None


def unknown(dev: Device, reason: str) -> GpuReading:
    """A GPU that could not be read this poll: unhealthy, with what is known of it."""
    return GpuReading(
        uuid=dev.uuid,
        index=dev.index,
        product=dev.product,
        total_bytes=dev.total_bytes,
        free_bytes=None,
        used_bytes=None,
        healthy=False,
        reason=reason,
        nvlink_peers=dev.peers,
        pci_bus_id=dev.pci_bus_id,
        numa_node=dev.numa_node,
        minor=dev.minor,
    )


def read_device(nvml: NvmlCalls, dev: Device, xids: XidLedger, now: float) -> GpuReading:
    """One fresh reading of ``dev``; updates its total memory when NVML gives it."""
    h = dev.handle
    total, free, used, reserved = _memory(nvml, dev.uuid, h)
    if total is not None:
        dev.total_bytes = total
    mode = nvml.optional(dev.uuid, "migMode", "nvmlDeviceGetMigMode", h)
    mig_enabled = bool(mode is not None and mode[0] == 1)
    migs: tuple[MigReading, ...] = ()
    processes: tuple[ProcessUse, ...] = ()
    if mig_enabled:
        migs = _read_migs(nvml, dev)
    else:
        processes = _processes(nvml, dev.uuid, h)
    reason = _health(nvml, dev, xids, now)
    return GpuReading(
        uuid=dev.uuid,
        index=dev.index,
        product=dev.product,
        total_bytes=dev.total_bytes,
        free_bytes=free,
        used_bytes=used,
        reserved_bytes=reserved,
        healthy=not reason,
        reason=reason,
        mig_enabled=mig_enabled,
        mig_devices=migs,
        nvlink_peers=dev.peers,
        pci_bus_id=dev.pci_bus_id,
        numa_node=dev.numa_node,
        processes=processes,
        minor=dev.minor,
    )


def _memory(
    nvml: NvmlCalls, key: str, handle: Any
) -> tuple[int | None, int | None, int | None, int | None]:
    """(total, free, used, reserved) from memory info v2, else v1 (reserved unknown)."""
    if f"{key}/memoryV2" not in nvml.unsupported:
        try:
            m = nvml.call("nvmlDeviceGetMemoryInfo", handle, _MEMORY_V2)
            return int(m.total), int(m.free), int(m.used), int(m.reserved)
        except (NvmlCallError, TypeError) as exc:  # TypeError: a pynvml without ``version``
            if isinstance(exc, NvmlCallError) and exc.kind is not ErrorKind.UNSUPPORTED:
                raise
            nvml.unsupported.add(f"{key}/memoryV2")
            log.info("%s: memory info v2 not available (%s); using v1", key, exc)
    m = nvml.call("nvmlDeviceGetMemoryInfo", handle)
    return int(m.total), int(m.free), int(m.used), None


def _processes(nvml: NvmlCalls, key: str, handle: Any) -> tuple[ProcessUse, ...]:
    procs = nvml.optional(key, "processes", "nvmlDeviceGetComputeRunningProcesses", handle)
    if procs is None and hasattr(nvml.nvml, "nvmlDeviceGetComputeRunningProcesses_v2"):
        procs = nvml.optional(key, "processesV2", "nvmlDeviceGetComputeRunningProcesses_v2", handle)
    if procs is None:
        return ()
    out = []
    for p in procs:
        used = getattr(p, "usedGpuMemory", None)
        out.append(ProcessUse(bytes=int(used) if used is not None else 0, pid=int(p.pid)))
    return tuple(out)


def _health(nvml: NvmlCalls, dev: Device, xids: XidLedger, now: float) -> str:
    """Why the GPU is unhealthy now, or ""; each check that the GPU lacks is skipped."""
    uuid, h = dev.uuid, dev.handle
    reasons = []
    rows = nvml.optional(uuid, "remappedRows", "nvmlDeviceGetRemappedRows", h)
    if rows is not None:
        _corr, _unc, pending, failure = rows
        if failure:
            reasons.append("row remapping failed")
        elif pending:
            reasons.append("row remapping pending (reset required)")
    else:
        pages = nvml.optional(
            uuid, "retiredPagesPending", "nvmlDeviceGetRetiredPagesPendingStatus", h
        )
        if pages:
            reasons.append("retired pages pending (reset required)")
    ecc = nvml.optional(
        uuid,
        "eccUncorrected",
        "nvmlDeviceGetTotalEccErrors",
        h,
        _MEMORY_ERROR_TYPE_UNCORRECTED,
        _VOLATILE_ECC,
    )
    if ecc:
        reasons.append(f"{ecc} uncorrectable ECC error(s) since the driver loaded")
    xid = xids.reason(uuid, now)
    if xid:
        reasons.append(xid)
    return "; ".join(reasons)


def _read_migs(nvml: NvmlCalls, dev: Device) -> tuple[MigReading, ...]:
    count = nvml.optional(dev.uuid, "migCount", "nvmlDeviceGetMaxMigDeviceCount", dev.handle)
    out = []
    for i in range(int(count or 0)):
        try:
            mh = nvml.call("nvmlDeviceGetMigDeviceHandleByIndex", dev.handle, i)
        except NvmlCallError as exc:
            if exc.kind is ErrorKind.UNSUPPORTED:
                continue  # an empty MIG slot reads as NotFound
            raise
        out.append(_read_mig(nvml, mh))
    return tuple(out)


def _read_mig(nvml: NvmlCalls, mh: Any) -> MigReading:
    mig_uuid = text(nvml.call("nvmlDeviceGetUUID", mh))
    gi = nvml.optional(mig_uuid, "gpuInstanceId", "nvmlDeviceGetGpuInstanceId", mh)
    ci = nvml.optional(mig_uuid, "computeInstanceId", "nvmlDeviceGetComputeInstanceId", mh)
    try:
        total, free, used, _ = _memory(nvml, mig_uuid, mh)
    except NvmlCallError as exc:
        if exc.kind is ErrorKind.DEVICE_LOST:
            raise
        total = free = used = None
    return MigReading(
        uuid=mig_uuid,
        gpu_instance_id=None if gi is None else int(gi),
        compute_instance_id=None if ci is None else int(ci),
        total_bytes=total,
        free_bytes=free,
        used_bytes=used,
        processes=_processes(nvml, mig_uuid, mh),
    )
