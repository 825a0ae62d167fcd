"""Client of the kubelet pod-resources API on its unix socket.

The kubelet knows which device IDs (GPU or MIG UUIDs) the device plugin allocated to each
container; NVML only knows processes, and a pod that is still loading may have none. The
channel is kept open and rebuilt after any failure, so a kubelet restart (which recreates the
socket) costs one failed poll. gRPC carries the calls; the replies are read from the wire
format by ``wire``, so the agent never loads the protobuf runtime or the generated classes.
"""

from __future__ import annotations

import builtins
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from nodeagent.podresources import DEFAULT_SOCKET
from nodeagent.podresources.wire import WireError, allocatable_reply, list_reply

SERVICE = "/v1.PodResourcesLister/"
"""The gRPC service of ``api.proto``. Its requests are empty messages (no bytes on the wire);
the replies are read by ``wire``, without the generated message classes."""

_Reply = TypeVar("_Reply")

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # the kubelet's own limit for this API


class PodResourcesError(RuntimeError):
    """The pod-resources API could not be asked; says which socket and why."""


@dataclass(frozen=True, slots=True)
class DeviceAllocation:
    """Device IDs of one resource held by one container."""

    namespace: str
    pod: str
    container: str
    resource: str
    device_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ClaimAllocation:
    """One device DRA allocated to a container's claim: the driver, pool and device name
    that identify it in the driver's ResourceSlice."""

    namespace: str
    pod: str
    container: str
    driver: str
    pool: str
    device: str


class PodResourcesClient:
    """``List`` and ``GetAllocatableResources`` over ``unix://<socket>`` (thread-safe)."""

    def __init__(self, socket_path: Path = DEFAULT_SOCKET, *, timeout_s: float = 5.0) -> None:
        self._socket = socket_path
        self._timeout = timeout_s
        self._channel: grpc.Channel | None = None
        self._lock = threading.Lock()

    def _call(self, method: str, read: Callable[[bytes], _Reply]) -> _Reply:
        """One unary call of ``method`` with an empty request, its reply read by ``read``."""
        with self._lock:
            if self._channel is None:
                self._channel = grpc.insecure_channel(
                    f"unix://{self._socket}",
                    options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)],
                )
            call: Any = self._channel.unary_unary(
                SERVICE + method,
                request_serializer=_empty,
                response_deserializer=_raw,
            )
            try:
                data = call(b"", timeout=self._timeout)
            except grpc.RpcError as exc:
                self._reset()
                raise PodResourcesError(
                    f"pod-resources {method} on {self._socket}: {_why(exc)}"
                ) from None
        try:
            return read(bytes(data))
        except WireError as exc:
            raise PodResourcesError(
                f"pod-resources {method} on {self._socket}: unreadable reply ({exc})"
            ) from None

    def _reset(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = None

    def list(self, resource_prefix: str = "") -> list[DeviceAllocation]:
        """Every container's devices whose resource name starts with ``resource_prefix``."""
        return self.allocations(resource_prefix)[0]

    def allocations(
        self, resource_prefix: str = "", driver: str = ""
    ) -> tuple[builtins.list[DeviceAllocation], builtins.list[ClaimAllocation]]:
        """From one ``List``: every container's devices whose resource name starts with
        ``resource_prefix``, and the devices DRA allocated to its claims from ``driver``
        (none when ``driver`` is empty)."""
        out: builtins.list[DeviceAllocation] = []
        claims: builtins.list[ClaimAllocation] = []
        for pod in self._call("List", list_reply):
            for container in pod.containers:
                claims.extend(
                    ClaimAllocation(
                        pod.namespace, pod.name, container.name, d.driver, d.pool, d.device
                    )
                    for d in container.claimed
                    if driver and d.driver == driver
                )
            for container in pod.containers:
                for dev in container.devices:
                    if dev.resource_name.startswith(resource_prefix):
                        out.append(
                            DeviceAllocation(
                                namespace=pod.namespace,
                                pod=pod.name,
                                container=container.name,
                                resource=dev.resource_name,
                                device_ids=dev.device_ids,
                            )
                        )
        return out, claims

    def allocatable(self, resource_prefix: str = "") -> dict[str, tuple[str, ...]]:
        """Device IDs the kubelet can hand out, per resource name."""
        out: dict[str, list[str]] = {}
        for dev in self._call("GetAllocatableResources", allocatable_reply):
            if dev.resource_name.startswith(resource_prefix):
                out.setdefault(dev.resource_name, []).extend(dev.device_ids)
        return {k: tuple(v) for k, v in out.items()}

    def close(self) -> None:
        """Close the channel."""
        with self._lock:
            self._reset()


def _empty(_: object) -> bytes:
    return b""


def _raw(data: bytes) -> bytes:
    return data


def _why(exc: grpc.RpcError) -> str:
    code = exc.code() if isinstance(exc, grpc.Call) else None
    details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    return f"{code.name if code else 'error'}: {details}"
