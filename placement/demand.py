"""Read a pod's GPU demand from its raw JSON: the ``nvidia.com/gpu`` request plus annotations.

Pods arrive as JSON (from kube-scheduler or a watch), so this works on plain mappings. Errors
name the pod and the annotation or container field at fault. The GPU count follows the
scheduler's own rule for a pod's effective request (regular containers and sidecars run
together; each init container runs alone beside the sidecars started before it). A pod that
claims its GPUs through Dynamic Resource Allocation asks for none of ``nvidia.com/gpu``: its
count comes from its ResourceClaims (``placement.dra``), passed in as ``claimed_gpus``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from placement.fields import quote
from placement.model import Allocator, Demand, NvlinkMode
from placement.policies import PROFILES
from placement.quantity import QuantityError, parse_bytes, parse_count

GPU_RESOURCE = "nvidia.com/gpu"
ANNOTATION_PREFIX = "vramfit.io/"
A_VRAM_PER_GPU = "vramfit.io/vram-per-gpu"
A_MODEL = "vramfit.io/model"
A_MODEL_SIZE = "vramfit.io/model-size"
A_NVLINK = "vramfit.io/nvlink"
A_GPU_PRODUCT = "vramfit.io/gpu-product"
A_POLICY = "vramfit.io/policy"
A_RESERVATION = "vramfit.io/reservation"

_NVLINK_WORDS = {
    "required": NvlinkMode.REQUIRED,
    "true": NvlinkMode.REQUIRED,
    "preferred": NvlinkMode.PREFERRED,
    "none": NvlinkMode.NONE,
    "false": NvlinkMode.NONE,
}


class DemandError(ValueError):
    """A pod whose GPU demand cannot be read; the message names the field and the pod."""


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    """``value`` as an object; ``None`` (an omitted field) reads as empty."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise DemandError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _container_gpus(container: Mapping[str, Any], where: str) -> int:
    """GPUs one container asks for: its request, which Kubernetes defaults from its limit."""
    resources = _mapping(container.get("resources"), f"{where}.resources")
    found: dict[str, int] = {}
    for kind in ("limits", "requests"):
        values = _mapping(resources.get(kind), f"{where}.resources.{kind}")
        if GPU_RESOURCE in values:
            try:
                found[kind] = parse_count(
                    values[GPU_RESOURCE], f"{where}.resources.{kind}[{GPU_RESOURCE}]"
                )
            except QuantityError as exc:
                raise DemandError(str(exc)) from None
    if len(found) == 2 and found["limits"] != found["requests"]:
        raise DemandError(
            f"{where}.resources: {GPU_RESOURCE} request {found['requests']} differs from its "
            f"limit {found['limits']} (extended resources cannot be overcommitted)"
        )
    return max(found.values(), default=0)


def _containers(spec: Mapping[str, Any], field: str) -> list[Mapping[str, Any]]:
    value = spec.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise DemandError(f"spec.{field}: expected a list, got {type(value).__name__}")
    for i, c in enumerate(value):
        if not isinstance(c, Mapping):
            raise DemandError(f"spec.{field}[{i}]: expected an object, got {type(c).__name__}")
    return value


def gpu_count(pod: Mapping[str, Any]) -> int:
    """GPUs the pod holds, as the scheduler counts its effective request (pure).

    Regular containers and restartable init containers (sidecars) run together, so their
    requests add up; an ordinary init container runs alone beside the sidecars declared before
    it. The pod needs the larger of the two.
    """
    spec = _mapping(pod.get("spec"), "spec")
    running = sum(
        _container_gpus(c, f"spec.containers[{i}]")
        for i, c in enumerate(_containers(spec, "containers"))
    )
    sidecars = 0
    init_peak = 0
    for i, c in enumerate(_containers(spec, "initContainers")):
        n = _container_gpus(c, f"spec.initContainers[{i}]")
        if c.get("restartPolicy") == "Always":
            running += n
            sidecars += n
            init_peak = max(init_peak, sidecars)
        else:
            init_peak = max(init_peak, n + sidecars)
    return max(running, init_peak)


def pod_key(pod: object) -> str:
    """``namespace/name`` of a raw pod, for messages."""
    meta = pod.get("metadata") if isinstance(pod, Mapping) else None
    if not isinstance(meta, Mapping):
        return "<pod without metadata>"
    return f"{meta.get('namespace') or 'default'}/{meta.get('name') or '<unnamed>'}"


def demand_from_pod(pod: Mapping[str, Any], *, claimed_gpus: int = 0) -> Demand | None:
    """The pod's GPU demand, or ``None`` when it asks for no GPU (pure).

    ``claimed_gpus`` are the GPUs its ResourceClaims ask for (``placement.dra``): such a pod
    gets them from the DRA scheduler plugin (``Allocator.DRA``), and may not also ask for
    ``nvidia.com/gpu``. Raises ``DemandError`` naming the pod and the annotation or field when
    a value is invalid.
    """
    try:
        return _demand(pod, claimed_gpus)
    except DemandError as exc:
        raise DemandError(f"pod {pod_key(pod)}: {exc}") from None


def _demand(pod: object, claimed_gpus: int = 0) -> Demand | None:
    if not isinstance(pod, Mapping):
        raise DemandError(f"expected a Pod object, got {type(pod).__name__}")
    meta = _mapping(pod.get("metadata"), "metadata")
    annotations = _mapping(meta.get("annotations"), "metadata.annotations")
    gpus = gpu_count(pod)
    allocator = Allocator.DEVICE_PLUGIN
    if claimed_gpus > 0:
        if gpus:
            raise DemandError(
                f"asks for {gpus} {GPU_RESOURCE} and for {claimed_gpus} GPU(s) through "
                "ResourceClaims; vramfit places a pod that gets its GPUs one way"
            )
        gpus, allocator = claimed_gpus, Allocator.DRA
    if gpus == 0:
        return None

    def text(name: str, default: str = "") -> str:
        value = annotations.get(name, default)
        if not isinstance(value, str):
            raise DemandError(
                f"annotation {name}: expected a string, got {type(value).__name__} {quote(value)}"
            )
        return value.strip()

    def quantity(name: str) -> int:
        if name not in annotations:
            return 0
        try:
            return parse_bytes(text(name), f"annotation {name}")
        except QuantityError as exc:
            raise DemandError(str(exc)) from None

    vram = quantity(A_VRAM_PER_GPU)
    model_bytes = quantity(A_MODEL_SIZE)
    nvlink_raw = text(A_NVLINK, "preferred").lower()
    if nvlink_raw not in _NVLINK_WORDS:
        raise DemandError(
            f"annotation {A_NVLINK}: {quote(annotations[A_NVLINK])} is not one of "
            "required, preferred, none (or true/false)"
        )
    products = frozenset(p.strip() for p in text(A_GPU_PRODUCT).split(",") if p.strip())
    policy = text(A_POLICY)
    if policy and policy not in PROFILES:
        raise DemandError(
            f"annotation {A_POLICY}: {quote(policy)} is not one of {', '.join(sorted(PROFILES))}"
        )
    return Demand(
        gpus=gpus,
        vram_per_gpu=vram,
        model_id=text(A_MODEL),
        model_bytes=model_bytes,
        nvlink=_NVLINK_WORDS[nvlink_raw],
        products=products,
        policy=policy,
        allocator=allocator,
    )
