"""A reference evaluator of required node affinity, written from the API's definition, for tests.

Terms are ORed; a term matches when every expression and field selector matches (an empty term
matches nothing, as in kube-scheduler). ``Gt``/``Lt`` compare integers and fail on a label that
is absent or not an integer. No required affinity matches every node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _expression(labels: Mapping[str, str], e: Mapping[str, Any]) -> bool:
    key, op, values = e["key"], e["operator"], list(e.get("values") or [])
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        try:
            have, bound = int(labels[key]), int(values[0])
        except (KeyError, ValueError):
            return False
        return have > bound if op == "Gt" else have < bound
    raise ValueError(f"unknown operator {op}")


def _term(name: str, labels: Mapping[str, str], term: Mapping[str, Any]) -> bool:
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    return all(_expression(labels, e) for e in expressions) and all(
        _expression({"metadata.name": name}, f) for f in fields
    )


def matches(name: str, labels: Mapping[str, str], affinity: Mapping[str, Any] | None) -> bool:
    """Does a node with ``name`` and ``labels`` satisfy the pod's required node affinity?"""
    required = ((affinity or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if not required:
        return True
    return any(_term(name, labels, t) for t in required.get("nodeSelectorTerms") or [])
