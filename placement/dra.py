"""GPUs claimed through Dynamic Resource Allocation: ResourceClaims, ResourceSlices and the
NVIDIA DRA driver's devices, read from raw ``resource.k8s.io/v1`` JSON.

A pod that claims GPUs this way lists ``spec.resourceClaims`` (a ``resourceClaimName``, or a
``resourceClaimTemplateName`` from which the resourceclaim controller makes a claim named in
``status.resourceClaimStatuses``). Each claim's ``spec.devices.requests[]`` asks for devices of
a DeviceClass, ``exactly`` (``count``, default 1, with CEL ``selectors``) or as
``firstAvailable`` alternatives; kube-scheduler's DRA plugin allocates devices from the nodes'
ResourceSlices and writes them to ``status.allocation.devices.results[]`` (``driver``,
``pool``, ``device``), with the pod in ``status.reservedFor``.

NVIDIA's driver (``NVIDIA/k8s-dra-driver-gpu``, read at ``22407113``, v0.4.0-rc.1+14):
driver name ``gpu.nvidia.com``, one pool per node named after the node, a full GPU published
as device ``gpu-<minor>`` (``cmd/gpu-kubelet-plugin/deviceinfo.go``, ``CanonicalName``) with
the attributes of ``GpuInfo.Attributes()``: ``type`` ("gpu"), ``uuid``, ``productName``,
``brand``, ``architecture`` (strings), ``cudaComputeCapability``, ``driverVersion``,
``cudaDriverVersion`` (versions), ``resource.kubernetes.io/pciBusID`` and
``resource.kubernetes.io/pcieRoot`` (strings, from ``k8s.io/dynamic-resource-allocation/
deviceattribute``), and ``addressingMode`` where the platform has one; and the capacity
``memory`` (NVML total bytes, BinarySI; ``partitions.go``, ``fullGpuCapacity``). Its chart's
DeviceClass ``gpu.nvidia.com`` selects ``device.driver == 'gpu.nvidia.com' &&
device.attributes['gpu.nvidia.com'].type == 'gpu'`` (``deployments/helm/
dra-driver-nvidia-gpu/templates/deviceclass-gpu.yaml``). vramfit joins a device to the agent's
NodeGPUState by its ``uuid`` attribute.

``GPU_CLASSES`` are the DeviceClasses taken to claim whole GPUs of that driver; claims of other
classes (``mig.nvidia.com``, NICs) ask for no GPU vramfit places. Pure.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from placement.dra_selectors import AttributeValue, DeviceFacts, Selectors, read_selectors
from placement.quantity import QuantityError, parse_count

DRIVER = "gpu.nvidia.com"
"""The NVIDIA DRA driver's name: the driver of its ResourceSlices and its attribute domain."""
GPU_CLASS = "gpu.nvidia.com"
"""The DeviceClass NVIDIA's chart installs for full GPUs."""
GPU_CLASSES = frozenset({GPU_CLASS})
"""The DeviceClasses whose claims vramfit reads as whole-GPU demand, by default."""
DEVICE_TYPE_GPU = "gpu"
"""The ``type`` attribute of a full GPU (``mig`` and ``vfio`` devices are not GPUs here)."""
ATTRIBUTE_UUID = "uuid"
ATTRIBUTE_TYPE = "type"
ATTRIBUTE_PRODUCT = "productName"
CAPACITY_MEMORY = "memory"
API = "resource.k8s.io/v1"


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


# ----- devices (ResourceSlices) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Device:
    """One device of a ResourceSlice: its pool and name, what selectors read, its GPU UUID."""

    pool: str
    name: str
    facts: DeviceFacts

    @property
    def uuid(self) -> str:
        value = self.facts.attributes.get(f"{self.facts.driver}/{ATTRIBUTE_UUID}")
        return value if isinstance(value, str) else ""

    @property
    def is_gpu(self) -> bool:
        """A full GPU of NVIDIA's driver (what ``GPU_CLASS`` selects)."""
        kind = self.facts.attributes.get(f"{DRIVER}/{ATTRIBUTE_TYPE}")
        return self.facts.driver == DRIVER and kind == DEVICE_TYPE_GPU


@dataclass(frozen=True, slots=True)
class Slice:
    """A ResourceSlice: its name, driver, the node it serves (``""`` for a pool that is not
    one node's) and its devices."""

    name: str
    driver: str
    node: str
    pool: str
    generation: int
    devices: tuple[Device, ...]


def _attribute(value: Mapping[str, Any]) -> AttributeValue | None:
    for kind in ("string", "version"):
        if isinstance(value.get(kind), str):
            return str(value[kind])
    if isinstance(value.get("bool"), bool):
        return bool(value["bool"])
    if isinstance(value.get("int"), int) and not isinstance(value.get("int"), bool):
        return int(value["int"])
    return None


def _qualified(name: str, driver: str) -> str:
    return name if "/" in name else f"{driver}/{name}"


def read_slice(raw: Mapping[str, Any]) -> Slice | None:
    """A raw ResourceSlice, or ``None`` for one without a name or driver (pure). Attributes
    and capacities that cannot be read are left out (a selector on them selects nothing)."""
    meta, spec = _map(raw.get("metadata")), _map(raw.get("spec"))
    name, driver = _text(meta.get("name")), _text(spec.get("driver"))
    if not name or not driver:
        return None
    pool = _map(spec.get("pool"))
    generation = pool.get("generation")
    devices = []
    for d in _list(spec.get("devices")):
        device = _map(d)
        if not _text(device.get("name")):
            continue
        attributes: dict[str, AttributeValue] = {}
        for key, value in _map(device.get("attributes")).items():
            read = _attribute(_map(value))
            if read is not None:
                attributes[_qualified(str(key), driver)] = read
        capacity: dict[str, int] = {}
        for key, value in _map(device.get("capacity")).items():
            try:
                capacity[_qualified(str(key), driver)] = parse_count(
                    _map(value).get("value"), f"capacity {key}"
                )
            except QuantityError:
                continue
        facts = DeviceFacts(driver, attributes, capacity)
        devices.append(Device(_text(pool.get("name")), str(device["name"]), facts))
    return Slice(
        name=name,
        driver=driver,
        node=_text(spec.get("nodeName")),
        pool=_text(pool.get("name")),
        generation=generation if isinstance(generation, int) else 0,
        devices=tuple(devices),
    )


# ----- claims ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """One request of a claim, as vramfit reads it: its class, how many devices (``count``
    0 when it asks for all of a node's, ``allocationMode: All``), and its selectors; for
    ``firstAvailable``, ``alternatives`` is true and these are the largest count and no
    selectors over its alternatives of one class."""

    name: str
    device_class: str
    count: int
    selectors: tuple[str, ...] = ()
    alternatives: bool = False


@dataclass(frozen=True, slots=True)
class Allocated:
    """One device the DRA plugin allocated for a claim."""

    request: str
    driver: str
    pool: str
    device: str


@dataclass(frozen=True, slots=True)
class Claim:
    """A ResourceClaim: identity, requests, allocation and the pods it is reserved for."""

    namespace: str
    name: str
    uid: str
    requests: tuple[Request, ...]
    allocated: tuple[Allocated, ...] = ()
    reserved_for: tuple[str, ...] = ()  # pod UIDs
    resource_version: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _count(raw: Mapping[str, Any]) -> int:
    """Devices an exact request asks for: ``count`` (default 1), 0 for ``All``."""
    if raw.get("allocationMode") == "All":
        return 0
    count = raw.get("count", 1)
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 1


def _selectors(raw: Mapping[str, Any]) -> tuple[str, ...]:
    found = []
    for s in _list(raw.get("selectors")):
        expression = _map(_map(s).get("cel")).get("expression")
        if isinstance(expression, str):
            found.append(expression)
    return tuple(found)


def read_requests(devices: Mapping[str, Any]) -> tuple[Request, ...]:
    """The requests of a claim spec's ``devices`` (pure)."""
    out = []
    for r in _list(devices.get("requests")):
        raw = _map(r)
        name = _text(raw.get("name"))
        exactly = _map(raw.get("exactly"))
        if exactly:
            out.append(
                Request(
                    name,
                    _text(exactly.get("deviceClassName")),
                    _count(exactly),
                    _selectors(exactly),
                )
            )
            continue
        choices = [_map(c) for c in _list(raw.get("firstAvailable"))]
        by_class: dict[str, int] = {}
        for c in choices:
            cls = _text(c.get("deviceClassName"))
            n = _count(c)
            by_class[cls] = 0 if n == 0 or by_class.get(cls) == 0 else max(n, by_class.get(cls, 0))
        for cls, n in by_class.items():
            out.append(Request(name, cls, n, (), alternatives=True))
    return tuple(out)


def read_claim(raw: Mapping[str, Any]) -> Claim | None:
    """A raw ResourceClaim, or ``None`` for one without a name (pure)."""
    meta, spec, status = _map(raw.get("metadata")), _map(raw.get("spec")), _map(raw.get("status"))
    name = _text(meta.get("name"))
    if not name:
        return None
    results = _map(_map(status.get("allocation")).get("devices")).get("results")
    allocated = tuple(
        Allocated(
            _text(x.get("request")),
            _text(x.get("driver")),
            _text(x.get("pool")),
            _text(x.get("device")),
        )
        for x in map(_map, _list(results))
    )
    reserved = tuple(
        _text(r.get("uid"))
        for r in map(_map, _list(status.get("reservedFor")))
        if r.get("resource") == "pods" and _text(r.get("uid"))
    )
    return Claim(
        namespace=_text(meta.get("namespace")) or "default",
        name=name,
        uid=_text(meta.get("uid")),
        requests=read_requests(_map(spec.get("devices"))),
        allocated=allocated,
        reserved_for=reserved,
        resource_version=_text(meta.get("resourceVersion")),
    )


def template_requests(raw: Mapping[str, Any]) -> tuple[Request, ...]:
    """The requests of a raw ResourceClaimTemplate (``spec.spec.devices``; pure)."""
    return read_requests(_map(_map(_map(raw.get("spec")).get("spec")).get("devices")))


@dataclass(frozen=True, slots=True)
class PodClaim:
    """One entry of a pod's ``spec.resourceClaims``: the name the containers use, and the
    ResourceClaim it stands for (``""`` while the claim made from ``template`` is not named
    in the pod's status yet)."""

    name: str
    claim: str
    template: str = ""


def pod_claims(pod: Mapping[str, Any]) -> tuple[PodClaim, ...]:
    """The claims a raw pod lists (pure): a named claim as it is, a template's claim as
    ``status.resourceClaimStatuses`` names it."""
    generated = {
        _text(s.get("name")): _text(s.get("resourceClaimName"))
        for s in map(_map, _list(_map(pod.get("status")).get("resourceClaimStatuses")))
    }
    out = []
    for entry in map(_map, _list(_map(pod.get("spec")).get("resourceClaims"))):
        name = _text(entry.get("name"))
        template = _text(entry.get("resourceClaimTemplateName"))
        claim = _text(entry.get("resourceClaimName")) or (
            generated.get(name, "") if template else ""
        )
        out.append(PodClaim(name, claim, template))
    return tuple(out)


# ----- what a pod claims ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedGpus:
    """The whole GPUs a pod's claims ask for: how many, the selectors of each GPU request
    (read by ``placement.dra_selectors``), and notes on what vramfit did not read (an
    expression it cannot read, alternatives read as their largest count)."""

    gpus: int
    requests: tuple[Selectors, ...] = ()
    notes: tuple[str, ...] = ()

    def eligible(self, devices: Iterable[Device]) -> frozenset[str] | None:
        """The UUIDs of ``devices`` (one node's) that some GPU request may get, or ``None``
        when a request reads no selector (it may get any GPU of the node)."""
        if not self.requests or any(not s.clauses for s in self.requests):
            return None
        gpus = [d for d in devices if d.is_gpu and d.uuid]
        return frozenset(d.uuid for d in gpus if any(s.test(d.facts) for s in self.requests))


class ClaimsError(ValueError):
    """A pod's claims that vramfit cannot read as GPUs; the message says which and why."""


def claimed_gpus(
    claims: Sequence[Claim], gpu_classes: Collection[str] = GPU_CLASSES
) -> ClaimedGpus:
    """What ``claims`` (one pod's) ask for in whole GPUs (pure). Requests of other classes are
    none of vramfit's. Raises ``ClaimsError`` for a GPU request of ``allocationMode: All``
    (as many GPUs as a node has: no count to place)."""
    gpus = 0
    requests: list[Selectors] = []
    notes: list[str] = []
    for claim in claims:
        for r in claim.requests:
            if r.device_class not in gpu_classes:
                continue
            if r.count == 0:
                raise ClaimsError(
                    f"ResourceClaim {claim.key} request {r.name!r} asks for all GPUs of a node "
                    "(allocationMode All): no count for vramfit to place"
                )
            gpus += r.count
            selectors = read_selectors(r.selectors)
            requests.append(selectors)
            if r.alternatives:
                notes.append(
                    f"ResourceClaim {claim.key} request {r.name!r} lists alternatives "
                    f"(firstAvailable): read as {r.count} GPU(s) of any product"
                )
            notes.extend(
                f"ResourceClaim {claim.key} selector not read by vramfit, left to the DRA "
                f"plugin: {text}"
                for text in selectors.unread
            )
    return ClaimedGpus(gpus, tuple(requests), tuple(notes))


def allocated_gpus(claim: Claim, devices: Mapping[tuple[str, str], Device]) -> tuple[str, ...]:
    """The UUIDs of the GPUs allocated to ``claim``, by (pool, device) in ``devices`` (pure);
    devices of other drivers, and those not found, are left out."""
    out = []
    for a in claim.allocated:
        if a.driver != DRIVER:
            continue
        device = devices.get((a.pool, a.device))
        if device is not None and device.uuid:
            out.append(device.uuid)
    return tuple(out)


__all__ = [
    "API",
    "DEVICE_TYPE_GPU",
    "DRIVER",
    "GPU_CLASS",
    "GPU_CLASSES",
    "Allocated",
    "Claim",
    "ClaimedGpus",
    "ClaimsError",
    "Device",
    "PodClaim",
    "Request",
    "Slice",
    "allocated_gpus",
    "claimed_gpus",
    "pod_claims",
    "read_claim",
    "read_requests",
    "read_slice",
    "template_requests",
]
