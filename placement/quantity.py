"""Kubernetes quantities ("70Gi", "80G", "1.5e9") to whole bytes, with errors that say where.

The parsing itself is the kubernetes client's own ``parse_quantity``, so vramfit reads a
quantity exactly as the API server writes it.
"""

from __future__ import annotations

import math
from decimal import Decimal

from kubernetes.utils.quantity import parse_quantity


class QuantityError(ValueError):
    """A quantity that is not valid; the message names where it came from."""

    def __init__(self, where: str, value: object, why: str) -> None:
        super().__init__(f"{where}: {value!r} is not a valid quantity ({why})")
        self.where = where
        self.value = value


def parse_bytes(value: object, where: str) -> int:
    """Parse ``value`` as a non-negative byte count, rounding fractions up.

    ``where`` names the field or annotation, and appears in the error.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(where, value, "expected a string such as '70Gi' or a number")
    try:
        parsed: Decimal = parse_quantity(value)
    except (ValueError, ArithmeticError) as exc:
        raise QuantityError(where, value, str(exc) or "unparseable") from None
    if not parsed.is_finite():
        raise QuantityError(where, value, "must be finite")
    if parsed < 0:
        raise QuantityError(where, value, "must not be negative")
    return math.ceil(parsed)


def parse_count(value: object, where: str) -> int:
    """Parse an integer resource count such as the ``nvidia.com/gpu`` request."""
    n = parse_bytes(value, where)
    if Decimal(n) != parse_quantity(value):
        raise QuantityError(where, value, "must be a whole number")
    return n


def format_bytes(n: float) -> str:
    """Bytes as a short binary-unit string for messages ("70 GiB")."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    v = float(n)
    for unit in units:
        if abs(v) < 1024 or unit == units[-1]:
            return f"{v:.0f} {unit}" if unit in ("B", "KiB") or v == int(v) else f"{v:.1f} {unit}"
        v /= 1024
    raise AssertionError("unreachable")
