"""What a GPU backend saw on one poll, before pods are attributed.

Both backends (NVML and the simulated node) return these frozen values; the state builder then
joins them with the kubelet's view (which pod holds which GPU, which process belongs to which
pod) into ``placement.model.NodeState``. A reading carries ``None`` wherever a value could not
be read, never a value from an earlier poll.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProcessUse:
    """GPU memory used by one process (NVML) or one pod (simulated).

    ``pid`` is the host PID as NVML reports it; ``pod_uid`` is set directly only by backends
    that know the pod already (the simulated kubelet).
    """

    bytes: int
    pid: int | None = None
    pod_uid: str | None = None


@dataclass(frozen=True, slots=True)
class MigReading:
    """One MIG device (GPU instance + compute instance) with its own memory."""

    uuid: str
    gpu_instance_id: int | None
    compute_instance_id: int | None
    total_bytes: int | None
    free_bytes: int | None
    used_bytes: int | None
    processes: tuple[ProcessUse, ...] = ()


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One physical GPU. ``healthy`` is false with a ``reason`` when it cannot be trusted."""

    uuid: str
    index: int
    product: str
    total_bytes: int
    free_bytes: int | None
    used_bytes: int | None
    reserved_bytes: int | None = None
    healthy: bool = True
    reason: str = ""
    mig_enabled: bool = False
    mig_devices: tuple[MigReading, ...] = ()
    nvlink_peers: frozenset[str] = frozenset()
    pci_bus_id: str = ""
    numa_node: int | None = None
    processes: tuple[ProcessUse, ...] = ()
    holder_pod_uid: str | None = None
    minor: int | None = None
    """The device's minor number (``/dev/nvidia<minor>``): NVIDIA's DRA driver names the GPU
    ``gpu-<minor>`` in its ResourceSlice and in the kubelet's pod-resources replies."""
    """Set by backends that assign GPUs themselves (the simulated kubelet); NVML leaves it unset
    and the kubelet's pod-resources API says who holds the GPU."""

    def all_processes(self) -> list[ProcessUse]:
        """The processes on the GPU itself and on each of its MIG devices."""
        return list(self.processes) + [p for m in self.mig_devices for p in m.processes]


@dataclass(frozen=True, slots=True)
class NodeReading:
    """All GPUs of the node at one instant. ``error`` is a whole-node fault ("NVML unavailable:
    ...") and then every GPU's memory reads as unknown."""

    gpus: tuple[GpuReading, ...]
    observed_at: float
    driver_version: str = ""
    error: str = ""
    unsupported: frozenset[str] = frozenset()
    """``"<uuid>/<field>"`` for every field this node's driver does not offer (published absent)."""

    def device_uuids(self) -> dict[str, str]:
        """Every GPU and MIG device UUID, and the index (as a string) of each physical GPU,
        mapped to its UUID: the keys a device plugin may use as device IDs; and ``gpu-<minor>``,
        NVIDIA's DRA driver's name of the GPU, where the minor number is known."""
        out: dict[str, str] = {}
        for g in self.gpus:
            out[g.uuid] = g.uuid
            out[str(g.index)] = g.uuid
            if g.minor is not None:
                out[f"gpu-{g.minor}"] = g.uuid
            for m in g.mig_devices:
                out[m.uuid] = m.uuid
        return out
