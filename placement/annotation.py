"""The ``vramfit.io/reservation`` pod annotation: the durable record of a placement decision.

The extender writes it before it binds a pod; the extender rebuilds its reservations from it
after a restart, and the simulated kubelet reads which GPUs were chosen. JSON, versioned, and
decoded strictly so a hand-edited or truncated value is a clear error, not a wrong placement.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from placement.demand import A_RESERVATION
from placement.model import Reservation, ReservationState
from placement.report import format_time, parse_time

FORMAT_VERSION = 1


class AnnotationError(ValueError):
    """A reservation annotation that cannot be read; the message says which part is wrong."""


def encode_reservation(r: Reservation) -> str:
    """The annotation value for ``r`` (compact JSON, stable key order)."""
    return json.dumps(
        {
            "v": FORMAT_VERSION,
            "node": r.node,
            "gpus": list(r.gpu_uuids),
            "bytesPerGpu": r.bytes_per_gpu,
            "model": r.model_id,
            "at": format_time(r.created_at),
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def decode_reservation(
    value: str, *, pod_uid: str, pod_key: str, state: ReservationState = ReservationState.BOUND
) -> Reservation:
    """Read an annotation value back; raises ``AnnotationError`` naming the bad field."""
    where = f"pod {pod_key}: annotation {A_RESERVATION}"
    try:
        raw: Any = json.loads(value)
    except (TypeError, ValueError) as exc:
        raise AnnotationError(f"{where}: not JSON ({exc})") from None
    if not isinstance(raw, Mapping):
        raise AnnotationError(f"{where}: expected a JSON object")
    if raw.get("v") != FORMAT_VERSION:
        raise AnnotationError(f"{where}: unsupported format version {raw.get('v')!r}")
    node, gpus, size = raw.get("node"), raw.get("gpus"), raw.get("bytesPerGpu")
    if not isinstance(node, str) or not node:
        raise AnnotationError(f"{where}: 'node' must be a non-empty string")
    if not isinstance(gpus, list) or not all(isinstance(g, str) and g for g in gpus):
        raise AnnotationError(f"{where}: 'gpus' must be a list of GPU UUIDs")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise AnnotationError(f"{where}: 'bytesPerGpu' must be a non-negative integer")
    model = raw.get("model", "")
    if not isinstance(model, str):
        raise AnnotationError(f"{where}: 'model' must be a string")
    try:
        at = parse_time(str(raw.get("at", "")))
    except ValueError:
        raise AnnotationError(f"{where}: 'at' must be an RFC 3339 time") from None
    return Reservation(
        pod_uid=pod_uid,
        pod_key=pod_key,
        node=node,
        gpu_uuids=tuple(gpus),
        bytes_per_gpu=size,
        state=state,
        created_at=at,
        model_id=model,
    )


def reservation_of(pod: Mapping[str, Any]) -> str | None:
    """The raw annotation value on a raw pod, if any."""
    meta = pod.get("metadata") or {}
    ann = meta.get("annotations") or {} if isinstance(meta, Mapping) else {}
    value = ann.get(A_RESERVATION) if isinstance(ann, Mapping) else None
    return value if isinstance(value, str) else None
