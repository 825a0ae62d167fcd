"""GPU health rules: what an NVML error means, which XID events matter, and for how long.

Health here is recoverable by design: a GPU is unhealthy only while its cause is present (an
error on this poll, a pending row remap, a critical XID seen within the hold time), so a GPU
comes back by itself when the cause clears instead of staying out until the agent restarts.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

# NVML return codes (nvml.h); the numbers are the API, the Python error classes are generated
# from them, so classify by number.
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_POWER = 8
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_IRQ_ISSUE = 11
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_CORRUPTED_INFOROM = 14
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25
NVML_ERROR_DEPRECATED = 26
NVML_ERROR_GPU_NOT_FOUND = 28
NVML_ERROR_UNKNOWN = 999

DEFAULT_IGNORED_XIDS = frozenset({13, 31, 43, 45, 68, 109})
"""XIDs caused by applications rather than the GPU (the NVIDIA device plugin's default list)."""


class ErrorKind(enum.Enum):
    """What the agent does about an NVML error."""

    UNSUPPORTED = "unsupported"
    """The driver or GPU does not offer the field: publish it absent, do not ask again."""
    DEVICE_LOST = "device-lost"
    """The GPU is unusable: mark it unhealthy, re-initialise NVML, re-enumerate by UUID."""
    NVML_DOWN = "nvml-down"
    """NVML itself is not there: readiness false, retry with backoff, publish the error."""
    RESTART = "restart"
    """The driver changed under the running agent: exit and let Kubernetes restart it."""
    TRANSIENT = "transient"
    """Anything else: the value is unknown on this poll only."""


_KINDS: dict[int, ErrorKind] = {
    NVML_ERROR_NOT_SUPPORTED: ErrorKind.UNSUPPORTED,
    NVML_ERROR_NO_PERMISSION: ErrorKind.UNSUPPORTED,
    NVML_ERROR_FUNCTION_NOT_FOUND: ErrorKind.UNSUPPORTED,
    NVML_ERROR_NOT_FOUND: ErrorKind.UNSUPPORTED,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH: ErrorKind.UNSUPPORTED,
    NVML_ERROR_DEPRECATED: ErrorKind.UNSUPPORTED,
    NVML_ERROR_GPU_IS_LOST: ErrorKind.DEVICE_LOST,
    NVML_ERROR_RESET_REQUIRED: ErrorKind.DEVICE_LOST,
    NVML_ERROR_UNKNOWN: ErrorKind.DEVICE_LOST,
    NVML_ERROR_IRQ_ISSUE: ErrorKind.DEVICE_LOST,
    NVML_ERROR_CORRUPTED_INFOROM: ErrorKind.DEVICE_LOST,
    NVML_ERROR_INSUFFICIENT_POWER: ErrorKind.DEVICE_LOST,
    NVML_ERROR_GPU_NOT_FOUND: ErrorKind.DEVICE_LOST,
    NVML_ERROR_UNINITIALIZED: ErrorKind.NVML_DOWN,
    NVML_ERROR_DRIVER_NOT_LOADED: ErrorKind.NVML_DOWN,
    NVML_ERROR_LIBRARY_NOT_FOUND: ErrorKind.NVML_DOWN,
    NVML_ERROR_LIB_RM_VERSION_MISMATCH: ErrorKind.RESTART,
}


def classify(code: int) -> ErrorKind:
    """The action for NVML return code ``code`` (pure)."""
    return _KINDS.get(code, ErrorKind.TRANSIENT)


def is_critical_xid(xid: int, ignored: frozenset[int] = DEFAULT_IGNORED_XIDS) -> bool:
    """Whether an XID event says the GPU itself is at fault (pure)."""
    return xid not in ignored


@dataclass(frozen=True, slots=True)
class XidEvent:
    """A critical XID reported for one GPU (or MIG device, keyed by its parent GPU's UUID)."""

    uuid: str
    xid: int
    at: float


class XidLedger:
    """The last critical XID per GPU, written by the event thread and read by each poll.

    An XID marks its GPU unhealthy for ``hold_s`` seconds after the latest event; a GPU that
    stays quiet that long is trusted again (its other checks still apply).
    """

    def __init__(self, hold_s: float) -> None:
        self._hold_s = hold_s
        self._last: dict[str, XidEvent] = {}
        self._lock = threading.Lock()
        self.total = 0

    def record(self, event: XidEvent) -> None:
        """Remember ``event`` (thread-safe)."""
        with self._lock:
            self._last[event.uuid] = event
            self.total += 1

    def reason(self, uuid: str, now: float) -> str:
        """Why ``uuid`` is unhealthy because of an XID at ``now``, or "" when it is not."""
        with self._lock:
            ev = self._last.get(uuid)
        if ev is None or now - ev.at >= self._hold_s:
            return ""
        at = datetime.fromtimestamp(ev.at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"XID {ev.xid} at {at} (unhealthy until {self._hold_s:.0f}s after the last one)"
