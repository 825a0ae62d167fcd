"""Quantities: Kubernetes' grammar, exact bytes, and errors that name where the value came from."""

from __future__ import annotations

import pytest

from placement.model import GIB
from placement.quantity import (
    MAX_QUANTITY,
    QuantityError,
    format_bytes,
    parse_bytes,
    parse_count,
    parse_milli,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("70Gi", 70 * GIB, id="binary-suffix"),
        pytest.param("80G", 80 * 10**9, id="decimal-suffix"),
        pytest.param("1.5e9", 1_500_000_000, id="exponent"),
        pytest.param("1E3", 1000, id="upper-exponent"),
        pytest.param("0.5", 1, id="fraction-rounds-up"),
        pytest.param("1500m", 2, id="milli-rounds-up"),
        pytest.param("0", 0, id="zero"),
        pytest.param("+5Ki", 5 * 1024, id="explicit-plus"),
        pytest.param(".5Mi", 512 * 1024, id="leading-dot"),
        pytest.param("7.", 7, id="trailing-dot"),
        pytest.param(123, 123, id="int"),
        pytest.param(2.5, 3, id="float-rounds-up"),
        pytest.param(str(MAX_QUANTITY), MAX_QUANTITY, id="int64-max"),
    ],
)
def test_parse_bytes_accepts(value: object, expected: int) -> None:
    assert parse_bytes(value, "annotation x") == expected


@pytest.mark.parametrize(
    ("value", "why"),
    [
        pytest.param("-1", "must not be negative", id="negative"),
        pytest.param("abc", "Kubernetes quantity", id="word"),
        pytest.param("", "Kubernetes quantity", id="empty"),
        pytest.param(" 7Gi", "Kubernetes quantity", id="leading-space"),
        pytest.param("7 Gi", "Kubernetes quantity", id="inner-space"),
        pytest.param("1_000", "Kubernetes quantity", id="underscore"),
        pytest.param("NaN", "Kubernetes quantity", id="nan-word"),
        pytest.param("Infinity", "Kubernetes quantity", id="infinity-word"),
        pytest.param("1K", "Kubernetes quantity", id="upper-k-is-not-kubernetes"),
        pytest.param("1ki", "Kubernetes quantity", id="lower-ki"),
        pytest.param("1e3Ki", "Kubernetes quantity", id="exponent-and-suffix"),
        pytest.param("1e999999999", "at most", id="huge-exponent"),
        pytest.param(str(MAX_QUANTITY + 1), "at most", id="past-int64"),
        pytest.param(float("nan"), "finite", id="float-nan"),
        pytest.param(float("inf"), "finite", id="float-inf"),
        pytest.param(True, "expected a string", id="bool"),
        pytest.param(None, "expected a string", id="none"),
        pytest.param(["70Gi"], "expected a string", id="list"),
    ],
)
def test_parse_bytes_rejects_naming_where(value: object, why: str) -> None:
    with pytest.raises(QuantityError) as info:
        parse_bytes(value, "annotation vramfit.io/vram-per-gpu")
    message = str(info.value)
    assert message.startswith("annotation vramfit.io/vram-per-gpu: ")
    assert why in message
    assert info.value.where == "annotation vramfit.io/vram-per-gpu"
    assert info.value.value is value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2", 2, id="string"),
        pytest.param(8, 8, id="int"),
        pytest.param("1000m", 1, id="milli-whole"),
        pytest.param("2e0", 2, id="exponent-whole"),
    ],
)
def test_parse_count_accepts(value: object, expected: int) -> None:
    assert parse_count(value, "gpus") == expected


@pytest.mark.parametrize(
    ("value", "why"),
    [
        pytest.param("1.5", "whole number", id="fraction"),
        pytest.param("500m", "whole number", id="milli"),
        pytest.param("-2", "must not be negative", id="negative"),
        pytest.param("two", "Kubernetes quantity", id="word"),
    ],
)
def test_parse_count_rejects(value: object, why: str) -> None:
    with pytest.raises(QuantityError, match=why):
        parse_count(value, "spec.containers[0].resources.limits[nvidia.com/gpu]")


@pytest.mark.parametrize(
    ("n", "text"),
    [
        pytest.param(0, "0 B", id="zero"),
        pytest.param(512, "512 B", id="bytes"),
        pytest.param(1536, "2 KiB", id="kib-rounded"),
        pytest.param(1.5 * 1024**2, "1.5 MiB", id="fractional-mib"),
        pytest.param(40 * GIB, "40 GiB", id="whole-gib"),
        pytest.param(3 * 1024**4, "3 TiB", id="tib"),
        pytest.param(1024**5, "1024 TiB", id="largest-unit"),
    ],
)
def test_format_bytes(n: float, text: str) -> None:
    assert format_bytes(n) == text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("96", 96_000, id="whole-cores"),
        pytest.param("500m", 500, id="millicores"),
        pytest.param("0.1", 100, id="fraction"),
        pytest.param("1500u", 2, id="rounds-up"),
        pytest.param(4, 4_000, id="int"),
    ],
)
def test_parse_milli_accepts(value: object, expected: int) -> None:
    assert parse_milli(value, "cpu") == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("-1", id="negative"),
        pytest.param("NaN", id="nan"),
        pytest.param("1_000", id="underscore"),
        pytest.param(True, id="bool"),
    ],
)
def test_parse_milli_rejects_naming_where(value: object) -> None:
    with pytest.raises(QuantityError, match=r"^spec\.cpu: "):
        parse_milli(value, "spec.cpu")
