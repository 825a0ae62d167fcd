"""The ``nvml`` backend: reads every GPU of the node through NVML (``nvidia-ml-py``).

The ``pynvml`` module is passed in, never imported here, so the same code runs against the real
library on a GPU node and against a fake module in tests. Error policy (see ``health``):

- a field the driver does not offer is published absent and never asked for again;
- a lost GPU is reported unhealthy with the reason, NVML is re-initialised and the GPUs are
  re-enumerated by UUID; the GPU comes back healthy when it reads cleanly again;
- after any error a value is ``None`` for that poll, never the previous reading;
- NVML failing at start-up (or later) leaves the backend not ready; it retries with backoff and
  reports "NVML unavailable: ..." meanwhile;
- a driver/library version mismatch raises ``NvmlRestartRequiredError``: the process must restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from nodeagent.health import (
    DEFAULT_IGNORED_XIDS,
    NVML_ERROR_FUNCTION_NOT_FOUND,
    NVML_ERROR_LIB_RM_VERSION_MISMATCH,
    NVML_ERROR_TIMEOUT,
    NVML_ERROR_UNKNOWN,
    ErrorKind,
    XidEvent,
    XidLedger,
    classify,
    is_critical_xid,
)
from nodeagent.reading import GpuReading, MigReading, NodeReading, ProcessUse
from nodeagent.retry import Backoff

log = logging.getLogger(__name__)

# nvml.h constants that older nvidia-ml-py releases may not export under these names.
_NVLINK_STATE_ACTIVE = 1
_NVLINK_DEVICE_TYPE_GPU = 0
_NVLINK_DEVICE_TYPE_SWITCH = 2
_XID_EVENT = 0x8  # nvmlEventTypeXidCriticalError
_MEMORY_V2 = 0x02000028  # nvmlMemory_v2
_P2P_CAPS_INDEX_NVLINK = 2
_P2P_STATUS_OK = 0
_MEMORY_ERROR_TYPE_UNCORRECTED = 1
_VOLATILE_ECC = 0


class NvmlRestartRequiredError(RuntimeError):
    """The NVML library and the kernel driver disagree (the driver was upgraded): restart."""


class NvmlCallError(Exception):
    """One failed NVML call, with the function that failed and what to do about it."""

    def __init__(self, function: str, code: int, message: str) -> None:
        super().__init__(f"{function}: {message} (NVML error {code})")
        self.function = function
        self.code = code
        self.kind = classify(code)


def normalize_bus_id(raw: object) -> str:
    """A PCI bus id as ``DDDDDDDD:BB:DD.F`` in upper case, whatever width NVML used (pure).

    NVML writes the domain with 8 digits in ``busId`` and 4 in ``busIdLegacy``, and remote
    NVLink PCI info may differ from the device's own; comparing needs one form.
    """
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    text = text.strip().rstrip("\x00")
    try:
        domain, bus, rest = text.split(":")
        device, function = rest.split(".")
        return (
            f"{int(domain, 16):08X}:{int(bus, 16):02X}:{int(device, 16):02X}.{int(function, 16):X}"
        )
    except ValueError:
        return text.upper()


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


@dataclass(slots=True)
class _Device:
    """What enumeration found for one GPU; kept by UUID across re-initialisations."""

    uuid: str
    index: int
    product: str
    pci_bus_id: str
    numa_node: int | None
    total_bytes: int
    handle: Any = None
    peers: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class NvmlSettings:
    """Knobs of the NVML backend."""

    xid_hold_s: float = 300.0
    ignored_xids: frozenset[int] = DEFAULT_IGNORED_XIDS
    event_wait_ms: int = 1000
    init_backoff_base_s: float = 1.0
    init_backoff_cap_s: float = 60.0


@dataclass(slots=True)
class _PollState:
    unsupported: set[str] = field(default_factory=set)


class NvmlBackend:
    """Reads GPUs through the injected ``pynvml`` module; see the module docstring for errors."""

    def __init__(
        self,
        nvml: ModuleType,
        *,
        settings: NvmlSettings | None = None,
        backoff: Backoff | None = None,
        start_event_thread: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._nvml = nvml
        self._settings = settings or NvmlSettings()
        self._backoff = backoff or Backoff(
            self._settings.init_backoff_base_s, self._settings.init_backoff_cap_s
        )
        self._reinit_backoff = Backoff(
            self._settings.init_backoff_base_s, self._settings.init_backoff_cap_s
        )
        self._reinit_at: float | None = None
        self.clock = clock
        self._start_events = start_event_thread
        self.xids = XidLedger(self._settings.xid_hold_s)
        self._devices: dict[str, _Device] = {}
        self._state = _PollState()
        self._initialized = False
        self._error = "NVML not initialised yet"
        self._next_init_at = 0.0
        self._driver_version = ""
        self._events: _XidWatcher | None = None
        self._lock = threading.Lock()

    # -- public ---------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Whether NVML is initialised and the GPUs enumerated."""
        return self._initialized

    @property
    def error(self) -> str:
        """The current whole-node NVML fault, or "" when NVML works."""
        return "" if self._initialized else self._error

    def read(self, now: float) -> NodeReading:
        """One fresh reading of every GPU known on this node (thread-safe)."""
        with self._lock:
            return self._read(now)

    def close(self) -> None:
        """Stop the XID thread and shut NVML down."""
        with self._lock:
            self._teardown()

    # -- lifecycle ------------------------------------------------------------------------

    def _call(self, name: str, *args: Any) -> Any:
        try:
            return getattr(self._nvml, name)(*args)
        except self._nvml.NVMLError as exc:
            code = int(getattr(exc, "value", NVML_ERROR_UNKNOWN))
            if code == NVML_ERROR_LIB_RM_VERSION_MISMATCH:
                raise NvmlRestartRequiredError(f"{name}: {exc}") from exc
            raise NvmlCallError(name, code, str(exc)) from None
        except AttributeError as exc:  # a symbol this nvidia-ml-py release does not have
            if hasattr(self._nvml, name):
                raise
            raise NvmlCallError(
                name, NVML_ERROR_FUNCTION_NOT_FOUND, "function not found in this nvidia-ml-py"
            ) from exc
        except Exception as exc:
            # nvidia-ml-py raises this when an unversioned wrapper's newest variant is missing
            # from an older driver: the function is not there, an older variant may be.
            mismatch = getattr(self._nvml, "NVMLLibraryMismatchError", None)
            if mismatch is not None and isinstance(exc, mismatch):
                raise NvmlCallError(
                    name, NVML_ERROR_FUNCTION_NOT_FOUND, "this driver lacks the newest variant"
                ) from None
            raise

    def _teardown(self) -> None:
        if self._events is not None:
            self._events.stop()
            self._events = None
        if self._initialized:
            try:
                self._call("nvmlShutdown")
            except NvmlCallError as exc:
                log.warning("nvmlShutdown failed: %s", exc)
        self._initialized = False

    def _try_init(self, now: float) -> None:
        try:
            self._call("nvmlInit")
        except NvmlCallError as exc:
            self._error = f"NVML unavailable: {exc}"
            delay = self._backoff.next_delay()
            self._next_init_at = now + delay
            log.warning("%s; retrying in %.1fs", self._error, delay)
            return
        self._initialized = True
        try:
            self._enumerate()
        except NvmlCallError as exc:
            self._teardown()
            self._error = f"NVML unavailable: {exc}"
            delay = self._backoff.next_delay()
            self._next_init_at = now + delay
            log.warning("%s; retrying in %.1fs", self._error, delay)
            return
        self._backoff.reset()
        self._error = ""
        if self._start_events:
            self._events = _XidWatcher(self, self._settings)
            self._events.start()
        log.info(
            "NVML initialised: driver %s, %d GPU(s)",
            self._driver_version or "unknown",
            sum(1 for d in self._devices.values() if d.handle is not None),
        )

    def _enumerate(self) -> None:
        """Find every GPU, by UUID; GPUs seen before keep their entry (and stay reported)."""
        try:
            self._driver_version = _text(self._call("nvmlSystemGetDriverVersion"))
        except NvmlCallError as exc:
            if exc.kind is not ErrorKind.UNSUPPORTED:
                raise
            self._driver_version = ""
        for dev in self._devices.values():
            dev.handle = None
        count = int(self._call("nvmlDeviceGetCount"))
        for i in range(count):
            try:
                handle = self._call("nvmlDeviceGetHandleByIndex", i)
                uuid = _text(self._call("nvmlDeviceGetUUID", handle))
            except NvmlCallError as exc:
                if exc.kind is ErrorKind.DEVICE_LOST:
                    log.warning("GPU at index %d is not usable: %s", i, exc)
                    continue
                raise
            known = self._devices.get(uuid)
            if known is None:
                dev = _Device(
                    uuid=uuid,
                    index=self._optional(uuid, "index", "nvmlDeviceGetIndex", handle, default=i),
                    product=_text(self._call("nvmlDeviceGetName", handle)),
                    pci_bus_id=self._bus_id(uuid, handle),
                    numa_node=self._optional(uuid, "numaNode", "nvmlDeviceGetNumaNodeId", handle),
                    total_bytes=0,
                )
                self._devices[uuid] = dev
            else:
                dev = known
            dev.handle = handle
        self._discover_nvlink()

    def _bus_id(self, uuid: str, handle: Any) -> str:
        info = self._optional(uuid, "pciBusId", "nvmlDeviceGetPciInfo", handle)
        return "" if info is None else normalize_bus_id(info.busId)

    def _optional(self, uuid: str, name: str, fn: str, *args: Any, default: Any = None) -> Any:
        """Call ``fn``; a field the driver lacks becomes ``default`` and is not asked again."""
        key = f"{uuid}/{name}"
        if key in self._state.unsupported:
            return default
        try:
            return self._call(fn, *args)
        except NvmlCallError as exc:
            if exc.kind is ErrorKind.UNSUPPORTED:
                self._state.unsupported.add(key)
                log.info("GPU %s: %s not available (%s); publishing it as absent", uuid, name, exc)
                return default
            raise

    # -- NVLink ---------------------------------------------------------------------------

    def _discover_nvlink(self) -> None:
        """Peers per GPU from active NVLinks: a link to another GPU's PCI address joins the two;
        GPUs linked to NVSwitches are all joined (the switch fabric is non-blocking)."""
        live = {u: d for u, d in self._devices.items() if d.handle is not None}
        by_bus = {d.pci_bus_id: u for u, d in live.items() if d.pci_bus_id}
        peers: dict[str, set[str]] = {u: set() for u in live}
        on_switch: set[str] = set()
        link_info = False
        for uuid, dev in live.items():
            max_links = int(getattr(self._nvml, "NVML_NVLINK_MAX_LINKS", 18))
            for link in range(max_links):
                try:
                    state = self._call("nvmlDeviceGetNvLinkState", dev.handle, link)
                except NvmlCallError as exc:
                    if exc.kind is ErrorKind.DEVICE_LOST:
                        raise
                    break  # no such link (InvalidArgument) or no NVLink at all (NotSupported)
                link_info = True
                if state != _NVLINK_STATE_ACTIVE:
                    continue
                try:
                    remote_bus = normalize_bus_id(
                        self._call("nvmlDeviceGetNvLinkRemotePciInfo", dev.handle, link).busId
                    )
                except NvmlCallError:
                    continue
                remote_type = self._optional(
                    uuid,
                    "nvlinkRemoteType",
                    "nvmlDeviceGetNvLinkRemoteDeviceType",
                    dev.handle,
                    link,
                )
                if remote_type == _NVLINK_DEVICE_TYPE_SWITCH:
                    on_switch.add(uuid)
                elif remote_bus in by_bus and remote_bus != dev.pci_bus_id:
                    peers[uuid].add(by_bus[remote_bus])
                    peers[by_bus[remote_bus]].add(uuid)
                elif remote_type is None or remote_type != _NVLINK_DEVICE_TYPE_GPU:
                    on_switch.add(uuid)  # an active link to something that is not one of our GPUs
        if not link_info:
            self._p2p_fallback(live, peers)
        for uuid in on_switch:
            peers[uuid].update(on_switch - {uuid})
        for uuid, dev in live.items():
            dev.peers = frozenset(peers[uuid])

    def _p2p_fallback(self, live: dict[str, _Device], peers: dict[str, set[str]]) -> None:
        uuids = sorted(live)
        for i, a in enumerate(uuids):
            for b in uuids[i + 1 :]:
                try:
                    status = self._call(
                        "nvmlDeviceGetP2PStatus",
                        live[a].handle,
                        live[b].handle,
                        _P2P_CAPS_INDEX_NVLINK,
                    )
                except NvmlCallError:
                    return  # not offered: no NVLink information at all
                if status == _P2P_STATUS_OK:
                    peers[a].add(b)
                    peers[b].add(a)

    # -- reading --------------------------------------------------------------------------

    def _read(self, now: float) -> NodeReading:
        if not self._initialized and now >= self._next_init_at:
            self._try_init(now)
        elif self._initialized and self._reinit_at is not None and now >= self._reinit_at:
            log.warning("re-initialising NVML after a device error")
            self._reinit_at = None
            self._teardown()
            self._try_init(now)
        if not self._initialized:
            return NodeReading(
                gpus=tuple(self._unknown(d, self._error) for d in self._ordered()),
                observed_at=now,
                driver_version=self._driver_version,
                error=self._error,
                unsupported=frozenset(self._state.unsupported),
            )
        gpus = []
        lost = False
        for dev in self._ordered():
            if dev.handle is None:
                gpus.append(self._unknown(dev, "GPU not visible to NVML since re-initialisation"))
                lost = True
                continue
            try:
                gpus.append(self._read_device(dev, now))
            except NvmlCallError as exc:
                lost = lost or exc.kind in (ErrorKind.DEVICE_LOST, ErrorKind.NVML_DOWN)
                prefix = "NVML unavailable: " if exc.kind is ErrorKind.NVML_DOWN else ""
                gpus.append(self._unknown(dev, f"{prefix}{exc}"))
        if not lost:
            self._reinit_backoff.reset()
        elif self._reinit_at is None:
            self._reinit_at = now + self._reinit_backoff.next_delay()
        return NodeReading(
            gpus=tuple(gpus),
            observed_at=now,
            driver_version=self._driver_version,
            unsupported=frozenset(self._state.unsupported),
        )

    def _ordered(self) -> list[_Device]:
        return sorted(self._devices.values(), key=lambda d: (d.index, d.uuid))

    @staticmethod
    def _unknown(dev: _Device, reason: str) -> GpuReading:
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
        )

    def _memory(
        self, key: str, handle: Any
    ) -> tuple[int | None, int | None, int | None, int | None]:
        """(total, free, used, reserved) from memory info v2, else v1 (reserved unknown)."""
        if f"{key}/memoryV2" not in self._state.unsupported:
            try:
                m = self._call("nvmlDeviceGetMemoryInfo", handle, _MEMORY_V2)
                return int(m.total), int(m.free), int(m.used), int(m.reserved)
            except (NvmlCallError, TypeError) as exc:  # TypeError: a pynvml without ``version``
                if isinstance(exc, NvmlCallError) and exc.kind is not ErrorKind.UNSUPPORTED:
                    raise
                self._state.unsupported.add(f"{key}/memoryV2")
                log.info("%s: memory info v2 not available (%s); using v1", key, exc)
        m = self._call("nvmlDeviceGetMemoryInfo", handle)
        return int(m.total), int(m.free), int(m.used), None

    def _processes(self, key: str, handle: Any) -> tuple[ProcessUse, ...]:
        procs = self._optional(key, "processes", "nvmlDeviceGetComputeRunningProcesses", handle)
        if procs is None and hasattr(self._nvml, "nvmlDeviceGetComputeRunningProcesses_v2"):
            procs = self._optional(
                key, "processesV2", "nvmlDeviceGetComputeRunningProcesses_v2", handle
            )
        if procs is None:
            return ()
        out = []
        for p in procs:
            used = getattr(p, "usedGpuMemory", None)
            out.append(ProcessUse(bytes=int(used) if used is not None else 0, pid=int(p.pid)))
        return tuple(out)

    def _health(self, dev: _Device, now: float) -> str:
        """Why the GPU is unhealthy now, or ""; each check that the GPU lacks is skipped."""
        uuid, h = dev.uuid, dev.handle
        reasons = []
        rows = self._optional(uuid, "remappedRows", "nvmlDeviceGetRemappedRows", h)
        if rows is not None:
            _corr, _unc, pending, failure = rows
            if failure:
                reasons.append("row remapping failed")
            elif pending:
                reasons.append("row remapping pending (reset required)")
        else:
            pages = self._optional(
                uuid, "retiredPagesPending", "nvmlDeviceGetRetiredPagesPendingStatus", h
            )
            if pages:
                reasons.append("retired pages pending (reset required)")
        ecc = self._optional(
            uuid,
            "eccUncorrected",
            "nvmlDeviceGetTotalEccErrors",
            h,
            _MEMORY_ERROR_TYPE_UNCORRECTED,
            _VOLATILE_ECC,
        )
        if ecc:
            reasons.append(f"{ecc} uncorrectable ECC error(s) since the driver loaded")
        xid = self.xids.reason(uuid, now)
        if xid:
            reasons.append(xid)
        return "; ".join(reasons)

    def _read_device(self, dev: _Device, now: float) -> GpuReading:
        h = dev.handle
        total, free, used, reserved = self._memory(dev.uuid, h)
        if total is not None:
            dev.total_bytes = total
        mode = self._optional(dev.uuid, "migMode", "nvmlDeviceGetMigMode", h)
        mig_enabled = bool(mode is not None and mode[0] == 1)
        migs: tuple[MigReading, ...] = ()
        processes: tuple[ProcessUse, ...] = ()
        if mig_enabled:
            migs = self._read_migs(dev)
        else:
            processes = self._processes(dev.uuid, h)
        reason = self._health(dev, now)
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
        )

    def _read_migs(self, dev: _Device) -> tuple[MigReading, ...]:
        count = self._optional(dev.uuid, "migCount", "nvmlDeviceGetMaxMigDeviceCount", dev.handle)
        out = []
        for i in range(int(count or 0)):
            try:
                mh = self._call("nvmlDeviceGetMigDeviceHandleByIndex", dev.handle, i)
            except NvmlCallError as exc:
                if exc.kind is ErrorKind.UNSUPPORTED:
                    continue  # an empty MIG slot reads as NotFound
                raise
            mig_uuid = _text(self._call("nvmlDeviceGetUUID", mh))
            gi = self._optional(mig_uuid, "gpuInstanceId", "nvmlDeviceGetGpuInstanceId", mh)
            ci = self._optional(mig_uuid, "computeInstanceId", "nvmlDeviceGetComputeInstanceId", mh)
            try:
                total, free, used, _ = self._memory(mig_uuid, mh)
            except NvmlCallError as exc:
                if exc.kind is ErrorKind.DEVICE_LOST:
                    raise
                total = free = used = None
            out.append(
                MigReading(
                    uuid=mig_uuid,
                    gpu_instance_id=None if gi is None else int(gi),
                    compute_instance_id=None if ci is None else int(ci),
                    total_bytes=total,
                    free_bytes=free,
                    used_bytes=used,
                    processes=self._processes(mig_uuid, mh),
                )
            )
        return tuple(out)

    # -- XID events -----------------------------------------------------------------------

    def live_handles(self) -> list[tuple[str, Any]]:
        """(uuid, handle) of every GPU NVML currently serves."""
        return [(u, d.handle) for u, d in self._devices.items() if d.handle is not None]

    def call(self, name: str, *args: Any) -> Any:
        """One NVML call with the backend's error mapping (for the event thread)."""
        return self._call(name, *args)


class _XidWatcher:
    """A daemon thread that waits on NVML's event set and records critical XIDs."""

    def __init__(self, backend: NvmlBackend, settings: NvmlSettings) -> None:
        self._backend = backend
        self._settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nvml-xid-events", daemon=True)
        self._set: Any = None
        self._uuid_by_handle: list[tuple[Any, str]] = []

    def start(self) -> None:
        try:
            self._set = self._backend.call("nvmlEventSetCreate")
        except NvmlCallError as exc:
            log.warning("XID events not available (%s); health relies on polling", exc)
            return
        for uuid, handle in self._backend.live_handles():
            try:
                supported = int(self._backend.call("nvmlDeviceGetSupportedEventTypes", handle))
                if supported & _XID_EVENT:
                    self._backend.call("nvmlDeviceRegisterEvents", handle, _XID_EVENT, self._set)
                    self._uuid_by_handle.append((handle, uuid))
            except NvmlCallError as exc:
                log.info("GPU %s: XID events not available (%s)", uuid, exc)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._settings.event_wait_ms / 1000 + 2)
        if self._set is not None:
            try:
                self._backend.call("nvmlEventSetFree", self._set)
            except NvmlCallError as exc:
                log.debug("nvmlEventSetFree: %s", exc)
            self._set = None

    def _uuid_of(self, handle: Any) -> str | None:
        for h, uuid in self._uuid_by_handle:
            if h is handle or h == handle:
                return uuid
        try:
            return _text(self._backend.call("nvmlDeviceGetUUID", handle))
        except NvmlCallError:
            return None

    def _run(self) -> None:
        clock = self._backend.clock
        while not self._stop.is_set():
            try:
                data = self._backend.call(
                    "nvmlEventSetWait_v2", self._set, self._settings.event_wait_ms
                )
            except NvmlCallError as exc:
                if exc.code != NVML_ERROR_TIMEOUT:
                    log.warning("waiting for XID events: %s", exc)
                    self._stop.wait(self._settings.event_wait_ms / 1000)
                continue
            except NvmlRestartRequiredError:
                log.error("NVML library mismatch in the XID thread")
                return
            xid = int(getattr(data, "eventData", 0))
            if not is_critical_xid(xid, self._settings.ignored_xids):
                log.info("XID %d ignored (application error)", xid)
                continue
            uuid = self._uuid_of(data.device)
            if uuid is None:
                log.warning("critical XID %d on a GPU whose UUID cannot be read", xid)
                continue
            log.warning("critical XID %d on GPU %s", xid, uuid)
            self._backend.xids.record(XidEvent(uuid=uuid, xid=xid, at=clock()))
