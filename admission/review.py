"""The AdmissionReview v1 wire format, and the JSONPatch that carries a derivation to the pod.

Requests are decoded strictly at the edge (``ReviewError`` with a message, answered 400): the API
server sends a well-formed review, so anything else is a caller's mistake, never a reason to
answer 5xx. The response always allows the pod; a mutation travels as a base64 RFC 6902 patch
(``patchType: JSONPatch``). Pure.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypedDict

import orjson

from placement.affinity import REQUIRED
from placement.derive import Derivation
from placement.fields import quote

API_VERSION: Final = "admission.k8s.io/v1"
KIND: Final = "AdmissionReview"
MAX_WARNING: Final = 256
"""Characters of a warning returned to the client (the API server truncates longer ones)."""


class ReviewError(ValueError):
    """A request body that is not an AdmissionReview v1; answered 400 with the message."""


class RawRequest(TypedDict, total=False):
    """``AdmissionReview.request`` as the API server sends it (only the fields read here)."""

    uid: str
    kind: dict[str, str]
    operation: str
    namespace: str
    name: str
    object: dict[str, Any]
    dryRun: bool


@dataclass(frozen=True, slots=True)
class Review:
    """A decoded review: whose pod (``namespace`` from the request, which is authoritative at
    CREATE), the operation, and the raw object."""

    uid: str
    kind: str
    operation: str
    namespace: str
    obj: Mapping[str, Any]
    dry_run: bool

    @property
    def is_pod_create(self) -> bool:
        return self.kind == "Pod" and self.operation == "CREATE"


def decode_review(body: bytes) -> Review:
    """Decode and check an AdmissionReview body; raises ``ReviewError`` naming what is wrong."""
    try:
        raw: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ReviewError(f"body is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ReviewError(f"expected an AdmissionReview object, got {type(raw).__name__}")
    if raw.get("apiVersion") != API_VERSION or raw.get("kind") != KIND:
        raise ReviewError(
            f"expected apiVersion {API_VERSION} kind {KIND}, got "
            f"{quote(raw.get('apiVersion'))} {quote(raw.get('kind'))}"
        )
    request = raw.get("request")
    if not isinstance(request, dict):
        raise ReviewError("request: expected an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError("request.uid: expected a non-empty string")
    kind = request.get("kind") or {}
    operation = request.get("operation", "")
    namespace = request.get("namespace") or ""
    obj = request.get("object")
    if not isinstance(kind, dict) or not isinstance(kind.get("kind", ""), str):
        raise ReviewError("request.kind: expected a GroupVersionKind object")
    if not isinstance(operation, str) or not isinstance(namespace, str):
        raise ReviewError("request.operation and request.namespace: expected strings")
    if obj is not None and not isinstance(obj, dict):
        raise ReviewError("request.object: expected an object")
    return Review(
        uid=uid,
        kind=kind.get("kind", ""),
        operation=operation,
        namespace=namespace,
        obj=obj or {},
        dry_run=request.get("dryRun") is True,
    )


def _escape(key: str) -> str:
    """A map key as one JSON Pointer token (RFC 6901: ``~`` then ``/``)."""
    return key.replace("~", "~0").replace("/", "~1")


def _present(value: object, key: str) -> bool:
    return isinstance(value, Mapping) and value.get(key) is not None


def patch_ops(pod: Mapping[str, Any], derivation: Derivation) -> list[dict[str, Any]]:
    """The JSONPatch that applies ``derivation`` to ``pod`` (pure): each annotation added under
    ``/metadata/annotations`` (created when absent), and the required node affinity added at the
    deepest existing level of ``/spec/affinity/nodeAffinity``. An empty list changes nothing."""
    ops: list[dict[str, Any]] = []
    meta = pod.get("metadata")
    if derivation.annotations:
        if not _present(pod, "metadata"):
            ops.append({"op": "add", "path": "/metadata", "value": {}})
        if not _present(meta, "annotations"):
            ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
        for key, text in sorted(derivation.annotations.items()):
            ops.append(
                {"op": "add", "path": f"/metadata/annotations/{_escape(key)}", "value": text}
            )
    if derivation.required is not None:
        spec = pod.get("spec") or {}
        affinity = spec.get("affinity")
        path: str
        value: dict[str, Any]
        if not _present(spec, "affinity"):
            path, value = "/spec/affinity", {"nodeAffinity": {REQUIRED: derivation.required}}
        elif not _present(affinity, "nodeAffinity"):
            path, value = "/spec/affinity/nodeAffinity", {REQUIRED: derivation.required}
        else:
            path, value = f"/spec/affinity/nodeAffinity/{REQUIRED}", derivation.required
        ops.append({"op": "add", "path": path, "value": value})
    return ops


def response(uid: str, ops: list[dict[str, Any]], warnings: list[str] | None = None) -> bytes:
    """An AdmissionReview answer that allows the pod, with ``ops`` as its JSONPatch if any."""
    answer: dict[str, Any] = {"uid": uid, "allowed": True}
    if ops:
        answer["patchType"] = "JSONPatch"
        answer["patch"] = base64.b64encode(orjson.dumps(ops)).decode("ascii")
    if warnings:
        answer["warnings"] = [w[:MAX_WARNING] for w in warnings]
    return orjson.dumps({"apiVersion": API_VERSION, "kind": KIND, "response": answer})
