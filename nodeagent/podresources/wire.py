"""The pod-resources replies read straight from the Protocol Buffers wire format.

The agent reads a handful of fields from two replies; the generated message classes would load
the protobuf runtime and build descriptors for the whole API (about 2.4 MB of a node agent's
memory) to read them. This module decodes the wire format itself: varints and length-delimited
fields, the fields named in ``api.proto`` by number, anything else skipped, as any protobuf
reader skips fields it does not know. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

# Wire types (https://protobuf.dev/programming-guides/encoding/).
VARINT, I64, LEN, I32 = 0, 1, 2, 5


class WireError(ValueError):
    """Bytes that are not a valid message of the expected shape."""


@dataclass(frozen=True, slots=True)
class Devices:
    """``ContainerDevices``: one resource's device IDs."""

    resource_name: str
    device_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ClaimDevice:
    """``ClaimResource``: one device DRA allocated to one of the container's claims."""

    claim_namespace: str
    claim_name: str
    driver: str
    pool: str
    device: str


@dataclass(frozen=True, slots=True)
class Container:
    """``ContainerResources``: a container's name, devices, and DRA devices."""

    name: str
    devices: tuple[Devices, ...]
    claimed: tuple[ClaimDevice, ...] = ()


@dataclass(frozen=True, slots=True)
class Pod:
    """``PodResources``: a pod's namespace, name and containers."""

    namespace: str
    name: str
    containers: tuple[Container, ...]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise WireError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """Every field of one message: (number, wire type, value), varints as ints and
    length-delimited fields as bytes; fixed-width fields are skipped over."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, kind = key >> 3, key & 7
        if kind == VARINT:
            value, pos = _varint(data, pos)
            out.append((number, kind, value))
        elif kind == LEN:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise WireError("a length-delimited field runs past the message")
            out.append((number, kind, data[pos : pos + size]))
            pos += size
        elif kind in (I64, I32):
            pos += 8 if kind == I64 else 4
            if pos > len(data):
                raise WireError("a fixed-width field runs past the message")
        else:
            raise WireError(f"wire type {kind} is not one a proto3 message uses")
    return out


def _strings(data: bytes, number: int) -> list[str]:
    return [
        v.decode("utf-8", "replace")
        for n, kind, v in fields(data)
        if n == number and kind == LEN and isinstance(v, bytes)
    ]


def _messages(data: bytes, number: int) -> list[bytes]:
    return [
        v for n, kind, v in fields(data) if n == number and kind == LEN and isinstance(v, bytes)
    ]


def _string(data: bytes, number: int) -> str:
    found = _strings(data, number)
    return found[-1] if found else ""  # proto3: the last one wins, absent is empty


def devices(data: bytes) -> Devices:
    """``ContainerDevices``: resource_name = 1, device_ids = 2."""
    return Devices(_string(data, 1), tuple(_strings(data, 2)))


def claimed(container: bytes) -> tuple[ClaimDevice, ...]:
    """``ContainerResources.dynamic_resources = 5``: each ``DynamicResource`` (claim_name = 2,
    claim_namespace = 3, claim_resources = 4, each ``ClaimResource`` with driver_name = 2,
    pool_name = 3, device_name = 4)."""
    out = []
    for dynamic in _messages(container, 5):
        name, namespace = _string(dynamic, 2), _string(dynamic, 3)
        for r in _messages(dynamic, 4):
            out.append(ClaimDevice(namespace, name, _string(r, 2), _string(r, 3), _string(r, 4)))
    return tuple(out)


def list_reply(data: bytes) -> tuple[Pod, ...]:
    """``ListPodResourcesResponse``: pod_resources = 1, each ``PodResources`` (name = 1,
    namespace = 2, containers = 3, each ``ContainerResources`` with name = 1, devices = 2,
    dynamic_resources = 5)."""
    pods = []
    for pod in _messages(data, 1):
        containers = tuple(
            Container(_string(c, 1), tuple(devices(d) for d in _messages(c, 2)), claimed(c))
            for c in _messages(pod, 3)
        )
        pods.append(Pod(_string(pod, 2), _string(pod, 1), containers))
    return tuple(pods)


def allocatable_reply(data: bytes) -> tuple[Devices, ...]:
    """``AllocatableResourcesResponse``: devices = 1."""
    return tuple(devices(d) for d in _messages(data, 1))
