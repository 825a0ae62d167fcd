"""Readings of a simulated node: its spec's GPUs, with the memory the kubelet stand-in's pods use.

It returns the same ``NodeReading`` as the NVML backend, so everything after it (attribution,
state, publishing, metrics) runs unchanged on a simulated cluster.
"""

from __future__ import annotations

from nodeagent.reading import GpuReading, NodeReading, ProcessUse
from nodeagent.simulated.kubelet import SimulatedKubelet
from nodeagent.simulated.spec import NodeSpec

DRIVER_VERSION = "simulated"


class SimulatedBackend:
    """Serves ``spec``'s GPUs; ``kubelet`` (if any) says who holds them and what they use."""

    def __init__(self, spec: NodeSpec, kubelet: SimulatedKubelet | None = None) -> None:
        self.spec = spec
        self.kubelet = kubelet
        peers: dict[int, frozenset[str]] = {}
        for island in spec.shape.islands:
            members = frozenset(spec.gpu_uuid(i) for i in island)
            for i in island:
                peers[i] = members - {spec.gpu_uuid(i)}
        self._peers = peers

    @property
    def ready(self) -> bool:
        """A simulated node is always readable."""
        return True

    @property
    def error(self) -> str:
        """No whole-node fault."""
        return ""

    def read(self, now: float) -> NodeReading:
        """The node's GPUs at ``now``."""
        use = self.kubelet.gpu_use(now) if self.kubelet is not None else {}
        total = self.spec.shape.vram_per_gpu
        gpus = []
        for i in range(self.spec.shape.gpus):
            uuid = self.spec.gpu_uuid(i)
            u = use.get(uuid)
            used = min(total, u.used_bytes) if u is not None else 0
            gpus.append(
                GpuReading(
                    uuid=uuid,
                    index=i,
                    product=self.spec.shape.product,
                    total_bytes=total,
                    free_bytes=total - used,
                    used_bytes=used,
                    reserved_bytes=0,
                    nvlink_peers=self._peers.get(i, frozenset()),
                    pci_bus_id=f"00000000:{0x18 + 0x10 * i:02X}:00.0",
                    numa_node=(2 * i) // max(1, self.spec.shape.gpus),
                    processes=(
                        (ProcessUse(bytes=used, pod_uid=u.pod_uid),) if u is not None else ()
                    ),
                    holder_pod_uid=u.pod_uid if u is not None else None,
                    minor=i,
                )
            )
        return NodeReading(gpus=tuple(gpus), observed_at=now, driver_version=DRIVER_VERSION)

    def close(self) -> None:
        """Nothing to release."""
