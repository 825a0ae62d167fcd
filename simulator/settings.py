"""The simulated control plane's timings and knobs, and how a scenario's ``settings:`` sets them.

Every part of a run (the agent, the extender, the scheduler queue, the kubelet, the autoscaler)
reads its timings from one ``Settings`` value. The dataclass states each default once; the
scenario reader and the command line take them from here. ``read_settings`` is pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from placement.fields import Fields
from placement.lifecycle import EndRule
from placement.model import FitSettings


@dataclass(frozen=True, slots=True)
class Settings:
    """Timings and knobs of the simulated control plane, kubelet, agent and autoscaler."""

    agent_interval_s: float = 10.0
    report_max_age_s: float = 60.0
    lease_interval_s: float = 10.0
    lease_duration_s: float = 40.0
    scheduling_cycle_s: float = 0.01
    bind_latency_s: float = 0.05
    admission_delay_s: float = 1.0
    container_start_s: float = 4.0
    termination_grace_s: float = 5.0
    reservation_ttl_s: float = 30.0
    crash_backoff_s: float = 10.0
    crash_backoff_max_s: float = 300.0
    pod_backoff_s: float = 1.0
    pod_backoff_max_s: float = 10.0
    unschedulable_timeout_s: float = 300.0
    scale_down_delay_s: float = 60.0
    scale_to_zero_after_s: float = 300.0
    kv_headroom: float = 0.2
    cache_on_load: bool = False
    nodes_to_score_percent: int = 0
    traffic_step_s: float = 60.0
    reservation_end: str = "held"
    room_for: str = "cold-starts"
    """What demand vramfit keeps room for (``placement.room``): ``cold-starts``, the first
    replica of each service scaling from zero (the measured best); ``pending``, the pods it
    refused that still wait; ``likely``, every pod not bound yet and those the services may
    still scale up to (``maxReplicas``); ``none``."""
    load_budget_s: float = FitSettings().load_budget_s or 0.0
    """vramfit's load budget (``placement.loadbudget``; 0: off), and what the run measures every
    cold load against (``budgetOverruns``), under every policy."""
    worker_start_s: float = 1.0
    """A multi-node replica's workers are created this long after its leader: KServe's
    LeaderWorkerSet (startupPolicy LeaderCreated) makes the workers' StatefulSet once the
    leader pod exists, and its controller then makes their pods."""


RESERVATION_ENDS = tuple(rule.value for rule in EndRule)
"""When a Ready pod's reservation ends (``placement.lifecycle.EndRule``): once the agent reports
the pod holding its GPUs (``held``, the extender's rule), or once it also reports the reserved
memory in use on each (``loaded``)."""

ROOM_FOR = ("cold-starts", "pending", "likely", "none")
"""What demand vramfit keeps room for (``Settings.room_for``)."""

SETTINGS_KEYS: Mapping[str, tuple[str, str]] = {
    "agentInterval": ("agent_interval_s", "positive-duration"),
    "reportMaxAge": ("report_max_age_s", "positive-duration"),
    "leaseInterval": ("lease_interval_s", "positive-duration"),
    "leaseDuration": ("lease_duration_s", "positive-duration"),
    "schedulingCycle": ("scheduling_cycle_s", "duration"),
    "bindLatency": ("bind_latency_s", "duration"),
    "admissionDelay": ("admission_delay_s", "duration"),
    "containerStart": ("container_start_s", "duration"),
    "terminationGrace": ("termination_grace_s", "duration"),
    "reservationTtl": ("reservation_ttl_s", "positive-duration"),
    "crashBackoff": ("crash_backoff_s", "duration"),
    "crashBackoffMax": ("crash_backoff_max_s", "duration"),
    "podBackoff": ("pod_backoff_s", "duration"),
    "podBackoffMax": ("pod_backoff_max_s", "duration"),
    "unschedulableTimeout": ("unschedulable_timeout_s", "positive-duration"),
    "scaleDownDelay": ("scale_down_delay_s", "duration"),
    "scaleToZeroAfter": ("scale_to_zero_after_s", "positive-duration"),
    "kvHeadroom": ("kv_headroom", "fraction"),
    "cacheOnLoad": ("cache_on_load", "flag"),
    "percentageOfNodesToScore": ("nodes_to_score_percent", "percent"),
    "trafficStep": ("traffic_step_s", "positive-duration"),
    "reservationEnd": ("reservation_end", "reservation-end"),
    "workerStart": ("worker_start_s", "duration"),
    "loadBudget": ("load_budget_s", "duration"),
    "roomFor": ("room_for", "room-for"),
}
"""YAML key under ``settings:`` -> (``Settings`` field, kind of value)."""


_READERS: Mapping[str, Callable[[Fields, str, Any], Any]] = {
    "duration": lambda f, key, default: f.duration(key, default),
    "positive-duration": lambda f, key, default: f.duration(key, default, positive=True),
    "fraction": lambda f, key, default: f.number(key, default, maximum=10.0),
    "flag": lambda f, key, default: f.flag(key, default),
    "reservation-end": lambda f, key, default: f.choice(key, RESERVATION_ENDS, default),
    "room-for": lambda f, key, default: f.choice(key, ROOM_FOR, default),
    "percent": lambda f, key, default: f.integer(key, default, maximum=100),
}
"""How each kind of value in ``SETTINGS_KEYS`` is read."""


def read_settings(f: Fields) -> Settings:
    """The ``settings:`` mapping read into ``Settings``; problems are recorded in ``f``."""
    defaults = Settings()
    values = {
        attr: _READERS[kind](f, key, getattr(defaults, attr))
        for key, (attr, kind) in SETTINGS_KEYS.items()
        if f.has(key)
    }
    s = Settings(**values)
    _check(f, s)
    return s


def _check(f: Fields, s: Settings) -> None:
    """Settings that are each valid but together would make the simulated cluster misbehave."""
    if s.crash_backoff_max_s < s.crash_backoff_s:
        f.bad("crashBackoffMax", "must not be below crashBackoff")
    if s.pod_backoff_max_s < s.pod_backoff_s:
        f.bad("podBackoffMax", "must not be below podBackoff")
    limit = FitSettings().max_report_age_s
    if s.report_max_age_s >= limit:
        f.bad("reportMaxAge", f"must be below {limit:.0f}s, the report age the extender accepts")
    if s.agent_interval_s >= limit:
        f.bad("agentInterval", f"must be below {limit:.0f}s, the report age the extender accepts")
    if s.bind_latency_s >= s.reservation_ttl_s:
        f.bad("bindLatency", "must be below reservationTtl, or assumed reservations expire unbound")
    if s.lease_interval_s >= s.lease_duration_s:
        f.bad("leaseInterval", "must be below leaseDuration, or every Lease expires")
    if s.worker_start_s >= s.reservation_ttl_s:
        f.bad(
            "workerStart",
            "must be below reservationTtl, or a group's reservations expire before its workers",
        )
