"""The ``nvml`` backend: reads every GPU of the node through NVML (``nvidia-ml-py``).

This module owns NVML's life on the node (initialise, enumerate by UUID, re-initialise after a
lost GPU, shut down) and the error policy (see ``health``); reading one GPU, NVLink discovery,
the call wrapper and the XID thread live beside it in this package. The ``pynvml`` module is
passed in, never imported here, so the same code runs against the real library on a GPU node
and against a fake module in tests. Error policy:

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
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from nodeagent.health import DEFAULT_IGNORED_XIDS, ErrorKind, XidLedger
from nodeagent.nvml.calls import NvmlCallError, NvmlCalls, text
from nodeagent.nvml.device import Device, read_device, unknown
from nodeagent.nvml.nvlink import LinkedGpu, discover_peers, normalize_bus_id
from nodeagent.nvml.xid import XidWatcher
from nodeagent.reading import NodeReading
from nodeagent.retry import Backoff

log = logging.getLogger(__name__)


def load_pynvml() -> ModuleType:
    """The real ``pynvml`` module (``nvidia-ml-py``), imported only by an agent that reads GPUs:
    the one place the agent imports it, so tests hand ``NvmlBackend`` a fake module instead."""
    import pynvml  # noqa: PLC0415 - only the NVML backend loads the NVML bindings

    bindings: ModuleType = pynvml
    return bindings


@dataclass(frozen=True, slots=True)
class NvmlSettings:
    """Knobs of the NVML backend."""

    xid_hold_s: float = 300.0
    ignored_xids: frozenset[int] = DEFAULT_IGNORED_XIDS
    event_wait_ms: int = 1000
    init_backoff_base_s: float = 1.0
    init_backoff_cap_s: float = 60.0


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
        self._nvml = NvmlCalls(nvml)
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
        self._devices: dict[str, Device] = {}
        self._initialized = False
        self._error = "NVML not initialised yet"
        self._next_init_at = 0.0
        self._driver_version = ""
        self._events: XidWatcher | None = None
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

    def _teardown(self) -> None:
        if self._events is not None:
            self._events.stop()
            self._events = None
        if self._initialized:
            try:
                self._nvml.call("nvmlShutdown")
            except NvmlCallError as exc:
                log.warning("nvmlShutdown failed: %s", exc)
        self._initialized = False

    def _init_failed(self, now: float, exc: NvmlCallError) -> None:
        """NVML cannot be used: say why, and try again after the backoff."""
        self._error = f"NVML unavailable: {exc}"
        delay = self._backoff.next_delay()
        self._next_init_at = now + delay
        log.warning("%s; retrying in %.1fs", self._error, delay)

    def _try_init(self, now: float) -> None:
        try:
            self._nvml.call("nvmlInit")
        except NvmlCallError as exc:
            self._init_failed(now, exc)
            return
        self._initialized = True
        try:
            self._enumerate()
        except NvmlCallError as exc:
            self._teardown()
            self._init_failed(now, exc)
            return
        self._backoff.reset()
        self._error = ""
        if self._start_events:
            self._events = XidWatcher(
                self._nvml,
                self.xids,
                ignored_xids=self._settings.ignored_xids,
                wait_ms=self._settings.event_wait_ms,
                clock=self.clock,
            )
            self._events.start(self._live_handles())
        log.info(
            "NVML initialised: driver %s, %d GPU(s)",
            self._driver_version or "unknown",
            sum(1 for d in self._devices.values() if d.handle is not None),
        )

    def _enumerate(self) -> None:
        """Find every GPU, by UUID; GPUs seen before keep their entry (and stay reported)."""
        try:
            self._driver_version = text(self._nvml.call("nvmlSystemGetDriverVersion"))
        except NvmlCallError as exc:
            if exc.kind is not ErrorKind.UNSUPPORTED:
                raise
            self._driver_version = ""
        for dev in self._devices.values():
            dev.handle = None
        count = int(self._nvml.call("nvmlDeviceGetCount"))
        for i in range(count):
            try:
                handle = self._nvml.call("nvmlDeviceGetHandleByIndex", i)
                uuid = text(self._nvml.call("nvmlDeviceGetUUID", handle))
            except NvmlCallError as exc:
                if exc.kind is ErrorKind.DEVICE_LOST:
                    log.warning("GPU at index %d is not usable: %s", i, exc)
                    continue
                raise
            known = self._devices.get(uuid)
            if known is None:
                dev = Device(
                    uuid=uuid,
                    index=self._nvml.optional(
                        uuid, "index", "nvmlDeviceGetIndex", handle, default=i
                    ),
                    product=text(self._nvml.call("nvmlDeviceGetName", handle)),
                    pci_bus_id=self._bus_id(uuid, handle),
                    numa_node=self._nvml.optional(
                        uuid, "numaNode", "nvmlDeviceGetNumaNodeId", handle
                    ),
                    total_bytes=0,
                    minor=self._nvml.optional(
                        uuid, "minorNumber", "nvmlDeviceGetMinorNumber", handle
                    ),
                )
                self._devices[uuid] = dev
            else:
                dev = known
            dev.handle = handle
        self._discover_nvlink()

    def _bus_id(self, uuid: str, handle: Any) -> str:
        info = self._nvml.optional(uuid, "pciBusId", "nvmlDeviceGetPciInfo", handle)
        return "" if info is None else normalize_bus_id(info.busId)

    def _discover_nvlink(self) -> None:
        """Each GPU's NVLink peers, found once per enumeration (see ``nvlink``)."""
        live = {
            u: LinkedGpu(d.handle, d.pci_bus_id)
            for u, d in self._devices.items()
            if d.handle is not None
        }
        for uuid, peers in discover_peers(self._nvml, live).items():
            self._devices[uuid].peers = peers

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
                gpus=tuple(unknown(d, self._error) for d in self._ordered()),
                observed_at=now,
                driver_version=self._driver_version,
                error=self._error,
                unsupported=frozenset(self._nvml.unsupported),
            )
        gpus = []
        lost = False
        for dev in self._ordered():
            if dev.handle is None:
                gpus.append(unknown(dev, "GPU not visible to NVML since re-initialisation"))
                lost = True
                continue
            try:
                gpus.append(read_device(self._nvml, dev, self.xids, now))
            except NvmlCallError as exc:
                lost = lost or exc.kind in (ErrorKind.DEVICE_LOST, ErrorKind.NVML_DOWN)
                prefix = "NVML unavailable: " if exc.kind is ErrorKind.NVML_DOWN else ""
                gpus.append(unknown(dev, f"{prefix}{exc}"))
        if not lost:
            self._reinit_backoff.reset()
        elif self._reinit_at is None:
            self._reinit_at = now + self._reinit_backoff.next_delay()
        return NodeReading(
            gpus=tuple(gpus),
            observed_at=now,
            driver_version=self._driver_version,
            unsupported=frozenset(self._nvml.unsupported),
        )

    def _ordered(self) -> list[Device]:
        return sorted(self._devices.values(), key=lambda d: (d.index, d.uuid))

    def _live_handles(self) -> list[tuple[str, Any]]:
        """(uuid, handle) of every GPU NVML currently serves."""
        return [(u, d.handle) for u, d in self._devices.items() if d.handle is not None]
