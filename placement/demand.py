"""Read a pod's GPU demand from its raw JSON: the ``nvidia.com/gpu`` request plus annotations.

Pods arrive as JSON (from kube-scheduler or a watch), so this works on plain mappings. Errors
name the annotation or container field at fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from placement.model import Demand, NvlinkMode
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

KNOWN_ANNOTATIONS = frozenset(
    {A_VRAM_PER_GPU, A_MODEL, A_MODEL_SIZE, A_NVLINK, A_GPU_PRODUCT, A_POLICY, A_RESERVATION}
)

_NVLINK_WORDS = {
    "required": NvlinkMode.REQUIRED,
    "true": NvlinkMode.REQUIRED,
    "preferred": NvlinkMode.PREFERRED,
    "none": NvlinkMode.NONE,
    "false": NvlinkMode.NONE,
}


class DemandError(ValueError):
    """A pod whose GPU demand cannot be read; the message names the field and the pod."""


def _container_gpus(container: Mapping[str, Any], where: str) -> int:
    resources = container.get("resources") or {}
    if not isinstance(resources, Mapping):
        raise DemandError(f"{where}.resources: expected an object")
    found = 0
    for kind in ("limits", "requests"):
        values = resources.get(kind) or {}
        if not isinstance(values, Mapping):
            raise DemandError(f"{where}.resources.{kind}: expected an object")
        if GPU_RESOURCE in values:
            try:
                found = max(
                    found,
                    parse_count(values[GPU_RESOURCE], f"{where}.resources.{kind}[{GPU_RESOURCE}]"),
                )
            except QuantityError as exc:
                raise DemandError(str(exc)) from None
    return found


def gpu_count(pod: Mapping[str, Any]) -> int:
    """GPUs the pod holds while running: the sum over containers, or the largest init container."""
    spec = pod.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise DemandError("spec: expected an object")
    totals = []
    for field in ("containers", "initContainers"):
        containers = spec.get(field) or []
        if not isinstance(containers, list):
            raise DemandError(f"spec.{field}: expected a list")
        counts = []
        for i, c in enumerate(containers):
            if not isinstance(c, Mapping):
                raise DemandError(f"spec.{field}[{i}]: expected an object")
            counts.append(_container_gpus(c, f"spec.{field}[{i}]"))
        totals.append(counts)
    regular, init = totals
    return max(sum(regular), max(init, default=0))


def pod_key(pod: Mapping[str, Any]) -> str:
    """``namespace/name`` of a raw pod, for messages."""
    meta = pod.get("metadata") or {}
    if not isinstance(meta, Mapping):
        return "<pod without metadata>"
    return f"{meta.get('namespace', 'default')}/{meta.get('name', '<unnamed>')}"


def demand_from_pod(pod: Mapping[str, Any]) -> Demand | None:
    """The pod's GPU demand, or ``None`` when it asks for no GPU.

    Raises ``DemandError`` naming the pod and the annotation or field when a value is invalid.
    """
    try:
        return _demand(pod)
    except DemandError as exc:
        raise DemandError(f"pod {pod_key(pod)}: {exc}") from None


def _demand(pod: Mapping[str, Any]) -> Demand | None:
    if not isinstance(pod, Mapping):
        raise DemandError("expected a Pod object")
    gpus = gpu_count(pod)
    if gpus == 0:
        return None
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {} if isinstance(meta, Mapping) else {}
    if not isinstance(annotations, Mapping):
        raise DemandError("metadata.annotations: expected an object")

    def quantity(name: str) -> int:
        if name not in annotations:
            return 0
        try:
            return parse_bytes(annotations[name], f"annotation {name}")
        except QuantityError as exc:
            raise DemandError(str(exc)) from None

    vram = quantity(A_VRAM_PER_GPU)
    model_bytes = quantity(A_MODEL_SIZE)
    nvlink_raw = str(annotations.get(A_NVLINK, "preferred")).strip().lower()
    if nvlink_raw not in _NVLINK_WORDS:
        raise DemandError(
            f"annotation {A_NVLINK}: {annotations[A_NVLINK]!r} is not one of "
            "required, preferred, none (or true/false)"
        )
    products_raw = str(annotations.get(A_GPU_PRODUCT, ""))
    products = frozenset(p.strip() for p in products_raw.split(",") if p.strip())
    return Demand(
        gpus=gpus,
        vram_per_gpu=vram,
        model_id=str(annotations.get(A_MODEL, "")).strip(),
        model_bytes=model_bytes,
        nvlink=_NVLINK_WORDS[nvlink_raw],
        products=products,
        policy=str(annotations.get(A_POLICY, "")).strip(),
    )
