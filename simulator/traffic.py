"""Offered traffic to replica targets: what the KServe (Knative) autoscaler asks for over time.

The autoscaler's target depends only on the traffic, never on where pods land, so it is
compiled ahead of the run, once per service and seed, and every policy replays the same
targets. The model, per service:

* requests arrive as a Poisson process whose rate follows the traffic pattern;
* a service is *busy* from a request until ``scaleToZeroAfter`` past the last one; a request
  that finds it idle is a scale-from-zero and starts a cold start;
* while busy it wants ``ceil(rate / capacity)`` replicas (at least one), and a lower want
  takes effect only once it has lasted ``scaleDownDelay`` (Knative's stable window);
* ``minReplicas`` and ``maxReplicas`` bound the target; with ``minReplicas > 0`` there is no
  scale to zero and so no cold start.

Where the rate is so high that a gap of ``scaleToZeroAfter`` between requests is practically
impossible (rate times the idle window of 30 or more: a chance below e^-30), the requests are
treated as continuous instead of drawn one by one. Pure given the random generator.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass

from simulator.scenario import Service
from simulator.settings import Settings

DENSE = 30.0
"""Rate x idle window above which requests are continuous (no idle gap is possible)."""


@dataclass(frozen=True, slots=True)
class Segment:
    """Requests at ``rate`` per second during [start, end); ``exact_first``: the first request
    arrives at ``start`` itself (a burst that starts with a request)."""

    start: float
    end: float
    rate: float
    exact_first: bool = False


@dataclass(frozen=True, slots=True)
class ServicePlan:
    """The autoscaler's replica target over time and the scale-from-zero moments."""

    service: str
    targets: tuple[tuple[float, int], ...]
    cold_starts: tuple[float, ...]
    busy: tuple[tuple[float, float], ...]


def segments(service: Service, duration: float, step: float, rng: random.Random) -> list[Segment]:
    """The service's request rate as sorted, non-overlapping segments of positive rate (pure
    given ``rng``)."""
    t = service.traffic
    out: list[Segment] = []
    if t.pattern == "constant":
        out.append(Segment(0.0, duration, t.rate))
    elif t.pattern == "burst":
        lo, hi = t.start
        start = lo if hi <= lo else rng.uniform(lo, hi)
        end = duration if t.duration_s is None else min(duration, start + t.duration_s)
        if start < end:
            out.append(Segment(start, end, t.rate, exact_first=True))
    elif t.pattern == "onoff":
        now = 0.0
        on = rng.random() < t.on_mean_s / (t.on_mean_s + t.off_mean_s)
        while now < duration:
            length = rng.expovariate(1.0 / (t.on_mean_s if on else t.off_mean_s))
            end = min(duration, now + length)
            if on and end > now:
                out.append(Segment(now, end, t.rate))
            now = end
            on = not on
    else:  # diurnal
        steps = math.ceil(duration / step)
        for k in range(steps):
            a = k * step
            b = min(duration, a + step)
            mid = (a + b) / 2.0
            phase = 2.0 * math.pi * (mid - t.peak_at_s) / t.period_s
            rate = t.trough + (t.rate - t.trough) * (1.0 + math.cos(phase)) / 2.0
            if rate > 0:
                if out and out[-1].end == a and out[-1].rate == rate:
                    out[-1] = Segment(out[-1].start, b, rate)
                else:
                    out.append(Segment(a, b, rate))
    return out


def busy_intervals(
    segs: list[Segment], idle_s: float, duration: float, rng: random.Random
) -> list[tuple[float, float]]:
    """When the service has had a request within ``idle_s``: merged [first, last + idle)
    (pure given ``rng``)."""
    busy: list[list[float]] = []

    def cover(first: float, last: float) -> None:
        if busy and first <= busy[-1][1]:
            busy[-1][1] = max(busy[-1][1], last + idle_s)
        else:
            busy.append([first, last + idle_s])

    for s in segs:
        x = s.start if s.exact_first else s.start + rng.expovariate(s.rate)
        if s.rate * idle_s >= DENSE:
            if x < s.end:
                cover(x, s.end)
            continue
        while x < s.end:
            cover(x, x)
            x += rng.expovariate(s.rate)
    return [(a, min(b, duration)) for a, b in busy if a < duration]


def compile_service(
    service: Service, duration: float, settings: Settings, seed: int
) -> ServicePlan:
    """The replica targets of ``service`` over ``[0, duration)`` for ``seed`` (pure).

    The random stream is keyed by the seed and the service name, so adding a service does
    not change the traffic of the others.
    """
    rng = random.Random(f"{seed}/traffic/{service.name}")
    segs = segments(service, duration, settings.traffic_step_s, rng)
    busy = busy_intervals(segs, service.scale_to_zero_after_s, duration, rng)
    delay = settings.scale_down_delay_s
    cap = service.max_replicas
    wants = [min(cap, max(1, math.ceil(s.rate / service.capacity))) for s in segs]
    seg_starts = [s.start for s in segs]
    seg_ends = [s.end for s in segs]
    busy_starts = [b[0] for b in busy]

    def want(t: float) -> int:
        """The highest want in the stable window [t - delay, t]."""
        hi = bisect.bisect_right(seg_starts, t)
        lo = bisect.bisect_right(seg_ends, t - delay)
        return max(wants[lo:hi], default=0)

    def is_busy(t: float) -> bool:
        i = bisect.bisect_right(busy_starts, t) - 1
        return i >= 0 and t < busy[i][1]

    def target(t: float) -> int:
        value = max(1, want(t)) if is_busy(t) else 0
        return min(cap, max(service.min_replicas, value))

    moments = {0.0}
    for s in segs:
        moments.update((s.start, s.end, s.end + delay))
    for a, b in busy:
        moments.update((a, b))
    targets: list[tuple[float, int]] = []
    for t in sorted(m for m in moments if m < duration):
        value = target(t)
        if not targets or targets[-1][1] != value:
            targets.append((t, value))
    cold = tuple(a for a, _ in busy) if service.min_replicas == 0 else ()
    return ServicePlan(service.name, tuple(targets), cold, tuple(busy))
