"""Critical XID events as they happen: a thread waits on NVML's event set and records them.

Polling shows a GPU's memory faults but not an XID (the driver's report of a GPU error); NVML
only delivers those as events. The ledger the thread writes is what a poll reads, so a GPU is
unhealthy while a critical XID is within its hold time (``nodeagent.health``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from nodeagent.health import NVML_ERROR_TIMEOUT, XidEvent, XidLedger, is_critical_xid
from nodeagent.nvml.calls import NvmlCallError, NvmlCalls, NvmlRestartRequiredError, text

log = logging.getLogger(__name__)

_XID_EVENT = 0x8  # nvmlEventTypeXidCriticalError


class XidWatcher:
    """A daemon thread that waits on NVML's event set and records critical XIDs."""

    def __init__(
        self,
        nvml: NvmlCalls,
        ledger: XidLedger,
        *,
        ignored_xids: frozenset[int],
        wait_ms: int,
        clock: Callable[[], float],
    ) -> None:
        self._nvml = nvml
        self._ledger = ledger
        self._ignored = ignored_xids
        self._wait_ms = wait_ms
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nvml-xid-events", daemon=True)
        self._set: Any = None
        self._uuid_by_handle: list[tuple[Any, str]] = []

    def start(self, handles: Sequence[tuple[str, Any]]) -> None:
        """Register every GPU of ``handles`` (uuid, handle) that offers XID events, and wait."""
        try:
            self._set = self._nvml.call("nvmlEventSetCreate")
        except NvmlCallError as exc:
            log.warning("XID events not available (%s); health relies on polling", exc)
            return
        for uuid, handle in handles:
            try:
                supported = int(self._nvml.call("nvmlDeviceGetSupportedEventTypes", handle))
                if supported & _XID_EVENT:
                    self._nvml.call("nvmlDeviceRegisterEvents", handle, _XID_EVENT, self._set)
                    self._uuid_by_handle.append((handle, uuid))
            except NvmlCallError as exc:
                log.info("GPU %s: XID events not available (%s)", uuid, exc)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._wait_ms / 1000 + 2)
        if self._set is not None:
            try:
                self._nvml.call("nvmlEventSetFree", self._set)
            except NvmlCallError as exc:
                log.debug("nvmlEventSetFree: %s", exc)
            self._set = None

    def _uuid_of(self, handle: Any) -> str | None:
        for h, uuid in self._uuid_by_handle:
            if h is handle or h == handle:
                return uuid
        try:
            return text(self._nvml.call("nvmlDeviceGetUUID", handle))
        except NvmlCallError:
            return None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._nvml.call("nvmlEventSetWait_v2", self._set, self._wait_ms)
            except NvmlCallError as exc:
                if exc.code != NVML_ERROR_TIMEOUT:
                    log.warning("waiting for XID events: %s", exc)
                    self._stop.wait(self._wait_ms / 1000)
                continue
            except NvmlRestartRequiredError:
                log.error("NVML library mismatch in the XID thread")
                return
            xid = int(getattr(data, "eventData", 0))
            if not is_critical_xid(xid, self._ignored):
                log.info("XID %d ignored (application error)", xid)
                continue
            uuid = self._uuid_of(data.device)
            if uuid is None:
                log.warning("critical XID %d on a GPU whose UUID cannot be read", xid)
                continue
            log.warning("critical XID %d on GPU %s", xid, uuid)
            self._ledger.record(XidEvent(uuid=uuid, xid=xid, at=self._clock()))
