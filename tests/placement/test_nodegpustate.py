"""The NodeGPUState codec: encode/decode round trip, and decode errors that list every field."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from placement.fields import InputError
from placement.model import GIB, CachedModel, GpuState, MigDevice, NodeState, PodMemory
from placement.nodegpustate import (
    MAX_REPORT_BYTES,
    ReportError,
    decode_status,
    encode_status,
    format_time,
    parse_time,
)

OBSERVED = 1_700_000_000.123456

NODE = NodeState(
    name="h100-0",
    gpus=(
        GpuState(
            uuid="GPU-aaa",
            index=0,
            product="NVIDIA-H100-80GB-HBM3",
            total_bytes=80 * GIB,
            free_bytes=10 * GIB,
            used_bytes=70 * GIB,
            healthy=True,
            nvlink_peers=frozenset({"GPU-bbb"}),
            holder_pod_uid="pod-1",
            pod_memory=(PodMemory("pod-1", 69 * GIB), PodMemory("pod-2", GIB)),
            pci_bus_id="00000000:18:00.0",
            numa_node=0,
        ),
        GpuState(
            uuid="GPU-bbb",
            index=1,
            product="NVIDIA-H100-80GB-HBM3",
            total_bytes=80 * GIB,
            free_bytes=None,
            used_bytes=None,
            healthy=False,
            unhealthy_reason="XID 79: GPU has fallen off the bus",
            mig_enabled=True,
            nvlink_peers=frozenset({"GPU-aaa"}),
            mig_devices=(
                MigDevice(
                    uuid="MIG-1111",
                    gpu_instance_id=1,
                    compute_instance_id=0,
                    total_bytes=20 * GIB,
                    free_bytes=5 * GIB,
                    used_bytes=15 * GIB,
                ),
                MigDevice(uuid="MIG-2222", gpu_instance_id=2, compute_instance_id=None),
            ),
        ),
    ),
    observed_at=OBSERVED,
    lease_renewed_at=OBSERVED + 3,
    lease_duration_s=40.0,
    cached_models=(CachedModel("meta-llama/Llama-3.1-70B-Instruct", 141 * GIB),),
    local_disk_bytes_per_s=2.0 * GIB,
    remote_bytes_per_s=None,
)


def test_round_trip_through_json() -> None:
    wire = json.loads(json.dumps(encode_status(NODE, driver_version="550.54")))
    assert wire["driverVersion"] == "550.54"
    assert wire["observedAt"] == "2023-11-14T22:13:20.123456Z"
    back = decode_status("h100-0", wire, lease_renewed_at=OBSERVED + 3, lease_duration_s=40.0)
    assert back == NODE


def test_round_trip_of_an_agent_error() -> None:
    broken = NodeState("n", (), OBSERVED, None, agent_error="NVML unavailable: no driver")
    wire = encode_status(broken)
    assert wire["nvmlAvailable"] is False
    assert wire["error"] == "NVML unavailable: no driver"
    assert decode_status("n", wire, lease_renewed_at=None) == broken


def test_unavailable_without_a_message_reads_as_an_error() -> None:
    wire = {"observedAt": "2024-01-01T00:00:00Z", "nvmlAvailable": False, "gpus": []}
    assert decode_status("n", wire, lease_renewed_at=None).agent_error == "NVML unavailable"


def test_minimal_report() -> None:
    wire = {
        "observedAt": "2024-01-01T00:00:00+00:00",
        "gpus": [
            {
                "uuid": "GPU-1",
                "index": 0,
                "product": "P",
                "memory": {"totalBytes": 1},
                "healthy": True,
            }
        ],
    }
    state = decode_status("n", wire, lease_renewed_at=5.0)
    assert state.gpus == (GpuState("GPU-1", 0, "P", 1, None),)
    assert state.observed_at == 1704067200.0
    assert state.lease_renewed_at == 5.0


def valid() -> dict[str, Any]:
    return copy.deepcopy(dict(encode_status(NODE)))


Mutation = Callable[[dict[str, Any]], None]


def set_path(path: str, value: object) -> Mutation:
    """A mutation that sets ``a.b[1].c`` style ``path`` to ``value``."""

    def mutate(status: dict[str, Any]) -> None:
        target: Any = status
        parts = path.replace("]", "").replace("[", ".").split(".")
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        last = parts[-1]
        if value is DELETE:
            del target[last]
        elif last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


DELETE = object()

BAD_FIELDS = [
    pytest.param(
        set_path("observedAt", DELETE), "status.observedAt: missing", id="observed-missing"
    ),
    pytest.param(
        set_path("observedAt", "yesterday"),
        "status.observedAt: 'yesterday' is not an RFC 3339 time",
        id="observed-garbage",
    ),
    pytest.param(
        set_path("observedAt", "2024-01-01T00:00:00"),
        "status.observedAt: '2024-01-01T00:00:00' is not an RFC 3339 time",
        id="observed-without-offset",
    ),
    pytest.param(
        set_path("gpus", {}), "status.gpus: expected a list, got a mapping", id="gpus-type"
    ),
    pytest.param(set_path("gpus", DELETE), "status.gpus: missing", id="gpus-missing"),
    pytest.param(
        set_path("gpus[1]", "GPU-x"),
        "status.gpus[1]: expected a mapping, got 'GPU-x'",
        id="gpu-type",
    ),
    pytest.param(
        set_path("gpus[0].memory.totalBytes", "80Gi"),
        "status.gpus[0].memory.totalBytes: expected a whole number, got '80Gi'",
        id="total-string",
    ),
    pytest.param(
        set_path("gpus[0].memory.totalBytes", 8.0e10),
        "status.gpus[0].memory.totalBytes: expected a whole number, got 80000000000.0",
        id="total-float",
    ),
    pytest.param(
        set_path("gpus[0].memory.freeBytes", -1),
        f"status.gpus[0].memory.freeBytes: expected a whole number 0..{MAX_REPORT_BYTES}, got -1",
        id="free-negative",
    ),
    pytest.param(
        set_path("gpus[0].memory.usedBytes", MAX_REPORT_BYTES + 1),
        f"status.gpus[0].memory.usedBytes: expected a whole number 0..{MAX_REPORT_BYTES}, got "
        f"{MAX_REPORT_BYTES + 1}",
        id="used-too-large",
    ),
    pytest.param(
        set_path("gpus[0].memory", DELETE), "status.gpus[0].memory: missing", id="memory-missing"
    ),
    pytest.param(
        set_path("gpus[0].healthy", "yes"),
        "status.gpus[0].healthy: expected true or false, got 'yes'",
        id="healthy-type",
    ),
    pytest.param(
        set_path("gpus[0].index", True),
        "status.gpus[0].index: expected a whole number, got True",
        id="index-bool",
    ),
    pytest.param(
        set_path("gpus[1].index", 0),
        "status.gpus[1].index: 0 repeats status.gpus[0]",
        id="dup-index",
    ),
    pytest.param(
        set_path("gpus[0].index", -1),
        "status.gpus[0].index: -1 must not be negative",
        id="neg-index",
    ),
    pytest.param(
        set_path("gpus[1].uuid", "GPU-aaa"),
        "status.gpus[1].uuid: 'GPU-aaa' repeats status.gpus[0]",
        id="dup-uuid",
    ),
    pytest.param(
        set_path("gpus[1].uuid", ""), "status.gpus[1].uuid: must not be empty", id="empty-uuid"
    ),
    pytest.param(
        set_path("gpus[0].nvlinkPeers", ["GPU-bbb", 7]),
        "status.gpus[0].nvlinkPeers[1]: expected a GPU UUID, got 7",
        id="peer-type",
    ),
    pytest.param(
        set_path("gpus[0].pods[1]", "pod-2"),
        "status.gpus[0].pods[1]: expected a mapping, got 'pod-2'",
        id="pod-type",
    ),
    pytest.param(
        set_path("gpus[0].pods[0].bytes", -5),
        "status.gpus[0].pods[0].bytes: expected a whole number 0..9007199254740992, got -5",
        id="pod-bytes-negative",
    ),
    pytest.param(
        set_path("gpus[1].migDevices", {"uuid": "MIG-1"}),
        "status.gpus[1].migDevices: expected a list, got a mapping",
        id="mig-devices-type",
    ),
    pytest.param(
        set_path("gpus[1].migDevices[0]", "MIG-1111"),
        "status.gpus[1].migDevices[0]: expected a mapping, got 'MIG-1111'",
        id="mig-device-type",
    ),
    pytest.param(
        set_path("gpus[1].migDevices[1].uuid", "MIG-1111"),
        "status.gpus[1].migDevices[1].uuid: 'MIG-1111' repeats status.gpus[1].migDevices[0]",
        id="mig-dup-uuid",
    ),
    pytest.param(
        set_path("gpus[1].migDevices[0].uuid", ""),
        "status.gpus[1].migDevices[0].uuid: must not be empty",
        id="mig-empty-uuid",
    ),
    pytest.param(
        set_path("gpus[1].migDevices[0].uuid", DELETE),
        "status.gpus[1].migDevices[0].uuid: missing",
        id="mig-uuid-missing",
    ),
    pytest.param(
        set_path("gpus[1].migDevices[0].gpuInstanceId", -1),
        "status.gpus[1].migDevices[0].gpuInstanceId: expected a whole number >= 0, got -1",
        id="mig-negative-instance",
    ),
    pytest.param(
        set_path("gpus[1].migDevices[0].computeInstanceId", "0"),
        "status.gpus[1].migDevices[0].computeInstanceId: expected a whole number, got '0'",
        id="mig-instance-type",
    ),
    pytest.param(
        set_path("gpus[1].migDevices[0].memory.totalBytes", DELETE),
        "status.gpus[1].migDevices[0].memory.totalBytes: missing",
        id="mig-total-missing",
    ),
    pytest.param(
        set_path("gpus[1].migDevices[0].memory.freeBytes", MAX_REPORT_BYTES + 1),
        f"status.gpus[1].migDevices[0].memory.freeBytes: expected a whole number 0..{MAX_REPORT_BYTES}",
        id="mig-free-too-large",
    ),
    pytest.param(
        set_path("cachedModels[0].bytes", True),
        "status.cachedModels[0].bytes: expected a whole number, got True",
        id="cached-bytes-bool",
    ),
    pytest.param(
        set_path("cachedModels[0]", 3),
        "status.cachedModels[0]: expected a mapping, got 3",
        id="cached-type",
    ),
    pytest.param(
        set_path("bandwidth.localDiskBytesPerSecond", "fast"),
        "status.bandwidth.localDiskBytesPerSecond: expected a number, got 'fast'",
        id="bandwidth-type",
    ),
    pytest.param(
        set_path("bandwidth.remoteBytesPerSecond", -1.0),
        "status.bandwidth.remoteBytesPerSecond: expected a number >= 0.0, got -1.0",
        id="bandwidth-negative",
    ),
    pytest.param(
        set_path("bandwidth.remoteBytesPerSecond", float("nan")),
        "status.bandwidth.remoteBytesPerSecond: expected a number, got nan",
        id="bandwidth-nan",
    ),
    pytest.param(
        set_path("nvmlAvailable", "no"),
        "status.nvmlAvailable: expected true or false, got 'no'",
        id="nvml-type",
    ),
]


@pytest.mark.parametrize(("mutate", "problem"), BAD_FIELDS)
def test_decode_names_the_bad_field(mutate: Mutation, problem: str) -> None:
    status = valid()
    mutate(status)
    with pytest.raises(ReportError) as info:
        decode_status("h100-0", status, lease_renewed_at=None)
    assert info.value.source == "NodeGPUState h100-0"
    assert str(info.value).startswith("NodeGPUState h100-0:")
    assert any(str(p).startswith(problem) for p in info.value.problems), info.value.problems


def test_decode_lists_every_bad_field_at_once() -> None:
    status = valid()
    for mutate in (
        set_path("observedAt", "2024-01-01T00:00:00"),
        set_path("nvmlAvailable", "no"),
        set_path("gpus[0].memory.totalBytes", "80Gi"),
        set_path("gpus[1].index", 0),
        set_path("gpus[1].healthy", DELETE),
        set_path("bandwidth.remoteBytesPerSecond", -1.0),
    ):
        mutate(status)
    with pytest.raises(ReportError) as info:
        decode_status("h100-0", status, lease_renewed_at=None)
    assert [str(p) for p in info.value.problems] == [
        "status.observedAt: '2024-01-01T00:00:00' is not an RFC 3339 time",
        "status.nvmlAvailable: expected true or false, got 'no'",
        "status.gpus[0].memory.totalBytes: expected a whole number, got '80Gi'",
        "status.gpus[1].index: 0 repeats status.gpus[0]",
        "status.gpus[1].healthy: missing (required)",
        "status.bandwidth.remoteBytesPerSecond: expected a number >= 0.0, got -1.0",
    ]
    assert str(info.value) == "NodeGPUState h100-0:\n" + "\n".join(
        f"  {p}" for p in info.value.problems
    )
    assert isinstance(info.value, InputError)


@pytest.mark.parametrize("status", [pytest.param([], id="list"), pytest.param("x", id="string")])
def test_decode_rejects_a_status_that_is_not_an_object(status: Any) -> None:
    with pytest.raises(ReportError, match=r"^NodeGPUState n: status: expected a mapping, got "):
        decode_status("n", status, lease_renewed_at=None)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("1970-01-01T00:00:00Z", 0.0, id="epoch"),
        pytest.param("2024-01-01T01:00:00+01:00", 1704067200.0, id="offset"),
        pytest.param("2024-01-01T00:00:00.5z", 1704067200.5, id="lower-z-fraction"),
    ],
)
def test_parse_time(text: str, seconds: float) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("2024-01-01T00:00:00", id="no-offset"),
        pytest.param("2024-01-01", id="date-only"),
        pytest.param("soon", id="garbage"),
    ],
)
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


def test_format_time_keeps_microseconds() -> None:
    assert format_time(OBSERVED) == "2023-11-14T22:13:20.123456Z"
    assert parse_time(format_time(OBSERVED)) == OBSERVED
