"""Typed, path-aware reading of raw YAML mappings that collects every problem instead of raising.

Scenario files are written by hand; a person fixing one wants every mistake in one run, each
naming its field (``services[3].traffic.duration: ...``). ``Fields`` wraps one mapping, reads
values as durations, byte quantities, counts or choices, and appends a problem for each bad or
unknown field. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from placement.quantity import QuantityError, duration_seconds, parse_bytes

T = TypeVar("T")


class ScenarioError(ValueError):
    """A scenario (or plan) that cannot be simulated; lists every problem found, one a line."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__(f"{source}:\n" + "\n".join(f"  {p}" for p in problems))


class Fields:
    """One raw mapping at ``path``; reading methods record problems in ``problems``."""

    def __init__(self, raw: object, path: str, problems: list[str], known: Iterable[str]) -> None:
        self.path = path
        self.problems = problems
        self.known = frozenset(known)
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            self.raw: Mapping[str, Any] = {}
            self.bad("", f"expected a mapping, got {type(raw).__name__}")
            return
        self.raw = raw
        for key in raw:
            if key not in self.known:
                self.bad(str(key), f"unknown field (known: {', '.join(sorted(self.known))})")

    def where(self, key: str) -> str:
        """The full path of ``key``."""
        if not key:
            return self.path or "<top level>"
        return f"{self.path}.{key}" if self.path else key

    def bad(self, key: str, message: str) -> None:
        """Record a problem with ``key``."""
        self.problems.append(f"{self.where(key)}: {message}")

    def has(self, key: str) -> bool:
        """Whether ``key`` is present (with a non-null value)."""
        return self.raw.get(key) is not None

    def get(self, key: str) -> Any:
        """The raw value of ``key`` (``None`` when absent)."""
        return self.raw.get(key)

    def text(self, key: str, default: str = "", *, required: bool = False) -> str:
        """A non-empty string."""
        value = self.raw.get(key)
        if value is None:
            if required:
                self.bad(key, "missing (required)")
            return default
        if not isinstance(value, str) or not value.strip():
            self.bad(key, f"expected a non-empty string, got {value!r}")
            return default
        return value.strip()

    def integer(
        self,
        key: str,
        default: int,
        *,
        minimum: int = 0,
        maximum: int | None = None,
        required: bool = False,
    ) -> int:
        """A whole number in ``minimum..maximum``."""
        value = self.raw.get(key)
        if value is None:
            if required:
                self.bad(key, "missing (required)")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.bad(key, f"expected a whole number, got {value!r}")
            return default
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
            self.bad(key, f"expected a whole number {bound}, got {value}")
            return default
        return int(value)

    def number(
        self,
        key: str,
        default: float,
        *,
        minimum: float = 0.0,
        maximum: float | None = None,
        exclusive_minimum: bool = False,
        required: bool = False,
    ) -> float:
        """A finite number in range."""
        value = self.raw.get(key)
        if value is None:
            if required:
                self.bad(key, "missing (required)")
            return default
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            self.bad(key, f"expected a number, got {value!r}")
            return default
        low_ok = value > minimum if exclusive_minimum else value >= minimum
        if not low_ok or (maximum is not None and value > maximum):
            op = ">" if exclusive_minimum else ">="
            bound = f"{op} {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
            self.bad(key, f"expected a number {bound}, got {value}")
            return default
        return float(value)

    def duration(
        self, key: str, default: float, *, positive: bool = False, required: bool = False
    ) -> float:
        """Seconds from ``90s``/``15m``/``2h`` or a number."""
        value = self.raw.get(key)
        if value is None:
            if required:
                self.bad(key, "missing (required)")
            return default
        try:
            seconds = duration_seconds(value)
        except ValueError as exc:
            self.bad(key, str(exc))
            return default
        if positive and seconds <= 0:
            self.bad(key, f"expected a duration above zero, got {value!r}")
            return default
        return seconds

    def size(
        self, key: str, default: int, *, positive: bool = False, required: bool = False
    ) -> int:
        """Bytes from a Kubernetes quantity such as ``80Gi``."""
        value = self.raw.get(key)
        if value is None:
            if required:
                self.bad(key, "missing (required)")
            return default
        try:
            n = parse_bytes(value, self.where(key))
        except QuantityError as exc:
            self.problems.append(str(exc))
            return default
        if positive and n <= 0:
            self.bad(key, f"expected a size above zero, got {value!r}")
            return default
        return n

    def rate(self, key: str, default: float, *, required: bool = False) -> float:
        """Bytes per second from a quantity such as ``2Gi`` (must be above zero)."""
        n = self.size(key, -1, positive=True, required=required)
        return default if n < 0 else float(n)

    def flag(self, key: str, default: bool) -> bool:
        """A boolean."""
        value = self.raw.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.bad(key, f"expected true or false, got {value!r}")
            return default
        return value

    def choice(self, key: str, choices: Sequence[str], default: str) -> str:
        """One of ``choices``."""
        value = self.raw.get(key)
        if value is None:
            return default
        if not isinstance(value, str) or value not in choices:
            self.bad(key, f"expected one of {', '.join(choices)}, got {value!r}")
            return default
        return value

    def items(self, key: str, *, required: bool = False) -> list[Any]:
        """A list (empty when absent)."""
        value = self.raw.get(key)
        if value is None:
            if required:
                self.bad(key, "missing (required): expected a list")
            return []
        if not isinstance(value, list):
            self.bad(key, f"expected a list, got {type(value).__name__}")
            return []
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        """A list of non-empty strings, or one comma-separated string."""
        value = self.raw.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            return tuple(p.strip() for p in value.split(",") if p.strip())
        if isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value):
            return tuple(v.strip() for v in value)
        self.bad(key, f"expected a list of strings, got {value!r}")
        return ()

    def child(self, key: str, known: Iterable[str], *, required: bool = False) -> Fields:
        """The mapping under ``key`` as ``Fields``."""
        value = self.raw.get(key)
        if value is None and required:
            self.bad(key, "missing (required)")
        return Fields(value, self.where(key), self.problems, known)
