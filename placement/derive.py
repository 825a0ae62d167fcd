"""What the admission webhook adds to a GPU pod: the demand annotations nobody wrote by hand, and
required node affinity for the static part of the demand.

A pod KServe creates carries the model it serves (labels, storage URI, server arguments) but no
``vramfit.io/*`` annotations. ``derive`` fills the absent ones from the model catalog with the
sizing rules the planner uses (``placement.models``), lists what it derived in
``vramfit.io/derived`` (a person reading the pod sees which values nobody chose), and narrows the
pod's node affinity to nodes whose GPUs are big enough and of an allowed product
(``placement.affinity``), which is what autoscalers can read.

It never rejects: a pod whose need cannot be worked out (no model named, a model the catalog
does not know, annotations or affinity that cannot be read) comes back ``NOT_DERIVED`` with a
reason from a fixed set (a metric label) and a message for an Event, and the webhook admits it
unchanged. Annotations a person wrote are never replaced. Pure.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from placement.affinity import AffinityError, narrowed_required, static_expressions
from placement.demand import (
    A_MODEL,
    A_MODEL_SIZE,
    A_VRAM_PER_GPU,
    ANNOTATION_PREFIX,
    DemandError,
    demand_from_pod,
    pod_key,
)
from placement.fields import quote
from placement.kserve_pod import KServeRef, kserve_ref
from placement.model import Demand
from placement.models import Headroom, ModelCatalog, Sizing, lookup, model_id_from_uri, size_model
from placement.shape import MIB

A_DERIVED: Final = "vramfit.io/derived"


class Outcome(enum.Enum):
    """What the webhook does with the pod."""

    NOT_GPU = "not-gpu"
    MUTATED = "mutated"
    COMPLETE = "complete"
    NOT_DERIVED = "not-derived"


# Why a GPU pod is admitted unchanged: a fixed set, so a metric label stays bounded.
R_INVALID_POD: Final = "invalid-pod"
R_INVALID_AFFINITY: Final = "invalid-affinity"
R_NO_MODEL: Final = "no-model"
R_UNKNOWN_MODEL: Final = "unknown-model"
REASONS: Final = (R_INVALID_POD, R_INVALID_AFFINITY, R_NO_MODEL, R_UNKNOWN_MODEL)

_HOW_TO_FIX: Final = (
    f"set {A_VRAM_PER_GPU} (or {A_MODEL_SIZE}) on the pod template, or add the model to the "
    "catalog; until then autoscalers cannot see how much GPU memory it needs"
)


@dataclass(frozen=True, slots=True)
class Derivation:
    """The webhook's answer for one pod.

    ``annotations`` are the ones to add (absent before); ``required`` is the pod's new
    ``requiredDuringSchedulingIgnoredDuringExecution`` node affinity, or ``None`` to leave it.
    """

    outcome: Outcome
    reason: str = ""
    message: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)
    required: dict[str, Any] | None = None
    ref: KServeRef | None = None


def _quantity(n: int) -> str:
    """Bytes as a whole number of MiB, the way a person writes them ("71680Mi")."""
    return f"{-(-n // MIB)}Mi"


def _sizing(
    annotations: Mapping[str, str], ref: KServeRef, headroom: Headroom, catalog: ModelCatalog
) -> Sizing:
    """The first sizing that knows the VRAM need: the storage URI, then each model name."""
    shards = ref.shards or 1
    candidates = [ref.storage_uri, *ref.model_names]
    first: Sizing | None = None
    for text in candidates:
        sizing = size_model(annotations, text, shards, headroom, catalog)
        if sizing.vram_per_gpu is not None:
            return sizing
        first = first or sizing
    assert first is not None
    return first


def _model_id(annotations: Mapping[str, str], ref: KServeRef, catalog: ModelCatalog) -> str:
    """The model id for cache affinity when the need itself was written by hand."""
    for text in (ref.storage_uri, *ref.model_names):
        info = lookup(catalog, text) if text else None
        if info is not None:
            return info.model_id
    return model_id_from_uri(ref.storage_uri) if ref.storage_uri else ""


def _not_derived(reason: str, key: str, detail: str, ref: KServeRef | None) -> Derivation:
    owner = f" ({ref.kind} {quote(ref.name)})" if ref and ref.kind else ""
    return Derivation(
        Outcome.NOT_DERIVED,
        reason=reason,
        message=f"vramfit admitted pod {key}{owner} unchanged: {detail}",
        ref=ref,
    )


def _derived_need(
    key: str,
    annotations: Mapping[str, str],
    *,
    demand: Demand,
    ref: KServeRef,
    catalog: ModelCatalog,
    headroom: Headroom,
) -> tuple[int, dict[str, str]] | Derivation:
    """The VRAM need per GPU and the annotations that say it, or why it cannot be derived."""
    try:
        sizing = _sizing(annotations, ref, headroom, catalog)
    except ValueError as exc:  # the same parser as demand_from_pod; kept for safety
        return _not_derived(R_INVALID_POD, key, f"{exc}", ref)
    if sizing.vram_per_gpu is None:
        if not (ref.storage_uri or ref.model_names or demand.model_id):
            detail = f"it names no model and has no {A_VRAM_PER_GPU}; "
            return _not_derived(R_NO_MODEL, key, detail + _HOW_TO_FIX, ref)
        named = demand.model_id or ref.storage_uri or ref.model_names[0]
        detail = f"model {quote(named)} is not in the model catalog; "
        return _not_derived(R_UNKNOWN_MODEL, key, detail + _HOW_TO_FIX, ref)
    add = {A_VRAM_PER_GPU: _quantity(sizing.vram_per_gpu)}
    if A_MODEL not in annotations and sizing.model_id:
        add[A_MODEL] = sizing.model_id
    if A_MODEL_SIZE not in annotations and sizing.weights_bytes:
        add[A_MODEL_SIZE] = _quantity(sizing.weights_bytes)
    return sizing.vram_per_gpu, add


def derive(pod: Mapping[str, Any], catalog: ModelCatalog, headroom: Headroom) -> Derivation:
    """Decide what to add to ``pod`` (see the module docstring). Pure."""
    key = pod_key(pod)
    try:
        demand = demand_from_pod(pod)
    except DemandError as exc:
        return _not_derived(R_INVALID_POD, key, f"{exc}", None)
    if demand is None:
        return Derivation(Outcome.NOT_GPU)
    raw_annotations = (pod.get("metadata") or {}).get("annotations") or {}
    annotations = {k: v for k, v in raw_annotations.items() if isinstance(v, str)}
    ref = kserve_ref(pod, demand.gpus)
    vram = demand.vram_per_gpu
    add: dict[str, str] = {}
    if vram == 0:
        need = _derived_need(
            key, annotations, demand=demand, ref=ref, catalog=catalog, headroom=headroom
        )
        if isinstance(need, Derivation):
            return need
        vram, add = need
    elif A_MODEL not in annotations and (model := _model_id(annotations, ref, catalog)):
        add[A_MODEL] = model
    try:
        required = narrowed_required(
            (pod.get("spec") or {}).get("affinity"), static_expressions(vram, demand.products)
        )
    except AffinityError as exc:
        return _not_derived(R_INVALID_AFFINITY, key, f"spec.affinity: {exc}", ref)
    if add:
        before = {n for n in annotations.get(A_DERIVED, "").split(",") if n}
        names = before | {n.removeprefix(ANNOTATION_PREFIX) for n in add}
        add[A_DERIVED] = ",".join(sorted(names))
    if not add and required is None:
        return Derivation(Outcome.COMPLETE, ref=ref)
    return Derivation(Outcome.MUTATED, annotations=add, required=required, ref=ref)
