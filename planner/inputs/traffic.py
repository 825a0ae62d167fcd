"""Traffic profiles and storage tiers: the facts the decision frame weighs per InferenceService.

A traffic file gives, per ``namespace/name``, an hourly request rate (24 values) or an idle
fraction, and a cold-start budget; and may override the load bandwidth of each storage tier.
Parsing is pure and reports every problem; the shipped tier bandwidths say where each number
comes from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from placement.quantity import QuantityError, duration_seconds, parse_bytes
from planner.diagnostics import FieldError, InputError, Problem

DEFAULT_COLD_START_BUDGET_S = 60.0
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
    runtime_start_s: float = 30.0
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


def _tiers(
    raw: Any, where: str, problems: list[Problem], base: Mapping[str, Tier]
) -> dict[str, Tier]:
    out = dict(base)
    if not isinstance(raw, Mapping):
        problems.append(Problem(where, "expected a mapping of tier to bandwidth"))
        return out
    for name, spec in raw.items():
        at = f"{where}.{name}"
        if name not in TIERS:
            problems.append(Problem(at, f"unknown storage tier; known: {', '.join(TIERS)}"))
            continue
        source = "traffic file"
        value = spec
        if isinstance(spec, Mapping):
            for k in spec:
                if k not in ("bandwidth", "source"):
                    problems.append(Problem(f"{at}.{k}", "unknown field"))
            value = spec.get("bandwidth")
            source = str(spec.get("source", source))
        try:
            bw = parse_bytes(value, at)
        except QuantityError as exc:
            problems.append(Problem(at, exc.detail))
            continue
        if bw <= 0:
            problems.append(Problem(at, "bandwidth must be positive"))
            continue
        out[str(name)] = Tier(str(name), float(bw), source)
    return out


def default_tiers() -> tuple[dict[str, Tier], float]:
    """The shipped tier bandwidths and runtime start time."""
    raw = yaml.safe_load(resources.files("planner.data").joinpath("storage.yaml").read_text())
    problems: list[Problem] = []
    tiers = _tiers(raw.get("tiers"), "built-in storage tiers: tiers", problems, {})
    start = parse_duration(raw.get("runtimeStart", 30), "built-in storage tiers: runtimeStart")
    if problems:
        raise InputError(problems)
    return tiers, start


def parse_traffic(raw: Any, where: str, base: Traffic) -> Traffic:
    """Validate a raw traffic file on top of ``base``; raises ``InputError`` with every problem.

    Pure.
    """
    problems: list[Problem] = []
    if not isinstance(raw, Mapping):
        raise InputError([Problem(where, "expected a mapping with defaults, storage, services")])
    for k in raw:
        if k not in ("version", "defaults", "storage", "services"):
            problems.append(Problem(f"{where}: {k}", "unknown field"))
    tiers = dict(base.tiers)
    start = base.runtime_start_s
    budget = base.default_budget_s
    idle_default = base.default_idle_fraction
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        problems.append(Problem(f"{where}: defaults", "expected a mapping"))
        defaults = {}
    for k, v in defaults.items():
        at = f"{where}: defaults.{k}"
        try:
            if k == "coldStartBudget":
                budget = parse_duration(v, at)
            elif k == "runtimeStart":
                start = parse_duration(v, at)
            elif k == "idleFraction":
                idle_default = _fraction(v, at)
            else:
                problems.append(Problem(at, "unknown field"))
        except FieldError as exc:
            problems.append(Problem(at, exc.detail))
    if "storage" in raw:
        tiers = _tiers(raw["storage"], f"{where}: storage", problems, tiers)
    profiles: dict[str, Profile] = dict(base.profiles)
    services = raw.get("services") or {}
    if not isinstance(services, Mapping):
        problems.append(
            Problem(f"{where}: services", "expected a mapping of namespace/name to profile")
        )
        services = {}
    for key, spec in services.items():
        at = f"{where}: services[{key}]"
        if "/" not in str(key):
            problems.append(Problem(at, "key must be namespace/name"))
            continue
        if not isinstance(spec, Mapping):
            problems.append(Problem(at, "expected a mapping"))
            continue
        prof = Profile()
        for k, v in spec.items():
            fat = f"{at}.{k}"
            try:
                if k == "hourlyRequests":
                    if (
                        not isinstance(v, list)
                        or len(v) != 24
                        or not all(
                            isinstance(x, int | float) and not isinstance(x, bool) and x >= 0
                            for x in v
                        )
                    ):
                        raise FieldError(fat, "expected 24 non-negative numbers (one per hour)")
                    prof = replace(prof, hourly_requests=tuple(float(x) for x in v))
                elif k == "idleFraction":
                    prof = replace(prof, idle_fraction=_fraction(v, fat))
                elif k == "coldStartBudget":
                    prof = replace(prof, cold_start_budget_s=parse_duration(v, fat))
                else:
                    problems.append(Problem(fat, "unknown field"))
            except FieldError as exc:
                problems.append(Problem(fat, exc.detail))
        profiles[str(key)] = prof
    if problems:
        raise InputError(problems)
    return Traffic(tiers, start, budget, idle_default, profiles)


def _fraction(v: object, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
        raise FieldError(where, f"expected a number from 0 to 1, got {v!r}")
    return float(v)


def load_traffic(path: Path | None) -> Traffic:
    """The shipped tiers, then the traffic file at ``path`` (if any) on top."""
    tiers, start = default_tiers()
    base = Traffic(tiers, start)
    if path is None:
        return base
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError([Problem(str(path), "traffic file not found")]) from None
    except OSError as exc:
        raise InputError([Problem(str(path), f"cannot read ({exc.strerror})")]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError([Problem(str(path), f"not valid YAML ({exc})")]) from None
    return parse_traffic(raw, str(path), base)
