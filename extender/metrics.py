"""Prometheus metrics of the extender, on a registry the caller injects.

Decisions by verb, outcome and reason; per-node reject reasons; latency per verb; reservations
by state (read from the state at scrape time); watch health. Label values are short, bounded
codes, never free text, so the series count stays small whatever the cluster does.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Filter must stay in single-digit milliseconds; the buckets resolve that range finely.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


class _ReservationCollector(Collector):
    def __init__(self, read: Callable[[], dict[str, int]]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "vramfit_extender_reservations",
            "Active GPU reservations held by the extender, by state.",
            labels=["state"],
        )
        for state, count in sorted(self._read().items()):
            family.add_metric([state], count)
        yield family


class ExtenderMetrics:
    """All metric objects of one extender, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.decisions = Counter(
            "vramfit_extender_decisions",
            "Answers given by the extender, by verb, outcome and main reason.",
            ["verb", "outcome", "reason"],
            registry=registry,
        )
        self.node_rejections = Counter(
            "vramfit_extender_node_rejections",
            "Nodes filtered out for a GPU pod, by reason.",
            ["reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "vramfit_extender_request_duration_seconds",
            "Time to answer a kube-scheduler call, by verb.",
            ["verb"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.preemption_nodes = Counter(
            "vramfit_extender_preemption_nodes",
            "Candidate nodes of a preempt call: kept as offered, narrowed to fewer victims, or "
            "dropped, by reject class.",
            ["outcome", "reason"],
            registry=registry,
        )
        self.requeues = Counter(
            "vramfit_extender_requeues",
            "Refused pods woken (annotation touched) after capacity may have come back.",
            registry=registry,
        )
        self.nominations_ahead = Counter(
            "vramfit_extender_nominations_ahead",
            "GPU pods decided before kube-scheduler's cycle reached them (--nominate-ahead), by "
            "outcome: nominated, no-fit, scheduler-first, conflict, failed, withdrawn (the filter "
            "refused the nominated node).",
            ["outcome"],
            registry=registry,
        )
        self.bad_requests = Counter(
            "vramfit_extender_bad_requests",
            "Requests refused before any decision, by HTTP status.",
            ["status"],
            registry=registry,
        )
        self.watch_events = Counter(
            "vramfit_extender_watch_events",
            "Watch events applied to the extender's view, by resource and type.",
            ["resource", "type"],
            registry=registry,
        )
        self.watch_waits = Counter(
            "vramfit_extender_watch_wait_seconds",
            "Seconds the agents' watches waited for the scheduler's requests in flight before "
            "applying an event, by resource.",
            ["resource"],
            registry=registry,
        )
        self.watch_restarts = Counter(
            "vramfit_extender_watch_restarts",
            "Watches restarted, by resource and cause.",
            ["resource", "cause"],
            registry=registry,
        )
        self.ready = Gauge(
            "vramfit_extender_ready",
            "1 once every reservation was rebuilt from pods and every report read.",
            registry=registry,
        )
        self.nodes = Gauge(
            "vramfit_extender_nodes",
            "Nodes with a GPU report, by whether the report could be read.",
            ["report"],
            registry=registry,
        )

        # Reject counts not added to ``node_rejections`` yet (``reject_later``).
        self._later: deque[Mapping[str, int]] = deque()

    MAX_LATER = 64
    """Reject counts held before ``reject_later`` settles them at once."""

    def reject_later(self, counts: Mapping[str, int]) -> None:
        """Add ``counts`` (reject class -> nodes) to ``node_rejections`` at the next
        ``settle``: a filter's counts may cost as much as its decision to work out
        (``placement.fleet.rejects.NamedCounts``), and nothing in its reply needs them, so the
        filter settles them after its reply is sent, and a scrape before it reads them."""
        self._later.append(counts)
        if len(self._later) > self.MAX_LATER:
            self.settle()

    def settle(self) -> None:
        """Add every held reject count to ``node_rejections``."""
        while True:
            try:
                counts = self._later.popleft()
            except IndexError:
                return
            for code, n in counts.items():
                self.node_rejections.labels(code).inc(n)

    def watch_reservations(self, read: Callable[[], dict[str, int]]) -> None:
        """Report ``read()`` (state -> count) as the reservations gauge at every scrape."""
        self.registry.register(_ReservationCollector(read))

    def observe(self, verb: str, started: float) -> None:
        self.latency.labels(verb).observe(time.perf_counter() - started)
