"""Model sizing: how many bytes of weights a served model loads and how much VRAM each GPU needs.

Sizes come from an annotation override (``vramfit.io/vram-per-gpu`` or ``vramfit.io/model-size``)
or from a catalog of well-known open models matched in the ``storageUri``. Headroom for the KV
cache and the runtime follows vLLM: the engine may use ``gpu_memory_utilization`` of each GPU, and
weights, KV cache and runtime must fit in that share. A model that matches nothing is reported as
unknown, never guessed.

The planner sizes InferenceServices with it and the admission webhook sizes pods with it, so it
lives in the core, with the shipped catalog beside it (``BUILTIN_CATALOG`` in this package). Pure:
the components read the file with the one document loader and hand the decoded document to
``parse_model_catalog``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from placement.demand import A_MODEL, A_MODEL_SIZE, A_VRAM_PER_GPU
from placement.fields import Fields, InputError, Problem
from placement.model import GIB
from placement.quantity import QuantityError, parse_bytes

BUILTIN_CATALOG: Final = "model_catalog.yaml"
"""The shipped catalog, a data file of this package (``importlib.resources``)."""

BYTES_PER_PARAM: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
}

# Name suffixes that say how a checkpoint is quantised, longest first.
_QUANT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("-gptq-int4", "int4"),
    ("-gptq-int8", "int8"),
    ("-fp8-dynamic", "fp8"),
    ("-w4a16", "int4"),
    ("-w8a8", "int8"),
    ("-bnb-4bit", "int4"),
    ("-awq", "int4"),
    ("-gptq", "int4"),
    ("-int4", "int4"),
    ("-int8", "int8"),
    ("-fp8", "fp8"),
    ("-fp16", "fp16"),
    ("-bf16", "bf16"),
)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A catalog entry: canonical id, parameters and the dtype of its weights."""

    model_id: str
    params: int
    dtype: str

    @property
    def weights_bytes(self) -> int:
        """Bytes of weights: parameters times bytes per parameter."""
        return math.ceil(self.params * BYTES_PER_PARAM[self.dtype])


@dataclass(frozen=True, slots=True)
class ModelCatalog:
    """Known models, keyed by lower-cased id and by lower-cased repository name."""

    by_key: Mapping[str, ModelInfo]
    source: str

    def __len__(self) -> int:
        return len({m.model_id for m in self.by_key.values()})


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


def parse_model_catalog(raw: Any, where: str) -> ModelCatalog:
    """Validate a raw model catalog; raises ``InputError`` (its source ``where``) with every
    problem. Pure."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("models"), list):
        raise InputError(where, [Problem("", "expected a mapping with a 'models' list")])
    f = Fields(raw, "")
    by_key: dict[str, ModelInfo] = {}
    for entry in f.children("models", ("ids", "params_b", "dtype")):
        ids = entry.strings("ids", required=True)
        if not ids and isinstance(entry.get("ids"), list):
            entry.bad("ids", "expected a non-empty list of model ids")
        params = entry.number("params_b", None, minimum=0.0, exclusive_minimum=True, required=True)
        dtype = entry.choice("dtype", tuple(BYTES_PER_PARAM), "", required=True)
        if not ids or params is None or not dtype:
            continue
        for model_id in ids:
            info = ModelInfo(model_id, round(params * 1e9), dtype)
            by_key[model_id.lower()] = info
            by_key.setdefault(model_id.split("/")[-1].lower(), info)
    f.raise_if_problems(where)
    return ModelCatalog(by_key, str(raw.get("source", where)))


def _strip_quant(name: str) -> tuple[str, str]:
    lowered = name.lower()
    for suffix, dtype in _QUANT_SUFFIXES:
        if lowered.endswith(suffix):
            return lowered[: -len(suffix)], dtype
    return lowered, ""


def model_id_from_uri(uri: str) -> str:
    """The model id a storage URI points at: ``hf://org/name[:rev]`` gives ``org/name``; other
    schemes give the path after the bucket or claim. Pure."""
    rest = re.sub(r"^[a-z0-9+.-]+://", "", uri.strip(), flags=re.IGNORECASE)
    if uri.lower().startswith("hf://"):
        rest = re.split(r"[:@]", rest, maxsplit=1)[0]
        return rest.strip("/")
    parts = [p for p in rest.split("/") if p]
    return "/".join(parts[1:]) if len(parts) > 1 else rest.strip("/")


def lookup(catalog: ModelCatalog, text: str) -> ModelInfo | None:
    """Find a known model named in ``text`` (a model id or a storage URI). Pure.

    Tries ``org/name`` pairs and single path segments from the deepest one up; a quantisation
    suffix in the name overrides the catalog dtype.
    """
    path = model_id_from_uri(text) if "://" in text else text
    parts = [p for p in re.split(r"[/:@]", path) if p]
    candidates: list[str] = []
    for i in range(len(parts) - 1, -1, -1):
        if i > 0:
            candidates.append(f"{parts[i - 1]}/{parts[i]}")
        candidates.append(parts[i])
    for cand in candidates:
        base, quant = _strip_quant(cand)
        exact = catalog.by_key.get(cand.lower())
        if exact is not None:
            return exact
        info = catalog.by_key.get(base)
        if info is not None:
            return ModelInfo(info.model_id, info.params, quant or info.dtype)
    return None


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
