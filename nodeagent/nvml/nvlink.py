"""Which GPUs of the node share an NVLink island, found through NVML at enumeration.

A tensor-parallel pod wants its GPUs on one island, so the agent publishes each GPU's NVLink
peers. NVML offers the links per GPU (state, remote PCI address, remote device type); older
drivers offer only the pairwise P2P status, used when no link can be read at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nodeagent.health import ErrorKind
from nodeagent.nvml.calls import NvmlCallError, NvmlCalls

# nvml.h constants that older nvidia-ml-py releases may not export under these names.
_NVLINK_STATE_ACTIVE = 1
_NVLINK_DEVICE_TYPE_GPU = 0
_NVLINK_DEVICE_TYPE_SWITCH = 2
_P2P_CAPS_INDEX_NVLINK = 2
_P2P_STATUS_OK = 0


def normalize_bus_id(raw: object) -> str:
    """A PCI bus id as ``DDDDDDDD:BB:DD.F`` in upper case, whatever width NVML used (pure).

    NVML writes the domain with 8 digits in ``busId`` and 4 in ``busIdLegacy``, and remote
    NVLink PCI info may differ from the device's own; comparing needs one form.
    """
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    text = text.strip().rstrip("\x00")
    try:
        domain, bus, rest = text.split(":")
        device, function = rest.split(".")
        return (
            f"{int(domain, 16):08X}:{int(bus, 16):02X}:{int(device, 16):02X}.{int(function, 16):X}"
        )
    except ValueError:
        return text.upper()


@dataclass(frozen=True, slots=True)
class LinkedGpu:
    """What link discovery needs of one GPU NVML serves now."""

    handle: Any
    pci_bus_id: str


@dataclass(slots=True)
class _Links:
    """Peers found so far, and the GPUs whose links lead to a switch (or to no GPU of ours)."""

    by_bus: dict[str, str]
    peers: dict[str, set[str]]
    on_switch: set[str]
    link_info: bool = False


def discover_peers(nvml: NvmlCalls, live: Mapping[str, LinkedGpu]) -> dict[str, frozenset[str]]:
    """NVLink peers per GPU UUID from active links: a link to another GPU's PCI address joins
    the two; GPUs linked to NVSwitches are all joined (the switch fabric is non-blocking).

    Raises ``NvmlCallError`` only for a GPU that is lost; a link that cannot be read is skipped.
    """
    links = _Links(
        by_bus={g.pci_bus_id: u for u, g in live.items() if g.pci_bus_id},
        peers={u: set() for u in live},
        on_switch=set(),
    )
    max_links = int(getattr(nvml.nvml, "NVML_NVLINK_MAX_LINKS", 18))
    for uuid, gpu in live.items():
        for link in range(max_links):
            if not _follow(nvml, links, uuid, gpu, link):
                break
    if not links.link_info:
        _p2p_fallback(nvml, live, links.peers)
    for uuid in links.on_switch:
        links.peers[uuid].update(links.on_switch - {uuid})
    return {u: frozenset(p) for u, p in links.peers.items()}


def _follow(nvml: NvmlCalls, links: _Links, uuid: str, gpu: LinkedGpu, link: int) -> bool:
    """Record where ``link`` of ``gpu`` leads; false when the GPU has no such link."""
    try:
        state = nvml.call("nvmlDeviceGetNvLinkState", gpu.handle, link)
    except NvmlCallError as exc:
        if exc.kind is ErrorKind.DEVICE_LOST:
            raise
        return False  # no such link (InvalidArgument) or no NVLink at all (NotSupported)
    links.link_info = True
    if state != _NVLINK_STATE_ACTIVE:
        return True
    try:
        remote_bus = normalize_bus_id(
            nvml.call("nvmlDeviceGetNvLinkRemotePciInfo", gpu.handle, link).busId
        )
    except NvmlCallError:
        return True
    remote_type = nvml.optional(
        uuid, "nvlinkRemoteType", "nvmlDeviceGetNvLinkRemoteDeviceType", gpu.handle, link
    )
    if remote_type == _NVLINK_DEVICE_TYPE_SWITCH:
        links.on_switch.add(uuid)
    elif remote_bus in links.by_bus and remote_bus != gpu.pci_bus_id:
        links.peers[uuid].add(links.by_bus[remote_bus])
        links.peers[links.by_bus[remote_bus]].add(uuid)
    elif remote_type is None or remote_type != _NVLINK_DEVICE_TYPE_GPU:
        links.on_switch.add(uuid)  # an active link to something that is not one of our GPUs
    return True


def _p2p_fallback(
    nvml: NvmlCalls, live: Mapping[str, LinkedGpu], peers: dict[str, set[str]]
) -> None:
    uuids = sorted(live)
    for i, a in enumerate(uuids):
        for b in uuids[i + 1 :]:
            try:
                status = nvml.call(
                    "nvmlDeviceGetP2PStatus", live[a].handle, live[b].handle, _P2P_CAPS_INDEX_NVLINK
                )
            except NvmlCallError:
                return  # not offered: no NVLink information at all
            if status == _P2P_STATUS_OK:
                peers[a].add(b)
                peers[b].add(a)
