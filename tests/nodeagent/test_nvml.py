"""The NVML backend against a fake ``pynvml`` module (the port we cannot reach without a GPU).

The fake has the real module's function names, argument order, constants and error classes
(``NVMLError`` with a numeric ``value`` and one subclass per code); each test sets the fault it
needs on a fake GPU.
"""

# ruff: noqa: N802 - the fake's functions carry pynvml's own names

from __future__ import annotations

import threading
import time
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

from nodeagent.health import XidEvent
from nodeagent.nvml.backend import NvmlBackend, NvmlSettings
from nodeagent.nvml.calls import NvmlRestartRequiredError
from nodeagent.nvml.nvlink import normalize_bus_id
from nodeagent.retry import Backoff

GIB = 1024**3

NOT_SUPPORTED = 3
NOT_FOUND = 6
TIMEOUT = 10
LIBRARY_NOT_FOUND = 12
FUNCTION_NOT_FOUND = 13
GPU_IS_LOST = 15
LIB_RM_VERSION_MISMATCH = 18


class NVMLError(Exception):
    """Like pynvml's: ``NVMLError(code)`` builds the subclass for the code."""

    _by_code: dict[int, type[NVMLError]] = {}  # noqa: RUF012 - class registry, as in pynvml
    value: int

    def __new__(cls, value: int) -> NVMLError:
        sub = cls._by_code.get(value, cls) if cls is NVMLError else cls
        obj = Exception.__new__(sub)
        obj.value = value
        return obj

    def __init__(self, value: int) -> None:
        super().__init__(value)

    def __str__(self) -> str:
        return {
            NOT_SUPPORTED: "Not Supported",
            GPU_IS_LOST: "GPU is lost",
            LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
            FUNCTION_NOT_FOUND: "Function Not Found",
            TIMEOUT: "Timeout",
            NOT_FOUND: "Not Found",
        }.get(self.value, f"NVML error {self.value}")


for _code, _name in [
    (NOT_SUPPORTED, "NotSupported"),
    (NOT_FOUND, "NotFound"),
    (TIMEOUT, "Timeout"),
    (LIBRARY_NOT_FOUND, "LibraryNotFound"),
    (FUNCTION_NOT_FOUND, "FunctionNotFound"),
    (GPU_IS_LOST, "GpuIsLost"),
    (LIB_RM_VERSION_MISMATCH, "LibRmVersionMismatch"),
]:
    NVMLError._by_code[_code] = type(f"NVMLError_{_name}", (NVMLError,), {})


@dataclass
class Mem:
    total: int
    free: int
    used: int
    reserved: int = 0


@dataclass
class Proc:
    pid: int
    usedGpuMemory: int | None  # noqa: N815 - pynvml's attribute name


@dataclass
class Pci:
    busId: bytes  # noqa: N815


@dataclass
class FakeMig:
    uuid: str
    gi: int
    ci: int
    total: int
    used: int
    procs: list[Proc] = field(default_factory=list)


@dataclass
class FakeGpu:
    uuid: str
    index: int
    name: str = "NVIDIA H100 80GB HBM3"
    total: int = 80 * GIB
    used: int = 1 * GIB
    reserved: int = 512 * 1024**2
    bus: str = ""
    links: list[tuple[int, str, int]] = field(default_factory=list)  # (state, remote bus, type)
    procs: list[Proc] = field(default_factory=list)
    migs: list[FakeMig] | None = None
    memory_v2: bool = True
    lost: bool = False
    remapped: tuple[int, int, int, int] | None = (0, 0, 0, 0)
    ecc: int | None = 0


class FakeNvml:
    """State behind the fake module; ``module`` is what the backend gets."""

    def __init__(self, gpus: list[FakeGpu]) -> None:
        self.gpus = gpus
        for g in gpus:
            g.bus = g.bus or f"00000000:{0x18 + g.index:02X}:00.0"
        self.init_error: int | None = None
        self.calls: dict[str, int] = {}
        self.events: list[tuple[str, int]] = []
        self.module = self._build()

    def _gpu(self, handle: Any) -> FakeGpu:
        if isinstance(handle, FakeMig):
            raise AssertionError("a MIG handle where a GPU handle was expected")
        assert isinstance(handle, FakeGpu)
        if handle.lost:
            raise NVMLError(GPU_IS_LOST)
        return handle

    def _build(self) -> types.ModuleType:  # noqa: PLR0915 - one function per faked NVML call
        m = types.ModuleType("pynvml")
        f = self

        def counted(fn: Any) -> Any:
            def wrapper(*args: Any) -> Any:
                f.calls[fn.__name__] = f.calls.get(fn.__name__, 0) + 1
                return fn(*args)

            wrapper.__name__ = fn.__name__
            setattr(m, fn.__name__, wrapper)
            return wrapper

        m.NVMLError = NVMLError  # type: ignore[attr-defined]
        m.NVML_NVLINK_MAX_LINKS = 4  # type: ignore[attr-defined]

        @counted
        def nvmlInit() -> None:
            if f.init_error is not None:
                raise NVMLError(f.init_error)

        @counted
        def nvmlShutdown() -> None:
            return None

        @counted
        def nvmlSystemGetDriverVersion() -> bytes:
            return b"570.86.15"

        @counted
        def nvmlDeviceGetCount() -> int:
            return len(f.gpus)

        @counted
        def nvmlDeviceGetHandleByIndex(i: int) -> FakeGpu:
            return f.gpus[i]

        @counted
        def nvmlDeviceGetUUID(h: Any) -> str:
            if isinstance(h, FakeMig):
                return h.uuid
            return f._gpu(h).uuid

        @counted
        def nvmlDeviceGetIndex(h: Any) -> int:
            return f._gpu(h).index

        @counted
        def nvmlDeviceGetName(h: Any) -> bytes:
            return f._gpu(h).name.encode()

        @counted
        def nvmlDeviceGetPciInfo(h: Any) -> Pci:
            return Pci(f._gpu(h).bus.encode())

        @counted
        def nvmlDeviceGetNumaNodeId(h: Any) -> int:
            raise NVMLError(FUNCTION_NOT_FOUND)

        @counted
        def nvmlDeviceGetMemoryInfo(h: Any, version: int | None = None) -> Mem:
            if isinstance(h, FakeMig):
                return Mem(h.total, h.total - h.used, h.used)
            g = f._gpu(h)
            if version is not None:
                if not g.memory_v2:
                    raise NVMLError(FUNCTION_NOT_FOUND)
                return Mem(g.total, g.total - g.used - g.reserved, g.used, g.reserved)
            return Mem(g.total, g.total - g.used - g.reserved, g.used + g.reserved)

        @counted
        def nvmlDeviceGetMigMode(h: Any) -> list[int]:
            g = f._gpu(h)
            if g.migs is None:
                raise NVMLError(NOT_SUPPORTED)
            return [1, 1]

        @counted
        def nvmlDeviceGetMaxMigDeviceCount(h: Any) -> int:
            return 7

        @counted
        def nvmlDeviceGetMigDeviceHandleByIndex(h: Any, i: int) -> FakeMig:
            migs = f._gpu(h).migs or []
            if i >= len(migs):
                raise NVMLError(NOT_FOUND)
            return migs[i]

        @counted
        def nvmlDeviceGetGpuInstanceId(h: FakeMig) -> int:
            return h.gi

        @counted
        def nvmlDeviceGetComputeInstanceId(h: FakeMig) -> int:
            return h.ci

        @counted
        def nvmlDeviceGetComputeRunningProcesses(h: Any) -> list[Proc]:
            if isinstance(h, FakeMig):
                return h.procs
            return f._gpu(h).procs

        @counted
        def nvmlDeviceGetRemappedRows(h: Any) -> tuple[int, int, int, int]:
            g = f._gpu(h)
            if g.remapped is None:
                raise NVMLError(NOT_SUPPORTED)
            return g.remapped

        @counted
        def nvmlDeviceGetRetiredPagesPendingStatus(h: Any) -> int:
            raise NVMLError(NOT_SUPPORTED)

        @counted
        def nvmlDeviceGetTotalEccErrors(h: Any, error_type: int, counter: int) -> int:
            g = f._gpu(h)
            if g.ecc is None:
                raise NVMLError(NOT_SUPPORTED)
            return g.ecc

        @counted
        def nvmlDeviceGetNvLinkState(h: Any, link: int) -> int:
            g = f._gpu(h)
            if not g.links:
                raise NVMLError(NOT_SUPPORTED)
            if link >= len(g.links):
                raise NVMLError(2)  # InvalidArgument: no such link
            return g.links[link][0]

        @counted
        def nvmlDeviceGetNvLinkRemotePciInfo(h: Any, link: int) -> Pci:
            return Pci(f._gpu(h).links[link][1].encode())

        @counted
        def nvmlDeviceGetNvLinkRemoteDeviceType(h: Any, link: int) -> int:
            return f._gpu(h).links[link][2]

        @counted
        def nvmlDeviceGetP2PStatus(a: Any, b: Any, index: int) -> int:
            raise NVMLError(NOT_SUPPORTED)

        @counted
        def nvmlEventSetCreate() -> list[tuple[str, int]]:
            return f.events

        @counted
        def nvmlDeviceGetSupportedEventTypes(h: Any) -> int:
            return 0x8

        @counted
        def nvmlDeviceRegisterEvents(h: Any, types_: int, event_set: Any) -> None:
            return None

        @counted
        def nvmlEventSetWait_v2(event_set: list[tuple[str, int]], ms: int) -> Any:
            if not event_set:
                time.sleep(min(ms, 20) / 1000)
                raise NVMLError(TIMEOUT)
            uuid, xid = event_set.pop(0)
            gpu = next(g for g in f.gpus if g.uuid == uuid)
            return types.SimpleNamespace(device=gpu, eventData=xid)

        @counted
        def nvmlEventSetFree(event_set: Any) -> None:
            return None

        return m


def two_gpus(**kw: Any) -> FakeNvml:
    return FakeNvml([FakeGpu("GPU-aaaa", 0, **kw), FakeGpu("GPU-bbbb", 1, **kw)])


def backend(fake: FakeNvml, **kw: Any) -> NvmlBackend:
    return NvmlBackend(
        fake.module,
        backoff=Backoff(1.0, 8.0),
        start_event_thread=kw.pop("events", False),
        settings=NvmlSettings(**kw),
    )


def test_memory_info_v2_gives_free_used_and_reserved() -> None:
    fake = two_gpus()
    r = backend(fake).read(100.0)
    assert not r.error
    assert r.driver_version == "570.86.15"
    g = r.gpus[0]
    assert (g.total_bytes, g.used_bytes, g.reserved_bytes) == (80 * GIB, 1 * GIB, 512 * 1024**2)
    assert g.free_bytes == 80 * GIB - 1 * GIB - 512 * 1024**2
    assert g.pci_bus_id == "00000000:18:00.0" and g.healthy and g.product == "NVIDIA H100 80GB HBM3"


def test_memory_info_falls_back_to_v1_and_stops_asking_for_v2() -> None:
    fake = two_gpus(memory_v2=False)
    b = backend(fake)
    for t in (1.0, 2.0, 3.0):
        g = b.read(t).gpus[0]
        assert g.reserved_bytes is None  # v1 has no reserved field: absent, not guessed
        assert g.used_bytes == 1 * GIB + 512 * 1024**2
    # v2 asked once per GPU, then never again; v1 every poll.
    assert fake.calls["nvmlDeviceGetMemoryInfo"] == 2 + 3 * 2


def test_unsupported_field_is_absent_and_asked_once() -> None:
    fake = two_gpus(remapped=None, ecc=None)
    b = backend(fake)
    for t in range(5):
        r = b.read(float(t))
    assert all(g.numa_node is None and g.healthy for g in r.gpus)
    assert "GPU-aaaa/numaNode" in r.unsupported and "GPU-aaaa/remappedRows" in r.unsupported
    assert fake.calls["nvmlDeviceGetNumaNodeId"] == 2
    assert fake.calls["nvmlDeviceGetRemappedRows"] == 2
    assert fake.calls["nvmlDeviceGetTotalEccErrors"] == 2


def test_mig_devices_have_their_own_memory_and_processes() -> None:
    migs = [
        FakeMig("MIG-1111", gi=1, ci=0, total=20 * GIB, used=5 * GIB, procs=[Proc(41, 5 * GIB)]),
        FakeMig("MIG-2222", gi=2, ci=0, total=40 * GIB, used=0),
    ]
    fake = FakeNvml([FakeGpu("GPU-aaaa", 0, migs=migs, procs=[Proc(1, GIB)])])
    g = backend(fake).read(1.0).gpus[0]
    assert g.mig_enabled
    assert [(m.uuid, m.gpu_instance_id, m.total_bytes, m.free_bytes) for m in g.mig_devices] == [
        ("MIG-1111", 1, 20 * GIB, 15 * GIB),
        ("MIG-2222", 2, 40 * GIB, 40 * GIB),
    ]
    assert g.mig_devices[0].processes[0].pid == 41
    assert g.processes == ()  # per MIG device instead of per GPU


class NVMLLibraryMismatchError(Exception):
    """pynvml's error when an unversioned wrapper's newest variant is missing from the driver."""


def test_an_older_driver_falls_back_to_the_older_process_query() -> None:
    fake = FakeNvml([FakeGpu("GPU-aaaa", 0, procs=[Proc(10, 3 * GIB)])])
    m = fake.module
    m.NVMLLibraryMismatchError = NVMLLibraryMismatchError  # type: ignore[attr-defined]
    v2 = m.nvmlDeviceGetComputeRunningProcesses

    def newest(h: Any) -> list[Proc]:
        raise NVMLLibraryMismatchError("use nvmlDeviceGetComputeRunningProcesses_v2")

    m.nvmlDeviceGetComputeRunningProcesses = newest  # type: ignore[attr-defined]
    m.nvmlDeviceGetComputeRunningProcesses_v2 = v2  # type: ignore[attr-defined]
    b = backend(fake)
    for t in (1.0, 2.0):
        g = b.read(t).gpus[0]
        assert [(p.pid, p.bytes) for p in g.processes] == [(10, 3 * GIB)] and g.healthy
    assert "GPU-aaaa/processes" in b.read(3.0).unsupported  # the newest one is not asked again


def test_processes_are_read_with_their_memory() -> None:
    fake = FakeNvml([FakeGpu("GPU-aaaa", 0, procs=[Proc(10, 3 * GIB), Proc(11, None)])])
    g = backend(fake).read(1.0).gpus[0]
    assert [(p.pid, p.bytes) for p in g.processes] == [(10, 3 * GIB), (11, 0)]


def test_lost_gpu_is_unhealthy_without_old_numbers_then_recovers() -> None:
    fake = two_gpus()
    b = backend(fake)
    assert b.read(0.0).gpus[0].free_bytes is not None
    fake.gpus[0].lost = True
    r = b.read(1.0)
    lost, other = r.gpus
    assert not lost.healthy and "GPU is lost" in lost.reason
    assert lost.free_bytes is None and lost.used_bytes is None  # never the previous reading
    assert other.healthy and other.free_bytes is not None  # the other GPU keeps reporting
    fake.gpus[0].lost = False
    # The backend re-initialises NVML (after its backoff) and re-enumerates by UUID.
    r = b.read(10.0)
    assert r.gpus[0].healthy and r.gpus[0].free_bytes is not None
    assert fake.calls["nvmlShutdown"] == 1 and fake.calls["nvmlInit"] == 2


def test_gpu_missing_after_reinit_stays_listed_as_unhealthy() -> None:
    fake = two_gpus()
    b = backend(fake)
    b.read(0.0)
    fake.gpus[1].lost = True
    b.read(1.0)
    fake.gpus.pop(1)  # fell off the bus: not enumerated any more
    r = b.read(10.0)
    assert [g.uuid for g in r.gpus] == ["GPU-aaaa", "GPU-bbbb"]
    assert not r.gpus[1].healthy and "not visible" in r.gpus[1].reason


@pytest.mark.parametrize(
    ("remapped", "ecc", "reason"),
    [
        pytest.param((0, 1, 1, 0), 0, "row remapping pending", id="remap-pending"),
        pytest.param((0, 1, 0, 1), 0, "row remapping failed", id="remap-failed"),
        pytest.param((0, 0, 0, 0), 2, "2 uncorrectable ECC", id="ecc"),
        pytest.param((5, 0, 0, 0), 0, "", id="corrected-only-is-fine"),
    ],
)
def test_memory_faults_make_a_gpu_unhealthy(
    remapped: tuple[int, int, int, int], ecc: int, reason: str
) -> None:
    fake = FakeNvml([FakeGpu("GPU-aaaa", 0, remapped=remapped, ecc=ecc)])
    g = backend(fake).read(1.0).gpus[0]
    assert g.healthy == (not reason)
    assert reason in g.reason


def test_xid_event_marks_the_gpu_unhealthy_until_the_hold_passes() -> None:
    fake = two_gpus()
    b = backend(fake, events=True, xid_hold_s=2.0, event_wait_ms=20)
    try:
        assert b.read(time.time()).gpus[1].healthy
        fake.events.append(("GPU-bbbb", 13))  # application error: ignored
        fake.events.append(("GPU-bbbb", 79))  # fell off the bus: critical
        deadline = time.time() + 5
        while b.xids.total < 1 and time.time() < deadline:
            time.sleep(0.02)
        assert b.xids.total == 1
        now = time.time()
        g = b.read(now).gpus[1]
        assert not g.healthy and g.reason.startswith("XID 79 at ")
        assert b.read(now).gpus[0].healthy
        assert b.read(now + 3.0).gpus[1].healthy  # the cause cleared: healthy again
    finally:
        b.close()


def test_xid_reason_is_stable_across_polls() -> None:
    fake = two_gpus()
    b = backend(fake, xid_hold_s=60.0)
    b.xids.record(XidEvent("GPU-aaaa", 48, at=100.0))
    assert b.read(101.0).gpus[0].reason == b.read(130.0).gpus[0].reason  # no churn of writes


def test_nvml_missing_at_start_means_not_ready_then_retry_with_backoff() -> None:
    fake = two_gpus()
    fake.init_error = LIBRARY_NOT_FOUND
    b = backend(fake)
    r = b.read(0.0)
    assert not b.ready and r.error.startswith("NVML unavailable:") and r.gpus == ()
    b.read(0.1)  # inside the backoff: no new attempt
    assert fake.calls["nvmlInit"] == 1
    fake.init_error = None
    r = b.read(5.0)
    assert b.ready and not r.error and len(r.gpus) == 2


def test_nvml_failing_later_reports_known_gpus_as_unknown() -> None:
    fake = two_gpus()
    b = backend(fake)
    b.read(0.0)
    fake.gpus[0].lost = fake.gpus[1].lost = True
    b.read(1.0)
    fake.init_error = LIBRARY_NOT_FOUND
    r = b.read(10.0)
    assert r.error.startswith("NVML unavailable")
    assert [g.free_bytes for g in r.gpus] == [None, None]
    assert not any(g.healthy for g in r.gpus)


def test_driver_library_mismatch_requires_a_restart() -> None:
    fake = two_gpus()
    fake.init_error = LIB_RM_VERSION_MISMATCH
    with pytest.raises(NvmlRestartRequiredError):
        backend(fake).read(0.0)


def test_direct_nvlink_pairs_become_peers() -> None:
    gpus = [FakeGpu(f"GPU-{i}", i) for i in range(4)]
    bus = [f"00000000:{0x18 + i:02X}:00.0" for i in range(4)]
    gpus[0].links = [(1, bus[1], 0), (0, bus[2], 0)]  # second link down
    gpus[1].links = [(1, bus[0], 0)]
    gpus[2].links = [(1, "0000:1B:00.0", 0)]  # 4-digit domain, as busIdLegacy writes it
    gpus[3].links = [(1, bus[2], 0)]
    r = backend(FakeNvml(gpus)).read(1.0)
    assert [sorted(g.nvlink_peers) for g in r.gpus] == [
        ["GPU-1"],
        ["GPU-0"],
        ["GPU-3"],
        ["GPU-2"],
    ]


def test_nvswitch_systems_are_fully_connected() -> None:
    gpus = [FakeGpu(f"GPU-{i}", i) for i in range(8)]
    for g in gpus:
        g.links = [(1, f"00000000:{0xC0 + n:02X}:00.0", 2) for n in range(4)]
    r = backend(FakeNvml(gpus)).read(1.0)
    for reading in r.gpus:
        assert reading.nvlink_peers == frozenset(f"GPU-{i}" for i in range(8)) - {reading.uuid}


def test_no_nvlink_means_no_peers() -> None:
    r = backend(two_gpus()).read(1.0)
    assert all(g.nvlink_peers == frozenset() for g in r.gpus)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(b"00000000:18:00.0", "00000000:18:00.0", id="nvml-8-digit"),
        pytest.param("0000:1b:00.0", "00000000:1B:00.0", id="legacy-4-digit-lower"),
        pytest.param("00000000:C1:00.0\x00", "00000000:C1:00.0", id="nul-padded"),
        pytest.param("garbage", "GARBAGE", id="unparseable-kept"),
    ],
)
def test_bus_ids_are_normalized(raw: object, expected: str) -> None:
    assert normalize_bus_id(raw) == expected


def test_reads_are_thread_safe() -> None:
    b = backend(two_gpus())
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for t in range(50):
                b.read(float(t))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
