"""The pod-resources client against a fake kubelet gRPC server on a unix socket."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from nodeagent.holders import PodResourcesHolders, holders_from_allocations
from nodeagent.podresources.client import (
    ClaimAllocation,
    DeviceAllocation,
    PodResourcesClient,
    PodResourcesError,
)
from nodeagent.reading import GpuReading, MigReading, NodeReading

pb: Any = importlib.import_module("nodeagent.podresources.api_pb2")
pb_grpc: Any = importlib.import_module("nodeagent.podresources.api_pb2_grpc")


class FakeKubelet(pb_grpc.PodResourcesListerServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.pods: list[Any] = []
        self.calls = 0

    def List(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method name
        self.calls += 1
        return pb.ListPodResourcesResponse(pod_resources=self.pods)

    def GetAllocatableResources(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.AllocatableResourcesResponse(
            devices=[
                pb.ContainerDevices(resource_name="nvidia.com/gpu", device_ids=["GPU-a", "GPU-b"]),
                pb.ContainerDevices(resource_name="example.com/nic", device_ids=["nic0"]),
            ],
            cpu_ids=[0, 1],
        )


def pod(ns: str, name: str, *containers: tuple[str, str, list[str]]) -> Any:
    return pb.PodResources(
        namespace=ns,
        name=name,
        containers=[
            pb.ContainerResources(
                name=c, devices=[pb.ContainerDevices(resource_name=r, device_ids=ids)]
            )
            for c, r, ids in containers
        ],
    )


@pytest.fixture
def kubelet(tmp_path: Path) -> Iterator[tuple[FakeKubelet, Path]]:
    sock = tmp_path / "kubelet.sock"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    fake = FakeKubelet()
    pb_grpc.add_PodResourcesListerServicer_to_server(fake, server)
    server.add_insecure_port(f"unix://{sock}")
    server.start()
    try:
        yield fake, sock
    finally:
        server.stop(grace=None)


def test_list_returns_each_containers_gpus(kubelet: tuple[FakeKubelet, Path]) -> None:
    fake, sock = kubelet
    fake.pods = [
        pod("ml", "llama-0", ("server", "nvidia.com/gpu", ["GPU-a", "GPU-b"])),
        pod("ml", "small", ("main", "nvidia.com/mig-1g.10gb", ["MIG-1"])),
        pod("net", "router", ("r", "example.com/nic", ["nic0"])),
    ]
    client = PodResourcesClient(sock)
    try:
        got = client.list("nvidia.com/")
        assert got == [
            DeviceAllocation("ml", "llama-0", "server", "nvidia.com/gpu", ("GPU-a", "GPU-b")),
            DeviceAllocation("ml", "small", "main", "nvidia.com/mig-1g.10gb", ("MIG-1",)),
        ]
        assert client.allocatable("nvidia.com/") == {"nvidia.com/gpu": ("GPU-a", "GPU-b")}
    finally:
        client.close()


def test_missing_socket_is_a_clear_error_and_the_client_recovers(tmp_path: Path) -> None:
    sock = tmp_path / "kubelet.sock"
    client = PodResourcesClient(sock, timeout_s=1.0)
    with pytest.raises(
        PodResourcesError, match=r"pod-resources List on .*kubelet.sock: UNAVAILABLE"
    ):
        client.list()
    # The kubelet comes (back): the next call reconnects.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    fake = FakeKubelet()
    fake.pods = [pod("a", "b", ("c", "nvidia.com/gpu", ["GPU-a"]))]
    pb_grpc.add_PodResourcesListerServicer_to_server(fake, server)
    server.add_insecure_port(f"unix://{sock}")
    server.start()
    try:
        assert [a.device_ids for a in client.list()] == [("GPU-a",)]
    finally:
        client.close()
        server.stop(grace=None)


def test_list_returns_what_dra_allocated_to_the_containers_claims(
    kubelet: tuple[FakeKubelet, Path],
) -> None:
    fake, sock = kubelet
    claim = pb.DynamicResource(
        claim_name="llama-0-gpus-x7",
        claim_namespace="ml",
        claim_resources=[
            pb.ClaimResource(
                cdi_devices=[pb.CDIDevice(name="k8s.gpu.nvidia.com/device=gpu-3")],
                driver_name="gpu.nvidia.com",
                pool_name="node-1",
                device_name="gpu-3",
            ),
            pb.ClaimResource(driver_name="nic.example.com", pool_name="node-1", device_name="n0"),
        ],
    )
    fake.pods = [
        pb.PodResources(
            namespace="ml",
            name="llama-0",
            containers=[pb.ContainerResources(name="server", dynamic_resources=[claim])],
        )
    ]
    client = PodResourcesClient(sock)
    try:
        devices, claimed = client.allocations("nvidia.com/", "gpu.nvidia.com")
        assert devices == []
        assert claimed == [
            ClaimAllocation("ml", "llama-0", "server", "gpu.nvidia.com", "node-1", "gpu-3")
        ]
        assert client.allocations("nvidia.com/")[1] == []  # no driver asked: none
    finally:
        client.close()


def reading() -> NodeReading:
    mig = MigReading("MIG-1", 1, 0, 10, 10, 0)
    return NodeReading(
        gpus=(
            GpuReading("GPU-a", 0, "H100", 80, 80, 0, minor=4),
            GpuReading("GPU-b", 1, "H100", 80, 80, 0, mig_enabled=True, mig_devices=(mig,)),
        ),
        observed_at=0.0,
    )


@pytest.mark.parametrize(
    ("claimed", "expected"),
    [
        pytest.param(
            [ClaimAllocation("ml", "p", "c", "gpu.nvidia.com", "n", "gpu-4")],
            {"GPU-a": "uid-p"},
            id="dra-device-by-minor-number",
        ),
        pytest.param(
            [ClaimAllocation("ml", "p", "c", "gpu.nvidia.com", "n", "gpu-0")],
            {},
            id="dra-name-is-the-minor-not-the-index",
        ),
        pytest.param(
            [ClaimAllocation("ml", "p", "c", "other.example.com", "n", "gpu-4")],
            {},
            id="another-drivers-device",
        ),
    ],
)
def test_holders_join_dra_devices_by_the_drivers_name(
    claimed: list[ClaimAllocation], expected: dict[str, str]
) -> None:
    uids = {("ml", "p"): "uid-p"}
    got = holders_from_allocations(
        [], reading().device_uuids(), lambda ns, n: uids.get((ns, n)), claimed
    )
    assert got == expected


@pytest.mark.parametrize(
    ("allocations", "expected"),
    [
        pytest.param(
            [DeviceAllocation("ml", "p", "c", "nvidia.com/gpu", ("GPU-a",))],
            {"GPU-a": "uid-p"},
            id="uuid-strategy",
        ),
        pytest.param(
            [DeviceAllocation("ml", "p", "c", "nvidia.com/gpu", ("1",))],
            {"GPU-b": "uid-p"},
            id="index-strategy",
        ),
        pytest.param(
            [DeviceAllocation("ml", "p", "c", "nvidia.com/mig-1g.10gb", ("MIG-1",))],
            {"MIG-1": "uid-p"},
            id="mig-device",
        ),
        pytest.param(
            [DeviceAllocation("ml", "unknown", "c", "nvidia.com/gpu", ("GPU-a",))],
            {},
            id="pod-not-seen-yet",
        ),
        pytest.param(
            [DeviceAllocation("ml", "p", "c", "nvidia.com/gpu", ("GPU-zzz",))],
            {},
            id="not-a-gpu-of-this-node",
        ),
    ],
)
def test_holders_join_devices_and_pods(
    allocations: list[DeviceAllocation], expected: dict[str, str]
) -> None:
    uids = {("ml", "p"): "uid-p"}
    got = holders_from_allocations(
        allocations, reading().device_uuids(), lambda ns, n: uids.get((ns, n))
    )
    assert got == expected


def test_holder_source_reports_none_when_the_kubelet_is_away(tmp_path: Path) -> None:
    source = PodResourcesHolders(
        PodResourcesClient(tmp_path / "none.sock", timeout_s=0.5), lambda *_: None
    )
    assert source.holders(reading()) is None
    assert not source.ok and "UNAVAILABLE" in source.last_error
