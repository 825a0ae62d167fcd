"""The simulated node as NVIDIA's DRA driver sees it: its GPUs in a ResourceSlice, and the
GPUs each pod's allocated ResourceClaims give it.

With ``--dra-driver`` the simulated kubelet plays NVIDIA's DRA driver for GPUs
(``NVIDIA/k8s-dra-driver-gpu``, read at ``22407113``, v0.4.0-rc.1+14) instead of the device
plugin: kube-scheduler's own DRA plugin then allocates real ResourceClaims from what it
publishes. What it publishes, and where each name comes from:

* one ResourceSlice for the node (``resource.k8s.io/v1``): ``driver: gpu.nvidia.com``, pool
  named after the node (generation 1, one slice), ``nodeName`` the node, owned by the Node
  (so it goes with it), as the driver's kubelet plugin publishes through
  ``k8s.io/dynamic-resource-allocation``;
* one device per GPU named ``gpu-<minor>`` (``cmd/gpu-kubelet-plugin/deviceinfo.go``,
  ``GpuInfo.CanonicalName``; the GPU's index stands for its minor number here);
* its attributes as ``GpuInfo.Attributes()`` sets them: ``type`` = "gpu", ``uuid`` (the
  agent's own UUID, so NodeGPUState and the slice join on it), ``productName`` (NVML's name:
  "NVIDIA H100 80GB HBM3"), ``brand`` (go-nvlib ``GetBrandAsString``: "Nvidia" for data-centre
  parts), ``architecture`` (go-nvlib ``GetArchitectureAsString``: "Hopper", "Ampere"),
  ``cudaComputeCapability`` (a version: "9.0.0"), ``driverVersion`` and ``cudaDriverVersion``
  (versions), and ``resource.kubernetes.io/pciBusID``;
* its capacity ``memory``: the GPU's total bytes as a BinarySI quantity
  (``partitions.go``, ``fullGpuCapacity``).

The DeviceClass ``gpu.nvidia.com`` is installed by the driver's chart, not its plugin
(``deployments/helm/dra-driver-nvidia-gpu/templates/deviceclass-gpu.yaml``): ``device_class``
is that manifest, for whoever plays the chart (the end-to-end tests apply it as the admin).

The slice is written with the kubelet's identity (``system:node:<name>``), which the Node
authorizer and NodeRestriction allow for the node's own slices; a pod's claims are read the
way the kubelet reads them, one GET per claim the pod names (``spec.resourceClaims`` through
``status.resourceClaimStatuses``, and the claim kube-scheduler makes for an extended resource
request, ``status.extendedResourceClaimStatus``). A pod holds the GPUs of the results that
name this driver and this node's pool, once the claim is reserved for it.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nodeagent.kube import ApiError, KubeClient
from nodeagent.pods import PodInfo
from nodeagent.simulated.loads import PodNeeds
from nodeagent.simulated.spec import NodeSpec
from placement.demand import DemandError, demand_from_pod
from placement.dra import API, DRIVER, GPU_CLASS, pod_claims, read_claim
from placement.fit import product_key

log = logging.getLogger(__name__)

DRIVER_VERSION = "580.82.7"
"""The NVIDIA driver version the simulated GPUs report (a version attribute)."""
CUDA_DRIVER_VERSION = "13.0.0"

# NVML's own name, brand, architecture and compute capability of the products the specs name
# (GPU Feature Discovery's product label is NVML's name with spaces made dashes).
_PRODUCTS: dict[str, tuple[str, str, str, str]] = {
    product_key("NVIDIA H100 80GB HBM3"): ("NVIDIA H100 80GB HBM3", "Nvidia", "Hopper", "9.0.0"),
    product_key("NVIDIA H200"): ("NVIDIA H200", "Nvidia", "Hopper", "9.0.0"),
    product_key("NVIDIA A100-SXM4-40GB"): ("NVIDIA A100-SXM4-40GB", "Nvidia", "Ampere", "8.0.0"),
    product_key("NVIDIA A100-SXM4-80GB"): ("NVIDIA A100-SXM4-80GB", "Nvidia", "Ampere", "8.0.0"),
    product_key("NVIDIA L4"): ("NVIDIA L4", "Nvidia", "Ada Lovelace", "8.9.0"),
}


def nvml_facts(product: str) -> tuple[str, str, str, str]:
    """(productName, brand, architecture, cudaComputeCapability) of a spec's product (pure);
    a product not in the table keeps its name with dashes made spaces."""
    known = _PRODUCTS.get(product_key(product))
    if known is not None:
        return known
    return " ".join(product.split("-")), "Nvidia", "Unknown", "0.0.0"


def binary_si(n: int) -> str:
    """``n`` bytes as Kubernetes writes a BinarySI quantity ("80Gi", "1536Mi", "12345")."""
    for suffix, power in (("Ei", 60), ("Pi", 50), ("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)):
        if n and n % (1 << power) == 0:
            return f"{n >> power}{suffix}"
    return str(n)


def device_name(index: int) -> str:
    """The driver's name for full GPU ``index`` (its minor number)."""
    return f"gpu-{index}"


def slice_name(node: str) -> str:
    """The simulated node's ResourceSlice name."""
    return f"{node}-{DRIVER}"


def gpu_device(spec: NodeSpec, index: int) -> dict[str, Any]:
    """GPU ``index`` of the node as the driver publishes it (pure)."""
    name, brand, architecture, capability = nvml_facts(spec.shape.product)
    return {
        "name": device_name(index),
        "attributes": {
            "type": {"string": "gpu"},
            "uuid": {"string": spec.gpu_uuid(index)},
            "productName": {"string": name},
            "brand": {"string": brand},
            "architecture": {"string": architecture},
            "cudaComputeCapability": {"version": capability},
            "driverVersion": {"version": DRIVER_VERSION},
            "cudaDriverVersion": {"version": CUDA_DRIVER_VERSION},
            "resource.kubernetes.io/pciBusID": {"string": f"0000:{0x18 + 0x10 * index:02x}:00.0"},
        },
        "capacity": {"memory": {"value": binary_si(spec.shape.vram_per_gpu)}},
    }


def resource_slice(spec: NodeSpec, node_uid: str = "") -> dict[str, Any]:
    """The node's ResourceSlice (pure); owned by the Node when its UID is given."""
    meta: dict[str, Any] = {"name": slice_name(spec.name)}
    if node_uid:
        meta["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Node", "name": spec.name, "uid": node_uid}
        ]
    return {
        "apiVersion": API,
        "kind": "ResourceSlice",
        "metadata": meta,
        "spec": {
            "driver": DRIVER,
            "pool": {"name": spec.name, "generation": 1, "resourceSliceCount": 1},
            "nodeName": spec.name,
            "devices": [gpu_device(spec, i) for i in range(spec.shape.gpus)],
        },
    }


def device_class() -> dict[str, Any]:
    """The DeviceClass ``gpu.nvidia.com`` as NVIDIA's chart installs it on
    ``resource.k8s.io/v1`` (pure)."""
    return {
        "apiVersion": API,
        "kind": "DeviceClass",
        "metadata": {"name": GPU_CLASS},
        "spec": {
            "selectors": [
                {
                    "cel": {
                        "expression": f"device.driver == '{DRIVER}' && "
                        f"device.attributes['{DRIVER}'].type == 'gpu'"
                    }
                }
            ],
            "extendedResourceName": "nvidia.com/gpu",
        },
    }


def claim_names(pod: Mapping[str, Any]) -> tuple[str, ...]:
    """The ResourceClaims a raw pod uses, as far as its status names them (pure)."""
    names = [c.claim for c in pod_claims(pod) if c.claim]
    status = pod.get("status") if isinstance(pod.get("status"), Mapping) else {}
    assert isinstance(status, Mapping)
    extended = status.get("extendedResourceClaimStatus")
    if isinstance(extended, Mapping) and isinstance(extended.get("resourceClaimName"), str):
        names.append(extended["resourceClaimName"])
    return tuple(names)


def claim_needs(pod: Mapping[str, Any], gpus: int, memory_per_gpu: int) -> PodNeeds:
    """What the kubelet stand-in loads for a pod that got ``gpus`` GPUs through its claims:
    as ``loads.pod_needs`` reads a pod, with the claimed GPUs for the count (pure)."""
    try:
        demand = demand_from_pod(pod, claimed_gpus=gpus)
    except DemandError as exc:
        return PodNeeds(gpus, 0, 0, "", (), problem=str(exc))
    if demand is None:
        return PodNeeds(0, 0, 0, "", ())
    model_bytes = demand.model_bytes or demand.vram_per_gpu * gpus
    per_gpu = demand.vram_per_gpu or math.ceil(model_bytes / gpus)
    return PodNeeds(gpus, min(per_gpu, memory_per_gpu), model_bytes, demand.model_id, ())


@dataclass(frozen=True, slots=True)
class Allocation:
    """A pod's GPUs from its ResourceClaims: ``waiting`` while a claim it names is not read,
    not allocated, or not reserved for it yet; else the UUIDs of this node's GPUs its claims
    were allocated (none for claims of other devices)."""

    gpu_uuids: tuple[str, ...] = ()
    waiting: bool = False


class SimulatedDraDriver:
    """Publishes the node's ResourceSlice and reads its pods' allocations (thread-safe).

    ``client`` speaks as the node's kubelet. A claim's allocation never changes once made, so
    each claim is read until it is allocated and reserved for the pod, then remembered.
    """

    def __init__(self, spec: NodeSpec, client: KubeClient) -> None:
        self._spec = spec
        self._client = client
        self._published = False
        self._lock = threading.Lock()
        self._allocated: dict[tuple[str, str, str], tuple[str, ...]] = {}  # (ns, claim, pod)
        self._uuid_of = {device_name(i): spec.gpu_uuid(i) for i in range(spec.shape.gpus)}

    @property
    def published(self) -> bool:
        return self._published

    def publish(self) -> bool:
        """Write the node's slice once (create, or replace one left from an earlier run);
        returns whether it is published. Failures are logged and retried on the next call."""
        if self._published:
            return True
        path = f"/apis/{API}/resourceslices"
        try:
            node = self._client.request("GET", f"/api/v1/nodes/{self._spec.name}")
            body = resource_slice(self._spec, str((node.get("metadata") or {}).get("uid", "")))
            try:
                self._client.request("POST", path, body)
            except ApiError as exc:
                if exc.status != 409:
                    raise
                current = self._client.request("GET", f"{path}/{slice_name(self._spec.name)}")
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                self._client.request("PUT", f"{path}/{slice_name(self._spec.name)}", body)
        except ApiError as exc:
            log.warning("%s: ResourceSlice not published yet: %s", self._spec.name, exc)
            return False
        self._published = True
        log.info(
            "%s: published %d GPUs in ResourceSlice %s (driver %s)",
            self._spec.name,
            self._spec.shape.gpus,
            slice_name(self._spec.name),
            DRIVER,
        )
        return True

    def allocation(self, pod: PodInfo) -> Allocation | None:
        """The GPUs ``pod``'s claims give it on this node; ``None`` for a pod that names no
        claim (the device plugin's pod)."""
        names = claim_names(pod.raw)
        spec_claims = pod_claims(pod.raw)
        if not names and not spec_claims:
            return None
        if len(names) < len(spec_claims):
            return Allocation(waiting=True)  # a template's claim is not made yet
        uuids: list[str] = []
        for name in names:
            got = self._claim(pod, name)
            if got is None:
                return Allocation(waiting=True)
            uuids.extend(got)
        return Allocation(tuple(uuids))

    def _claim(self, pod: PodInfo, name: str) -> tuple[str, ...] | None:
        key = (pod.namespace, name, pod.uid)
        with self._lock:
            known = self._allocated.get(key)
        if known is not None:
            return known
        try:
            raw = self._client.request(
                "GET", f"/apis/{API}/namespaces/{pod.namespace}/resourceclaims/{name}"
            )
        except ApiError as exc:
            log.info("%s: pod %s: claim %s not read: %s", self._spec.name, pod.key, name, exc)
            return None
        claim = read_claim(raw)
        if claim is None or not claim.allocated or pod.uid not in claim.reserved_for:
            return None
        mine = tuple(
            self._uuid_of[a.device]
            for a in claim.allocated
            if a.driver == DRIVER and a.pool == self._spec.name and a.device in self._uuid_of
        )
        with self._lock:
            self._allocated[key] = mine
            if len(self._allocated) > 4096:
                self._allocated.pop(next(iter(self._allocated)))
        return mine
