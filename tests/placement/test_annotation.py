"""The ``vramfit.io/reservation`` annotation: round trip, strict decoding, every error named."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from placement.annotation import (
    AnnotationError,
    decode_reservation,
    encode_reservation,
    reservation_of,
)
from placement.model import GIB, Reservation, ReservationState

AT = 1_700_000_000.25
RESERVATION = Reservation(
    pod_uid="uid-1",
    pod_key="serving/llm-0",
    node="h100-3",
    gpu_uuids=("GPU-b", "GPU-a"),
    bytes_per_gpu=70 * GIB,
    state=ReservationState.BOUND,
    created_at=AT,
    model_id="meta-llama/Llama-3.1-70B-Instruct",
)


def test_round_trip() -> None:
    value = encode_reservation(RESERVATION)
    assert value == (
        '{"at":"2023-11-14T22:13:20.250000Z","bytesPerGpu":75161927680,"gpus":["GPU-b","GPU-a"],'
        '"model":"meta-llama/Llama-3.1-70B-Instruct","node":"h100-3","v":1}'
    )
    assert decode_reservation(value, pod_uid="uid-1", pod_key="serving/llm-0") == RESERVATION


def test_load_bytes_round_trip_when_known() -> None:
    loading = dataclasses.replace(RESERVATION, load_bytes=131 * GIB)
    value = encode_reservation(loading)
    assert '"loadBytes":140660178944' in value
    assert decode_reservation(value, pod_uid="uid-1", pod_key="serving/llm-0") == loading


def test_state_comes_from_the_reader() -> None:
    r = decode_reservation(
        encode_reservation(RESERVATION),
        pod_uid="uid-1",
        pod_key="serving/llm-0",
        state=ReservationState.LOADING,
    )
    assert r.state is ReservationState.LOADING
    assert r.expires_at is None


def test_model_is_optional() -> None:
    raw = {"v": 1, "node": "n", "gpus": [], "bytesPerGpu": 0, "at": "2024-01-01T00:00:00Z"}
    r = decode_reservation(json.dumps(raw), pod_uid="u", pod_key="ns/p")
    assert r.model_id == ""
    assert r.gpu_uuids == ()


def encoded(**changes: Any) -> str:
    raw: dict[str, Any] = json.loads(encode_reservation(RESERVATION))
    for key, value in changes.items():
        if value is None:
            del raw[key]
        else:
            raw[key] = value
    return json.dumps(raw)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param("{", "not JSON", id="truncated"),
        pytest.param("", "not JSON", id="empty"),
        pytest.param("[1, 2]", "expected a JSON object", id="array"),
        pytest.param(encoded(v=2), "unsupported format version 2 (expected 1)", id="version-2"),
        pytest.param(encoded(v=None), "unsupported format version None", id="no-version"),
        pytest.param(encoded(node=""), "'node' must be a non-empty string", id="empty-node"),
        pytest.param(encoded(node=None), "'node' must be a non-empty string", id="no-node"),
        pytest.param(encoded(gpus="GPU-a"), "'gpus' must be a list of GPU UUIDs", id="gpus-str"),
        pytest.param(encoded(gpus=["GPU-a", 3]), "'gpus' must be a list", id="gpu-not-str"),
        pytest.param(encoded(gpus=["GPU-a", ""]), "'gpus' must be a list", id="gpu-empty"),
        pytest.param(
            encoded(gpus=["GPU-a", "GPU-a"]), "'gpus' must not repeat a GPU UUID", id="gpu-repeat"
        ),
        pytest.param(encoded(bytesPerGpu=-1), "'bytesPerGpu' must be a non-negative", id="neg"),
        pytest.param(encoded(bytesPerGpu=1.5), "'bytesPerGpu' must be a non-negative", id="float"),
        pytest.param(encoded(bytesPerGpu=True), "'bytesPerGpu' must be a non-negative", id="bool"),
        pytest.param(encoded(model=7), "'model' must be a string", id="model-type"),
        pytest.param(encoded(loadBytes=-1), "'loadBytes' must be a non-negative", id="load-neg"),
        pytest.param(encoded(loadBytes="1Gi"), "'loadBytes' must be a non-negative", id="load-s"),
        pytest.param(encoded(at="yesterday"), "'at' must be an RFC 3339 time", id="at-garbage"),
        pytest.param(encoded(at=None), "'at' must be an RFC 3339 time", id="at-missing"),
        pytest.param(encoded(at=12), "'at' must be an RFC 3339 time", id="at-number"),
        pytest.param(
            encoded(at="2024-01-01T00:00:00"), "'at' must be an RFC 3339 time", id="at-no-offset"
        ),
    ],
)
def test_decode_errors(value: str, problem: str) -> None:
    with pytest.raises(AnnotationError) as info:
        decode_reservation(value, pod_uid="uid-1", pod_key="serving/llm-0")
    message = str(info.value)
    assert message.startswith("pod serving/llm-0: annotation vramfit.io/reservation: ")
    assert problem in message


def test_decode_names_every_bad_field_at_once() -> None:
    value = encoded(node=3, gpus=None, bytesPerGpu=-2, model=[], at="later")
    with pytest.raises(AnnotationError) as info:
        decode_reservation(value, pod_uid="u", pod_key="ns/p")
    assert str(info.value) == (
        "pod ns/p: annotation vramfit.io/reservation: 'node' must be a non-empty string; "
        "'gpus' must be a list of GPU UUIDs; 'bytesPerGpu' must be a non-negative integer; "
        "'model' must be a string; 'at' must be an RFC 3339 time"
    )


@pytest.mark.parametrize(
    ("pod", "value"),
    [
        pytest.param(
            {"metadata": {"annotations": {"vramfit.io/reservation": "{}"}}}, "{}", id="present"
        ),
        pytest.param({"metadata": {"annotations": {"other": "x"}}}, None, id="absent"),
        pytest.param({"metadata": {"annotations": None}}, None, id="null-annotations"),
        pytest.param({"metadata": {"annotations": {"vramfit.io/reservation": 1}}}, None, id="num"),
        pytest.param({"metadata": "x"}, None, id="bad-metadata"),
        pytest.param({}, None, id="no-metadata"),
    ],
)
def test_reservation_of(pod: dict[str, Any], value: str | None) -> None:
    assert reservation_of(pod) == value
