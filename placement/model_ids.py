"""The model catalog, and the model id a storage URI names: one rule for every component.

The planner writes ``vramfit.io/model`` from a component's storage URI, and the node agent
publishes the weights KServe cached on a node (a LocalModelCache's ``sourceModelUri``) under a
model id; the extender's cache affinity compares the two strings. Both therefore take the id
from a URI here, with the same catalog:

- an id is *read* when the URI names it: ``hf://org/name`` (``:revision`` or ``@revision``
  dropped), or a path whose last folder, before an optional ``snapshots/<revision>``, is the
  Hugging Face cache layout ``models--org--name`` or ``org--name`` (Hugging Face repository
  names never hold ``--``). A read id the catalog knows exactly (any case, a quantisation
  suffix allowed) is written as the catalog writes it; one it does not know stays as written;
- otherwise a catalog model named somewhere in the path is the id, and failing that the path
  after the bucket or claim (``model_id_from_uri``).

This module is the catalog's home too (its entries canonicalise ids), and it stays light: the
node agent imports it without the quantity parser (which loads the kubernetes client). The
sizing rules built on the catalog are ``placement.models``. Pure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from placement.fields import Fields, InputError, Problem

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

_SCHEME = re.compile(r"^([a-z0-9+.-]+)://", re.IGNORECASE)


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


def catalog_entry(catalog: ModelCatalog, model_id: str) -> ModelInfo | None:
    """The catalog entry of exactly ``model_id`` (any case, a quantisation suffix allowed);
    ``None`` for an id the catalog does not know, however similar. Pure."""
    info = lookup(catalog, model_id)
    if info is None:
        return None
    wanted, found = model_id.lower(), info.model_id.lower()
    return info if wanted == found or wanted.startswith(f"{found}-") else None


def _hf_cache_id(folder: str) -> str | None:
    """``org/name`` from ``models--org--name`` or ``org--name``; ``None`` otherwise."""
    parts = folder.split("--")
    if len(parts) == 3 and parts[0] == "models":
        parts = parts[1:]
    if len(parts) == 2 and all(parts):
        return f"{parts[0]}/{parts[1]}"
    return None


def model_id_in_uri(uri: str) -> str | None:
    """The model id a storage URI names outright, or ``None`` when it names none. Pure.

    ``hf://org/name[:revision]`` gives ``org/name``; a path (any scheme) whose last folder,
    before an optional ``snapshots/<revision>``, is ``models--org--name`` or ``org--name``
    gives ``org/name``.
    """
    text = uri.strip()
    scheme = _SCHEME.match(text)
    rest = text[scheme.end() :] if scheme else text
    if scheme and scheme.group(1).lower() == "hf":
        repo = re.split(r"[:@]", rest, maxsplit=1)[0]
        parts = [p for p in repo.split("/") if p]
        return "/".join(parts[:2]) if len(parts) >= 2 else None
    folders = [p for p in rest.split("/") if p]
    if len(folders) >= 2 and folders[-2] == "snapshots":
        folders = folders[:-2]
    elif folders and folders[-1] == "snapshots":
        folders = folders[:-1]
    return _hf_cache_id(folders[-1]) if folders else None


def model_id_for_uri(catalog: ModelCatalog, uri: str) -> tuple[str, bool]:
    """The model id of a component that names its model only by the storage ``uri``, and
    whether it was read from the URI (``False``: guessed from the path). ``("", False)`` for
    an empty URI. Pure; see the module docstring."""
    named = model_id_in_uri(uri)
    if named:
        info = catalog_entry(catalog, named)
        return (info.model_id if info else named), True
    if not uri.strip():
        return "", False
    info = lookup(catalog, uri)
    return (info.model_id if info else model_id_from_uri(uri)), False
