"""Traffic profiles and storage tiers: the facts the decision frame weighs per InferenceService.

A traffic file gives, per ``namespace/name``, an hourly request rate (24 values) or an idle
fraction, and a cold-start budget; and may override the load bandwidth of each storage tier.
Parsing is pure and reports every problem; the shipped tier bandwidths say where each number
comes from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from placement.fields import FieldError, Fields, Problem
from placement.quantity import duration_seconds
from planner.data import builtin_document
from planner.inputs.files import load_input

DEFAULT_COLD_START_BUDGET_S = 60.0
DEFAULT_RUNTIME_START_S = 30.0
"""Engine start besides the weight load, when the shipped storage tiers do not say."""
TIERS = ("cache", "pvc", "s3", "gs", "hf", "oci", "http")


@dataclass(frozen=True, slots=True)
class Tier:
    """Load bandwidth of one storage tier (bytes per second) and where the number comes from."""

    name: str
    bytes_per_s: float
    source: str


@dataclass(frozen=True, slots=True)
class Profile:
    """Traffic of one InferenceService. ``hourly_requests`` has 24 values when given."""

    hourly_requests: tuple[float, ...] = ()
    idle_fraction: float | None = None
    cold_start_budget_s: float | None = None

    def idle(self) -> float | None:
        """Share of the day with no requests: from the hourly rates, else the stated fraction."""
        if self.hourly_requests:
            return sum(1 for r in self.hourly_requests if r <= 0) / len(self.hourly_requests)
        return self.idle_fraction


@dataclass(frozen=True, slots=True)
class Traffic:
    """Everything the decision frame needs besides the plan."""

    tiers: Mapping[str, Tier]
    runtime_start_s: float = DEFAULT_RUNTIME_START_S
    default_budget_s: float = DEFAULT_COLD_START_BUDGET_S
    default_idle_fraction: float | None = None
    profiles: Mapping[str, Profile] = field(default_factory=dict)

    def profile(self, key: str) -> Profile:
        """The profile of ``namespace/name`` (an empty one when the file does not list it)."""
        return self.profiles.get(key, Profile())


def parse_duration(value: object, where: str) -> float:
    """``duration_seconds`` of a value read at ``where``; raises ``FieldError``. Pure."""
    try:
        return duration_seconds(value)
    except ValueError as exc:
        raise FieldError(where, str(exc)) from None


_TOP = ("version", "defaults", "storage", "services")
_DEFAULTS = ("coldStartBudget", "runtimeStart", "idleFraction")
_PROFILE = ("hourlyRequests", "idleFraction", "coldStartBudget")


def _tiers(f: Fields, base: Mapping[str, Tier]) -> dict[str, Tier]:
    """Storage tiers from ``f`` (tier to bandwidth, or to ``{bandwidth, source}``) over
    ``base``."""
    out = dict(base)
    for name, spec in f.raw.items():
        if name not in TIERS:
            f.bad(str(name), f"unknown storage tier; known: {', '.join(TIERS)}")
            continue
        if isinstance(spec, Mapping):
            tier = f.child(name, ("bandwidth", "source"))
            bw = tier.rate("bandwidth", None, required=True)
            source = str(spec.get("source", "traffic file"))
        else:
            bw = f.rate(name, None, required=True)
            source = "traffic file"
        if bw is not None:
            out[str(name)] = Tier(str(name), bw, source)
    return out


def default_tiers() -> tuple[dict[str, Tier], float]:
    """The shipped tier bandwidths and runtime start time."""
    where = "built-in storage tiers"
    f = Fields(builtin_document("storage.yaml", where), "")
    tiers = _tiers(f.child("tiers"), {})
    start = f.duration("runtimeStart", DEFAULT_RUNTIME_START_S)
    f.raise_if_problems(where)
    return tiers, start


def _hourly(f: Fields) -> tuple[float, ...]:
    """24 non-negative request rates, one per hour (empty when absent)."""
    v = f.get("hourlyRequests")
    if v is None:
        return ()
    if (
        not isinstance(v, list)
        or len(v) != 24
        or not all(isinstance(x, int | float) and not isinstance(x, bool) and x >= 0 for x in v)
    ):
        f.bad("hourlyRequests", "expected 24 non-negative numbers (one per hour)")
        return ()
    return tuple(float(x) for x in v)


def _profiles(f: Fields, base: Mapping[str, Profile]) -> dict[str, Profile]:
    """Traffic profiles per ``namespace/name`` from the ``services`` mapping ``f``."""
    profiles = dict(base)
    for key, spec in f.raw.items():
        at = f"{f.path}[{key}]"
        if "/" not in str(key):
            f.problems.append(Problem(at, "key must be namespace/name"))
            continue
        if not isinstance(spec, Mapping):
            f.problems.append(Problem(at, "expected a mapping"))
            continue
        p = Fields(spec, at, f.problems, _PROFILE)
        profiles[str(key)] = Profile(
            hourly_requests=_hourly(p),
            idle_fraction=p.number("idleFraction", None, minimum=0, maximum=1),
            cold_start_budget_s=p.duration("coldStartBudget", None),
        )
    return profiles


def parse_traffic(raw: Any, where: str, base: Traffic) -> Traffic:
    """Validate a raw traffic file on top of ``base``; raises ``InputError`` (its source
    ``where``) with every problem. Pure.
    """
    f = Fields(raw, "", known=_TOP)
    defaults = f.child("defaults", _DEFAULTS)
    budget = defaults.duration("coldStartBudget", base.default_budget_s)
    start = defaults.duration("runtimeStart", base.runtime_start_s)
    idle = defaults.number("idleFraction", base.default_idle_fraction, minimum=0, maximum=1)
    tiers = _tiers(f.child("storage"), base.tiers)
    profiles = _profiles(f.child("services"), base.profiles)
    f.raise_if_problems(where)
    return Traffic(tiers, start, budget, idle, profiles)


def load_traffic(path: Path | None) -> Traffic:
    """The shipped tiers, then the traffic file at ``path`` (if any) on top; raises
    ``InputError`` (a ``DocumentError`` when the file cannot be read)."""
    tiers, start = default_tiers()
    base = Traffic(tiers, start)
    if path is None:
        return base
    return parse_traffic(load_input(path, "traffic file"), str(path), base)
