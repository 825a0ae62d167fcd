"""Joining a reading with the kubelet's view into the published state and status."""

from __future__ import annotations

from typing import Any

import pytest

from nodeagent.reading import GpuReading, MigReading, NodeReading, ProcessUse
from nodeagent.state import Attribution, build_node_state, status_of
from placement.model import MigDevice, PodMemory
from placement.nodegpustate import decode_status

GIB = 1024**3


def gpu(uuid: str = "GPU-a", *procs: ProcessUse, **kw: Any) -> GpuReading:
    return GpuReading(
        uuid, 0, "H100", 80 * GIB, 60 * GIB, 20 * GIB, reserved_bytes=GIB, processes=procs, **kw
    )


@pytest.mark.parametrize(
    ("g", "attribution", "holder", "pods"),
    [
        pytest.param(
            gpu(
                "GPU-a",
                ProcessUse(5 * GIB, pid=10),
                ProcessUse(GIB, pid=11),
                ProcessUse(GIB, pid=99),
            ),
            Attribution(holders={"GPU-a": "uid-1"}, pod_of_pid={10: "uid-1", 11: "uid-1"}),
            "uid-1",
            (PodMemory("uid-1", 6 * GIB),),
            id="pod-resources-and-cgroups",
        ),
        pytest.param(
            gpu("GPU-a", ProcessUse(5 * GIB, pid=10), ProcessUse(GIB, pid=99)),
            Attribution(holders=None, pod_of_pid={10: "uid-1"}),
            "uid-1",
            (PodMemory("uid-1", 5 * GIB),),
            id="no-pod-resources-one-pod-holds",
        ),
        pytest.param(
            gpu("GPU-a", ProcessUse(GIB, pid=10), ProcessUse(GIB, pid=11)),
            Attribution(holders=None, pod_of_pid={10: "uid-1", 11: "uid-2"}),
            None,
            (PodMemory("uid-1", GIB), PodMemory("uid-2", GIB)),
            id="no-pod-resources-two-pods-no-holder",
        ),
        pytest.param(
            gpu("GPU-a"),
            Attribution(holders={}, pod_of_pid={}),
            None,
            (),
            id="free-gpu",
        ),
        pytest.param(
            gpu("GPU-a", ProcessUse(GIB, pod_uid="sim-1"), holder_pod_uid="sim-1"),
            Attribution(),
            "sim-1",
            (PodMemory("sim-1", GIB),),
            id="simulated-knows-the-pod",
        ),
        pytest.param(
            gpu(
                "GPU-a",
                mig_enabled=True,
                mig_devices=(
                    MigReading(
                        "MIG-1", 1, 0, 10 * GIB, 5 * GIB, 5 * GIB, (ProcessUse(5 * GIB, pid=7),)
                    ),
                ),
            ),
            Attribution(holders={"MIG-1": "uid-m"}, pod_of_pid={7: "uid-m"}),
            None,
            (PodMemory("uid-m", 5 * GIB),),
            id="mig-gpu-has-no-whole-gpu-holder",
        ),
    ],
)
def test_attribution(
    g: GpuReading, attribution: Attribution, holder: str | None, pods: tuple[PodMemory, ...]
) -> None:
    state = build_node_state("n1", NodeReading((g,), observed_at=5.0), attribution)
    (gs,) = state.gpus
    assert gs.holder_pod_uid == holder
    assert gs.pod_memory == pods


def test_status_round_trips_and_carries_reserved_and_driver() -> None:
    reading = NodeReading((gpu(),), observed_at=1_700_000_000.25, driver_version="570.86.15")
    state = build_node_state("n1", reading, Attribution(holders={}), local_disk_bytes_per_s=2e9)
    status = status_of(state, reading)
    assert status["gpus"][0]["memory"].get("reservedBytes") == GIB
    assert status.get("driverVersion") == "570.86.15"
    back = decode_status("n1", status, lease_renewed_at=None)
    assert back.gpus == state.gpus and back.observed_at == pytest.approx(state.observed_at)


def test_nvml_error_is_published_as_agent_error() -> None:
    reading = NodeReading((), observed_at=1.0, error="NVML unavailable: Driver Not Loaded")
    status = status_of(build_node_state("n1", reading, Attribution()), reading)
    assert (
        status["nvmlAvailable"] is False
        and status.get("error") == "NVML unavailable: Driver Not Loaded"
    )


def test_mig_devices_are_published_with_their_own_memory() -> None:
    g = gpu(
        "GPU-a",
        mig_enabled=True,
        mig_devices=(
            MigReading("MIG-1", 1, 0, 10 * GIB, 4 * GIB, 6 * GIB),
            MigReading("MIG-2", 2, None, None, 3 * GIB, None),  # memory unreadable
        ),
    )
    reading = NodeReading((g,), observed_at=5.0)
    state = build_node_state("n1", reading, Attribution())
    assert state.gpus[0].mig_devices == (
        MigDevice("MIG-1", 1, 0, 10 * GIB, 4 * GIB, 6 * GIB),
        MigDevice("MIG-2", 2, None),
    )
    status = status_of(state, reading)
    assert status["gpus"][0]["migDevices"][1] == {
        "uuid": "MIG-2",
        "gpuInstanceId": 2,
        "computeInstanceId": None,
    }
    assert decode_status("n1", status, lease_renewed_at=None).gpus == state.gpus
