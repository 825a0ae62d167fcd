"""Reading raw objects field by field, with every problem recorded at its path.

A ``ReadContext`` names the object being read and collects ``Problem`` values; the helpers
read one field each and record what is wrong instead of raising, so one run lists every
problem of every object. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from placement.quantity import QuantityError, parse_milli
from planner.diagnostics import Problem


@dataclass
class ReadContext:
    """Where we are while parsing one object, and the list problems go to."""

    where: str
    problems: list[Problem] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        """Record ``message`` about the field at ``path`` of this object."""
        self.problems.append(Problem(f"{self.where}: {path}" if path else self.where, message))


def mapping(ctx: ReadContext, value: object, path: str) -> Mapping[str, Any] | None:
    """The object at ``path``; ``None`` when absent or not an object (then a problem)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        ctx.add(path, f"expected an object, got {type(value).__name__}")
        return None
    return value


def unknown_fields(
    ctx: ReadContext, obj: Mapping[str, Any], known: frozenset[str], path: str
) -> None:
    """Record every key of ``obj`` that is not in ``known`` as an unknown field."""
    for k in obj:
        if k not in known:
            ctx.add(f"{path}.{k}" if path else str(k), "unknown field")


def integer(
    ctx: ReadContext, obj: Mapping[str, Any], key: str, path: str, minimum: int = 0
) -> int | None:
    """The integer ``obj[key]`` of at least ``minimum``; ``None`` when absent or bad (then a
    problem)."""
    if key not in obj or obj[key] is None:
        return None
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, int):
        ctx.add(f"{path}.{key}", f"expected an integer, got {v!r}")
        return None
    if v < minimum:
        ctx.add(f"{path}.{key}", f"must be at least {minimum}, got {v}")
        return None
    return int(v)


def cpu_milli(ctx: ReadContext, value: object, path: str) -> int:
    """A CPU quantity in millicores; 0 (and a problem) when it does not parse."""
    try:
        return parse_milli(value, path)
    except QuantityError as exc:
        ctx.add(path, f"{value!r} is not a valid CPU quantity ({exc.why})")
        return 0
