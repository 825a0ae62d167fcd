"""Model sizing: how many bytes of weights a served model loads and how much VRAM each GPU needs.

Sizes come from an annotation override (``vramfit.io/vram-per-gpu`` or ``vramfit.io/model-size``)
or from a catalog of well-known open models matched in the ``storageUri``. Headroom for the KV
cache and the runtime follows vLLM: the engine may use ``gpu_memory_utilization`` of each GPU, and
weights, KV cache and runtime must fit in that share. A model that matches nothing is reported as
unknown, never guessed.

The planner sizes InferenceServices with it and the admission webhook sizes pods with it, so it
lives in the core. The catalog itself (``ModelCatalog``, ``lookup``, the shipped
``BUILTIN_CATALOG``) and the ids URIs name are ``placement.model_ids``, light enough for the node
agent; they are exported here too for the sizing callers. Pure: the components read the file
with the one document loader and hand the decoded document to ``parse_model_catalog``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from placement.demand import A_MODEL, A_MODEL_SIZE, A_VRAM_PER_GPU
from placement.model import GIB
from placement.model_ids import (
    BUILTIN_CATALOG,
    BYTES_PER_PARAM,
    ModelCatalog,
    ModelInfo,
    lookup,
    model_id_from_uri,
    parse_model_catalog,
)
from placement.quantity import QuantityError, parse_bytes

__all__ = [
    "BUILTIN_CATALOG",
    "BYTES_PER_PARAM",
    "Headroom",
    "ModelCatalog",
    "ModelInfo",
    "Sizing",
    "lookup",
    "model_id_from_uri",
    "parse_model_catalog",
    "size_model",
    "vram_per_gpu",
]


@dataclass(frozen=True, slots=True)
class Headroom:
    """vLLM-style memory budget. ``gpu_memory_utilization`` is the share of each GPU the engine
    may use; within it, weights, a KV cache of ``kv_cache_fraction`` of the weights (at least
    ``min_kv_cache_bytes``) and ``runtime_overhead_bytes`` (CUDA context, activations, graphs)."""

    gpu_memory_utilization: float = 0.90
    kv_cache_fraction: float = 0.10
    min_kv_cache_bytes: int = GIB
    runtime_overhead_bytes: int = 2 * GIB

    def errors(self) -> list[str]:
        """Every value out of range, as messages naming the command-line option."""
        out = []
        if not 0 < self.gpu_memory_utilization <= 1:
            out.append(
                f"--gpu-memory-utilization must be in (0, 1], got {self.gpu_memory_utilization}"
            )
        if not 0 <= self.kv_cache_fraction <= 10:
            out.append(f"--kv-cache-fraction must be in [0, 10], got {self.kv_cache_fraction}")
        return out


@dataclass(frozen=True, slots=True)
class Sizing:
    """How much one pod of a component loads and needs per GPU, and where the numbers came from.

    ``vram_per_gpu`` is ``None`` when the model is unknown and no annotation sizes it.
    """

    model_id: str
    weights_bytes: int | None
    vram_per_gpu: int | None
    source: str
    dtype: str = ""


def vram_per_gpu(weights_bytes: int, shards: int, headroom: Headroom) -> int:
    """VRAM one GPU must have for a model split ``shards`` ways. Pure.

    ``(weights/shards + max(kv_fraction * weights/shards, min_kv) + runtime) / utilization``,
    rounded up to a whole MiB.
    """
    per = weights_bytes / max(1, shards)
    kv = max(per * headroom.kv_cache_fraction, headroom.min_kv_cache_bytes)
    need = (per + kv + headroom.runtime_overhead_bytes) / headroom.gpu_memory_utilization
    mib = 1024**2
    return math.ceil(need / mib) * mib


def size_model(
    annotations: Mapping[str, str],
    storage_uri: str,
    shards: int,
    headroom: Headroom,
    catalog: ModelCatalog,
) -> Sizing:
    """Size one pod's model: annotation ``vramfit.io/vram-per-gpu`` wins, then
    ``vramfit.io/model-size`` plus headroom, then the catalog by ``vramfit.io/model`` or the
    storage URI. Pure; raises ``ValueError`` naming the annotation when one is invalid."""
    named = annotations.get(A_MODEL, "").strip()
    info = lookup(catalog, named) if named else None
    if info is None and storage_uri:
        info = lookup(catalog, storage_uri)
    model_id = named or (info.model_id if info else model_id_from_uri(storage_uri))
    try:
        size = (
            parse_bytes(annotations[A_MODEL_SIZE], f"annotation {A_MODEL_SIZE}")
            if A_MODEL_SIZE in annotations
            else None
        )
        per_gpu = (
            parse_bytes(annotations[A_VRAM_PER_GPU], f"annotation {A_VRAM_PER_GPU}")
            if A_VRAM_PER_GPU in annotations
            else None
        )
    except QuantityError as exc:
        raise ValueError(str(exc)) from None
    weights = size if size is not None else (info.weights_bytes if info else None)
    dtype = info.dtype if info and size is None else ""
    if per_gpu is not None:
        return Sizing(model_id, weights, per_gpu, f"annotation {A_VRAM_PER_GPU}", dtype)
    if size is not None:
        return Sizing(
            model_id, size, vram_per_gpu(size, shards, headroom), f"annotation {A_MODEL_SIZE}"
        )
    if info is not None:
        return Sizing(
            info.model_id,
            info.weights_bytes,
            vram_per_gpu(info.weights_bytes, shards, headroom),
            f"catalog ({info.params / 1e9:.1f}B parameters, {info.dtype})",
            info.dtype,
        )
    return Sizing(model_id, None, None, "unknown model: set annotation vramfit.io/model-size")
