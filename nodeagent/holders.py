"""Which pod holds each GPU, from the kubelet's pod-resources API and the node's pods.

The pod-resources API names pods by namespace and name and devices by the device plugin's IDs
(GPU or MIG UUIDs, or GPU indices with ``--device-id-strategy=index``), and the devices DRA
allocated to a container's claims by driver, pool and device name (NVIDIA's DRA driver:
``gpu.nvidia.com``, the node's pool, ``gpu-<minor>``); the published state wants pod UIDs and
GPU UUIDs. ``holders_from_allocations`` makes that join (pure); the ``PodResourcesHolders``
shell asks the kubelet on every poll.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from nodeagent.podresources.client import (
    ClaimAllocation,
    DeviceAllocation,
    PodResourcesClient,
    PodResourcesError,
)
from nodeagent.reading import NodeReading

log = logging.getLogger(__name__)

GPU_RESOURCE_PREFIX = "nvidia.com/"
DRA_DRIVER = "gpu.nvidia.com"
"""NVIDIA's DRA driver for GPUs (``placement.dra.DRIVER``)."""


def holders_from_allocations(
    allocations: Iterable[DeviceAllocation],
    device_uuids: Mapping[str, str],
    uid_of: Callable[[str, str], str | None],
    claimed: Iterable[ClaimAllocation] = (),
) -> dict[str, str]:
    """Device UUID -> pod UID (pure). Device IDs that are no GPU of this node, and pods whose
    UID is not known yet, are left out; so are ``claimed`` devices of another driver."""
    out: dict[str, str] = {}
    found = [(a.namespace, a.pod, a.device_ids) for a in allocations]
    found += [(c.namespace, c.pod, (c.device,)) for c in claimed if c.driver == DRA_DRIVER]
    for namespace, pod, device_ids in found:
        uid = uid_of(namespace, pod)
        if uid is None:
            continue
        for dev in device_ids:
            uuid = device_uuids.get(dev)
            if uuid is not None:
                out[uuid] = uid
    return out


class PodResourcesHolders:
    """Asks the kubelet which pod holds which GPU; ``None`` when it cannot be asked."""

    def __init__(
        self, client: PodResourcesClient, uid_of: Callable[[str, str], str | None]
    ) -> None:
        self._client = client
        self._uid_of = uid_of
        self.ok = False
        self.last_error = ""

    def holders(self, reading: NodeReading) -> dict[str, str] | None:
        """The holders of ``reading``'s devices, or ``None`` if the kubelet did not answer."""
        try:
            allocations, claimed = self._client.allocations(GPU_RESOURCE_PREFIX, DRA_DRIVER)
        except PodResourcesError as exc:
            if self.ok or not self.last_error:
                log.warning("%s; GPU holders fall back to process cgroups", exc)
            self.ok = False
            self.last_error = str(exc)
            return None
        if not self.ok:
            log.info("pod-resources API answers")
        self.ok = True
        self.last_error = ""
        return holders_from_allocations(allocations, reading.device_uuids(), self._uid_of, claimed)
