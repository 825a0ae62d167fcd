"""Required node affinity for the static part of a GPU demand, on GPU Feature Discovery labels.

Autoscalers (cluster-autoscaler, Karpenter) simulate scheduling without extenders: they cannot
see that a pod needing 70 GiB per GPU does not fit a 40 GB GPU. What they do evaluate is node
affinity against node labels (or, for nodes not yet created, the labels a node group or instance
type would have). So the part of a demand that never changes while the pod lives, the VRAM each
GPU must have and the allowed GPU products, is written as node affinity on the labels GFD sets
(``reference/cluster-agreement.md`` §6): ``nvidia.com/gpu.memory`` is MiB of the GPU's total
memory, so a need of N MiB is ``Gt N-1``; ``nvidia.com/gpu.product`` is the product name with
spaces made ``-`` (``gfd_product``).

The pod's own affinity is never widened: the new expressions are ANDed into every one of its
required ``nodeSelectorTerms`` (terms are ORed, expressions within a term ANDed), so a node that
matches afterwards matched before. Pure: raw JSON in, raw JSON out.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

from placement.shape import MIB, gfd_product

GFD_MEMORY: Final = "nvidia.com/gpu.memory"
GFD_PRODUCT: Final = "nvidia.com/gpu.product"
REQUIRED: Final = "requiredDuringSchedulingIgnoredDuringExecution"

Expression = dict[str, Any]


class AffinityError(ValueError):
    """The pod's node affinity is not the shape the API defines; the webhook leaves it alone."""


def static_expressions(vram_per_gpu: int, products: Collection[str]) -> tuple[Expression, ...]:
    """The node selector requirements a node must meet to ever run the pod (pure).

    ``vram_per_gpu`` bytes become ``nvidia.com/gpu.memory Gt <MiB needed - 1>`` (the label is
    an integer of MiB; ``Gt`` is the only order operator besides ``Lt``); ``products`` become
    ``nvidia.com/gpu.product In [...]`` in GFD's spelling. Nothing is required for a zero need
    or no products.
    """
    expressions: list[Expression] = []
    mib = -(-vram_per_gpu // MIB)
    if mib > 0:
        expressions.append({"key": GFD_MEMORY, "operator": "Gt", "values": [str(mib - 1)]})
    names = sorted({gfd_product(p.strip()) for p in products if p.strip()})
    if names:
        expressions.append({"key": GFD_PRODUCT, "operator": "In", "values": names})
    return tuple(expressions)


def _object(value: object, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise AffinityError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _terms(affinity: object) -> list[Mapping[str, Any]]:
    """The pod's required nodeSelectorTerms (empty where it requires nothing); raises
    ``AffinityError`` naming the first field that is not the API's shape."""
    node_affinity = _object(_object(affinity, "spec.affinity").get("nodeAffinity"), "nodeAffinity")
    required = _object(node_affinity.get(REQUIRED), f"nodeAffinity.{REQUIRED}")
    terms = required.get("nodeSelectorTerms")
    if terms is None:
        return []
    if not isinstance(terms, list):
        raise AffinityError("nodeSelectorTerms: expected a list")
    checked = []
    for i, raw in enumerate(terms):
        term = _object(raw, f"nodeSelectorTerms[{i}]")
        if not isinstance(term.get("matchExpressions", []), list | None):
            raise AffinityError(f"nodeSelectorTerms[{i}].matchExpressions: expected a list")
        checked.append(term)
    return checked


def narrowed_required(affinity: object, expressions: Sequence[Expression]) -> dict[str, Any] | None:
    """The pod's ``requiredDuringSchedulingIgnoredDuringExecution`` with ``expressions`` ANDed
    into every term, or ``None`` when every term already has them (pure; the input is not
    changed).

    A pod without required node affinity gets one term of the expressions alone. A term that
    has only ``matchFields`` keeps them and gains ``matchExpressions``; an empty term (which
    matches no node) stays empty. An expression already in
    a term is not repeated, so running twice (webhook reinvocation) changes nothing. Raises
    ``AffinityError`` where the affinity is not the API's shape (the API server would refuse
    the pod anyway; nothing is guessed).
    """
    terms = _terms(affinity)
    if not expressions:
        return None
    if not terms:
        return {"nodeSelectorTerms": [{"matchExpressions": [dict(e) for e in expressions]}]}
    changed = False
    new_terms: list[Any] = []
    for term in terms:
        new_term: dict[str, Any] = copy.deepcopy(dict(term))
        if not new_term.get("matchExpressions") and not new_term.get("matchFields"):
            new_terms.append(new_term)  # an empty term matches no node: filling it would widen
            continue
        present: list[Any] = list(new_term.get("matchExpressions") or [])
        for expression in expressions:
            if expression not in present:
                present.append(dict(expression))
                changed = True
        new_term["matchExpressions"] = present
        new_terms.append(new_term)
    if not changed:
        return None
    node_affinity = _object(affinity, "spec.affinity").get("nodeAffinity") or {}
    required = copy.deepcopy(dict(node_affinity.get(REQUIRED) or {}))
    required["nodeSelectorTerms"] = new_terms
    return required
