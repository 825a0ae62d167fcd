"""The pod-resources replies read from the wire format, against the protobuf runtime's own
encoding: every field the agent reads, the fields it skips, and bytes that are no message."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from nodeagent.podresources.wire import (
    Container,
    Devices,
    Pod,
    WireError,
    allocatable_reply,
    fields,
    list_reply,
)

pb: Any = importlib.import_module("nodeagent.podresources.api_pb2")


def _devices(resource: str, *ids: str, numa: int | None = None) -> Any:
    topology = pb.TopologyInfo(nodes=[pb.NUMANode(ID=numa)]) if numa is not None else None
    return pb.ContainerDevices(resource_name=resource, device_ids=list(ids), topology=topology)


LIST = {
    "empty-reply": (pb.ListPodResourcesResponse(), ()),
    "a-pod-with-gpus": (
        pb.ListPodResourcesResponse(
            pod_resources=[
                pb.PodResources(
                    name="llama-0",
                    namespace="ml",
                    containers=[
                        pb.ContainerResources(
                            name="server", devices=[_devices("nvidia.com/gpu", "GPU-a", "GPU-b")]
                        )
                    ],
                )
            ]
        ),
        (
            Pod(
                "ml",
                "llama-0",
                (Container("server", (Devices("nvidia.com/gpu", ("GPU-a", "GPU-b")),)),),
            ),
        ),
    ),
    # CPU IDs, memory and NUMA topology are fields the agent does not read: skipped.
    "fields-the-agent-skips": (
        pb.ListPodResourcesResponse(
            pod_resources=[
                pb.PodResources(
                    name="p",
                    namespace="n",
                    containers=[
                        pb.ContainerResources(
                            name="c",
                            devices=[_devices("nvidia.com/mig-1g.10gb", "MIG-1", numa=1)],
                            cpu_ids=[0, 1, 2**40],
                            memory=[pb.ContainerMemory(memory_type="memory", size=2**33)],
                        )
                    ],
                )
            ]
        ),
        (Pod("n", "p", (Container("c", (Devices("nvidia.com/mig-1g.10gb", ("MIG-1",)),)),)),),
    ),
    "several-pods-and-containers-in-order": (
        pb.ListPodResourcesResponse(
            pod_resources=[
                pb.PodResources(
                    name="a",
                    namespace="x",
                    containers=[
                        pb.ContainerResources(name="one"),
                        pb.ContainerResources(name="two", devices=[_devices("r", "1")]),
                    ],
                ),
                pb.PodResources(name="b", namespace="y"),
            ]
        ),
        (
            Pod("x", "a", (Container("one", ()), Container("two", (Devices("r", ("1",)),)))),
            Pod("y", "b", ()),
        ),
    ),
}


@pytest.mark.parametrize("case", list(LIST), ids=list(LIST))
def test_list_replies_read_as_the_protobuf_runtime_wrote_them(case: str) -> None:
    message, expected = LIST[case]
    assert list_reply(message.SerializeToString()) == expected


def test_allocatable_reply_reads_every_resource() -> None:
    message = pb.AllocatableResourcesResponse(
        devices=[_devices("nvidia.com/gpu", "GPU-a", "GPU-b"), _devices("example.com/nic", "n0")],
        cpu_ids=[0, 1],
    )
    assert allocatable_reply(message.SerializeToString()) == (
        Devices("nvidia.com/gpu", ("GPU-a", "GPU-b")),
        Devices("example.com/nic", ("n0",)),
    )


BROKEN = [
    pytest.param(b"\x0a\x05ab", id="a-length-past-the-end"),
    pytest.param(b"\x08\xff", id="a-truncated-varint"),
    pytest.param(b"\x08" + b"\xff" * 10 + b"\x01", id="an-overlong-varint"),
    pytest.param(b"\x0b", id="a-group-wire-type"),
    pytest.param(b"\x09\x00\x00", id="a-fixed64-past-the-end"),
]


@pytest.mark.parametrize("data", BROKEN)
def test_bytes_that_are_no_message_are_an_error(data: bytes) -> None:
    with pytest.raises(WireError):
        fields(data)


def test_fixed_width_fields_are_skipped() -> None:
    # field 3 fixed64, field 4 fixed32, then field 1 as a string.
    data = b"\x19" + bytes(8) + b"\x25" + bytes(4) + b"\x0a\x02hi"
    assert fields(data) == [(1, 2, b"hi")]
