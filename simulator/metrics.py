"""What one simulated run measured, and the per-policy summary the reports show.

A run records facts (each pod's times, each cold start, each out-of-memory crash, loads in flight
over time, the multi-node replicas left half placed and the GPU-seconds they held, the pods
preemption evicted and those evicted for nothing; the cold starts of the services at the top
priority are summarized on their own);
``summarize`` turns them into the numbers the comparison table shows. Percentiles
are nearest-rank. A cold start that never became Ready (the service scaled back to zero first,
or the run ended) counts with the time it had waited, so its percentiles are a lower bound;
``cold_starts_unfinished`` says how many. Pure.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PodRecord:
    """One pod's life as the run saw it; times in seconds from the start of the run."""

    uid: str
    service: str
    node: str | None
    gpus: int
    price_per_gpu_hour: float
    created_at: float
    bound_at: float | None
    ready_at: float | None
    end_at: float
    waited: bool
    restarts: int
    last_reason: str
    group: str = ""

    @property
    def pending_s(self) -> float:
        """From creation until bound (or deleted, or the end of the run, if never bound)."""
        return (self.bound_at if self.bound_at is not None else self.end_at) - self.created_at


@dataclass(frozen=True, slots=True)
class ColdStart:
    """A request that found its service at zero, and when a replica became Ready."""

    service: str
    start: float
    end: float
    completed: bool

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class RunResult:
    """Everything one policy's run recorded."""

    policy: str
    scenario: str
    seed: int
    duration_s: float
    pods: tuple[PodRecord, ...]
    cold_starts: tuple[ColdStart, ...]
    loads_started: int
    out_of_memory: int
    overcommitted_loads: int
    overcommitted_pods: int
    predictions_missed: int
    node_peaks: tuple[tuple[str, int], ...]
    loads_series: tuple[tuple[float, int], ...]
    fleet_gpus: int
    fleet_cost: float
    events: int
    wall_s: float
    decisions: int = 0
    candidates_evaluated: int = 0
    groups: int = 0
    groups_half_placed: int = 0
    half_placed_gpu_s: float = 0.0
    evictions: int = 0
    wasted_evictions: int = 0
    top_priority_services: tuple[str, ...] = ()
    budget_overruns: int = 0


@dataclass(frozen=True, slots=True)
class PolicySummary:
    """The comparison row of one policy."""

    policy: str
    failed_loads: int
    overcommitted_loads: int
    overcommitted_pods: int
    predictions_missed: int
    loads_started: int
    pods_created: int
    pods_ready: int
    pods_waited: int
    pending_at_end: int
    pending_max_s: float
    pending_p95_s: float
    pending_pod_hours: float
    cold_starts: int
    cold_starts_unfinished: int
    cold_start_p50_s: float | None
    cold_start_p95_s: float | None
    cold_start_p99_s: float | None
    cold_start_max_s: float | None
    peak_loads_per_node: int
    nodes_with_concurrent_loads: int
    gpu_hours: float
    gpu_hours_serving: float
    cost: float
    fleet_cost: float
    events: int
    wall_s: float
    cold_start_samples: tuple[float, ...]
    loads_series: tuple[tuple[float, int], ...]
    node_peaks: tuple[tuple[str, int], ...]
    pending_reasons: tuple[tuple[str, int], ...] = ()
    groups: int = 0
    groups_half_placed: int = 0
    half_placed_gpu_s: float = 0.0
    evictions: int = 0
    wasted_evictions: int = 0
    top_priority_cold_starts: int = 0
    top_priority_cold_start_p50_s: float | None = None
    top_priority_cold_start_p95_s: float | None = None
    budget_overruns: int = 0

    @property
    def events_per_s(self) -> float:
        """Simulated events per second of wall time."""
        return self.events / self.wall_s if self.wall_s > 0 else 0.0


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (pure); ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def downsample(
    series: Sequence[tuple[float, int]], duration: float, points: int = 400
) -> tuple[tuple[float, int], ...]:
    """A step series cut to about ``points`` buckets, each keeping its highest value (pure)."""
    if len(series) <= points or duration <= 0:
        return tuple(series)
    width = duration / points
    out: list[tuple[float, int]] = []
    value = 0
    i = 0
    for b in range(points):
        start = b * width
        end = start + width
        high = value
        while i < len(series) and series[i][0] < end:
            value = series[i][1]
            high = max(high, value)
            i += 1
        if not out or out[-1][1] != high:
            out.append((start, high))
        if high != value:
            out.append((end, value))
    return tuple(out)


def summarize(run: RunResult) -> PolicySummary:
    """The comparison row for one run (pure)."""
    end = run.duration_s
    waited = [p for p in run.pods if p.waited]
    pending = [p.pending_s for p in waited]
    gpu_hours = 0.0
    serving = 0.0
    cost = 0.0
    for p in run.pods:
        if p.bound_at is not None:
            hours = p.gpus * max(0.0, min(p.end_at, end) - p.bound_at) / 3600.0
            gpu_hours += hours
            cost += hours * p.price_per_gpu_hour
        if p.ready_at is not None:
            serving += p.gpus * max(0.0, min(p.end_at, end) - p.ready_at) / 3600.0
    samples = tuple(c.seconds for c in run.cold_starts)
    top = set(run.top_priority_services)
    top_samples = [c.seconds for c in run.cold_starts if c.service in top]
    peaks = [k for _, k in run.node_peaks]
    return PolicySummary(
        policy=run.policy,
        failed_loads=run.out_of_memory,
        overcommitted_loads=run.overcommitted_loads,
        overcommitted_pods=run.overcommitted_pods,
        predictions_missed=run.predictions_missed,
        loads_started=run.loads_started,
        pods_created=len(run.pods),
        pods_ready=sum(1 for p in run.pods if p.ready_at is not None),
        pods_waited=len(waited),
        pending_at_end=sum(1 for p in run.pods if p.bound_at is None and p.end_at >= end),
        pending_max_s=max(pending, default=0.0),
        pending_p95_s=percentile(pending, 95) or 0.0,
        pending_pod_hours=sum(pending) / 3600.0,
        cold_starts=len(run.cold_starts),
        cold_starts_unfinished=sum(1 for c in run.cold_starts if not c.completed),
        cold_start_p50_s=percentile(samples, 50),
        cold_start_p95_s=percentile(samples, 95),
        cold_start_p99_s=percentile(samples, 99),
        cold_start_max_s=max(samples, default=None),
        peak_loads_per_node=max(peaks, default=0),
        nodes_with_concurrent_loads=sum(1 for k in peaks if k >= 2),
        gpu_hours=gpu_hours,
        gpu_hours_serving=serving,
        cost=cost,
        fleet_cost=run.fleet_cost,
        events=run.events,
        wall_s=run.wall_s,
        cold_start_samples=samples,
        loads_series=downsample(run.loads_series, run.duration_s),
        node_peaks=run.node_peaks,
        pending_reasons=tuple(
            Counter(
                p.last_reason for p in run.pods if p.bound_at is None and p.end_at >= end
            ).most_common()
        ),
        groups=run.groups,
        groups_half_placed=run.groups_half_placed,
        half_placed_gpu_s=run.half_placed_gpu_s,
        evictions=run.evictions,
        wasted_evictions=run.wasted_evictions,
        top_priority_cold_starts=len(top_samples),
        top_priority_cold_start_p50_s=percentile(top_samples, 50),
        top_priority_cold_start_p95_s=percentile(top_samples, 95),
        budget_overruns=run.budget_overruns,
    )
