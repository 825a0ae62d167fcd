"""Kubernetes quantities ("70Gi", "80G", "1.5e9") to whole bytes, with errors that say where.

The parsing itself is the kubernetes client's own ``parse_quantity``, so vramfit reads a
quantity exactly as the API server writes it. The client parser is lenient (it hands the number
to ``Decimal``, which also takes "NaN", "1_000", " 7" and exponents of any size), so a value is
first checked against the API server's quantity grammar and bounded to what an int64 holds: an
annotation such as ``1e999999999`` is a clear error, not a billion-digit integer.
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from collections.abc import Callable
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import cast

MAX_QUANTITY = 2**63 - 1
"""The largest value a Kubernetes quantity holds as an integer (int64), and ours too."""

# The grammar of k8s.io/apimachinery/pkg/api/resource (binary SI, decimal SI with the
# sub-unit suffixes n, u, m, or a decimal exponent).
_GRAMMAR = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)


class QuantityError(ValueError):
    """A quantity that is not valid; the message names where it came from."""

    def __init__(self, where: str, value: object, why: str) -> None:
        self.detail = f"{value!r} is not a valid quantity ({why})"
        """The message without ``where``, for a reader that names the place itself."""
        super().__init__(f"{where}: {self.detail}")
        self.where = where
        self.value = value
        self.why = why


@cache
def _client_parser() -> Callable[[object], Decimal]:
    """The kubernetes client's ``parse_quantity``, loaded from its own file: the usual import
    runs ``kubernetes/__init__``, which loads the whole API client (about 50 MB resident, most
    of a node agent's memory) for one function of a regular expression and ``Decimal``."""
    loaded = sys.modules.get("kubernetes.utils.quantity")
    package = importlib.util.find_spec("kubernetes") if loaded is None else None
    if package is not None and package.submodule_search_locations:
        path = Path(next(iter(package.submodule_search_locations)), "utils", "quantity.py")
        spec = importlib.util.spec_from_file_location("placement._client_quantity", path)
        if spec is not None and spec.loader is not None:
            try:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                loaded = module
            except Exception:  # a client version whose parser needs the rest of its package
                loaded = None
    if loaded is None:
        from kubernetes.utils import quantity  # noqa: PLC0415

        loaded = quantity
    return cast("Callable[[object], Decimal]", loaded.parse_quantity)


def _parse(value: object, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(where, value, "expected a string such as '70Gi' or a number")
    if isinstance(value, str) and not _GRAMMAR.fullmatch(value):
        raise QuantityError(
            where, value, "expected a Kubernetes quantity such as 70Gi, 80G or 1.5e9"
        )
    try:
        parsed = _client_parser()(value)
    except (ValueError, ArithmeticError) as exc:
        raise QuantityError(where, value, str(exc) or "unparseable") from None
    if not parsed.is_finite():
        raise QuantityError(where, value, "must be finite")
    if parsed < 0:
        raise QuantityError(where, value, "must not be negative")
    if parsed > MAX_QUANTITY:
        raise QuantityError(where, value, f"must be at most {MAX_QUANTITY}")
    return parsed


def parse_bytes(value: object, where: str) -> int:
    """Parse ``value`` as a non-negative byte count, rounding fractions up (pure).

    ``where`` names the field or annotation, and appears in the error.
    """
    return math.ceil(_parse(value, where))


def parse_count(value: object, where: str) -> int:
    """Parse a whole, non-negative resource count such as the ``nvidia.com/gpu`` request (pure)."""
    parsed = _parse(value, where)
    if parsed != parsed.to_integral_value():
        raise QuantityError(where, value, "must be a whole number")
    return int(parsed)


def parse_milli(value: object, where: str) -> int:
    """Parse a CPU quantity ("96", "500m") as whole millicores, rounding up (pure)."""
    return math.ceil(_parse(value, where) * 1000)


def format_bytes(n: float) -> str:
    """Bytes as a short binary-unit string for messages ("70 GiB")."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    v = float(n)
    for unit in units:
        if abs(v) < 1024 or unit == units[-1]:
            return f"{v:.0f} {unit}" if unit in ("B", "KiB") or v == int(v) else f"{v:.1f} {unit}"
        v /= 1024
    raise AssertionError("unreachable")


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration_seconds(value: object) -> float:
    """Seconds from a number or a string such as ``90s``, ``15m``, ``1h30m``, ``250ms`` (pure).

    Raises ``ValueError`` with what was expected (and no place: see ``parse_duration``).
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 90s, 15m or 2h, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        pos = 0
        seconds = 0.0
        for m in _DURATION_PART.finditer(text):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
            pos = m.end()
        if pos != len(text) or not text:
            try:
                seconds = float(text)
            except ValueError:
                raise ValueError(
                    f"expected a duration such as 90s, 15m, 1h30m or a number of seconds, "
                    f"got {value!r}"
                ) from None
    else:
        raise ValueError(f"expected a duration such as 90s, 15m or 2h, got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"expected a finite, non-negative duration, got {value!r}")
    return seconds
