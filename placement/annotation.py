"""The ``vramfit.io/reservation`` pod annotation: the durable record of a placement decision.

The extender writes it before it binds a pod; the extender rebuilds its reservations from it
after a restart, and the simulated kubelet reads which GPUs were chosen. JSON, versioned, and
decoded strictly so a hand-edited or truncated value is a clear error, not a wrong placement.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from placement.demand import A_RESERVATION
from placement.fields import quote
from placement.model import Reservation, ReservationState
from placement.nodegpustate import format_time, parse_time

FORMAT_VERSION = 1


class AnnotationError(ValueError):
    """A reservation annotation that cannot be read; the message says which part is wrong."""


def encode_reservation(r: Reservation) -> str:
    """The annotation value for ``r`` (pure; compact JSON, stable key order).

    The pod's UID, key and the reservation's state and expiry are not part of the value: the
    reader knows the pod, and a written reservation is bound. The bytes the pod loads
    (``loadBytes``, for the load budget) are written when known.
    """
    value: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "node": r.node,
        "gpus": list(r.gpu_uuids),
        "bytesPerGpu": r.bytes_per_gpu,
        "model": r.model_id,
        "at": format_time(r.created_at),
    }
    if r.load_bytes:
        value["loadBytes"] = r.load_bytes
    return json.dumps(
        value,
        separators=(",", ":"),
        sort_keys=True,
    )


def decode_reservation(
    value: str, *, pod_uid: str, pod_key: str, state: ReservationState = ReservationState.BOUND
) -> Reservation:
    """Read an annotation value back (pure); raises ``AnnotationError`` naming every bad field."""
    where = f"pod {pod_key}: annotation {A_RESERVATION}"
    try:
        raw: Any = json.loads(value)
    except (TypeError, ValueError) as exc:
        raise AnnotationError(f"{where}: not JSON ({exc})") from None
    if not isinstance(raw, Mapping):
        raise AnnotationError(f"{where}: expected a JSON object")
    if raw.get("v") != FORMAT_VERSION:
        raise AnnotationError(
            f"{where}: unsupported format version {quote(raw.get('v'))} (expected {FORMAT_VERSION})"
        )
    problems: list[str] = []
    node, gpus, size = raw.get("node"), raw.get("gpus"), raw.get("bytesPerGpu")
    if not isinstance(node, str) or not node:
        problems.append("'node' must be a non-empty string")
        node = ""
    if not isinstance(gpus, list) or not all(isinstance(g, str) and g for g in gpus):
        problems.append("'gpus' must be a list of GPU UUIDs")
        gpus = []
    elif len(set(gpus)) != len(gpus):
        problems.append("'gpus' must not repeat a GPU UUID")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        problems.append("'bytesPerGpu' must be a non-negative integer")
        size = 0
    model = raw.get("model", "")
    if not isinstance(model, str):
        problems.append("'model' must be a string")
        model = ""
    load = raw.get("loadBytes", 0)
    if isinstance(load, bool) or not isinstance(load, int) or load < 0:
        problems.append("'loadBytes' must be a non-negative integer")
        load = 0
    at: float | None = None
    at_raw = raw.get("at")
    if isinstance(at_raw, str):
        with contextlib.suppress(ValueError):
            at = parse_time(at_raw)
    if at is None:
        problems.append("'at' must be an RFC 3339 time")
        at = 0.0
    if problems:
        raise AnnotationError(f"{where}: {'; '.join(problems)}")
    return Reservation(
        pod_uid=pod_uid,
        pod_key=pod_key,
        node=node,
        gpu_uuids=tuple(gpus),
        bytes_per_gpu=size,
        state=state,
        created_at=at,
        model_id=model,
        load_bytes=load,
    )


def reservation_of(pod: Mapping[str, Any]) -> str | None:
    """The raw annotation value on a raw pod, if any (pure)."""
    meta = (pod.get("metadata") or {}) if isinstance(pod, Mapping) else {}
    ann = meta.get("annotations") or {} if isinstance(meta, Mapping) else {}
    value = ann.get(A_RESERVATION) if isinstance(ann, Mapping) else None
    return value if isinstance(value, str) else None
