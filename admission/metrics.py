"""Prometheus metrics of the admission webhook, on a registry the caller injects.

Reviews by outcome, pods admitted unchanged by reason (the alert that says "a model nobody can
size is being deployed"), bad requests by status, latency, the Events sent about it, and the
serving certificate's expiry. Label values come from fixed sets, never from the pod.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from placement.derive import REASONS, Outcome

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
SKIPPED = "skipped"
"""Outcome of a review that is not a pod being created (the configuration should not send it)."""
ERROR = "error"
"""Outcome of a review our own fault could not answer (the pod is admitted unchanged)."""
EVENT_RESULTS = ("sent", "repeated", "dropped", "failed")


class AdmissionMetrics:
    """All metric objects of one webhook process, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.reviews = Counter(
            "vramfit_admission_reviews",
            "AdmissionReviews answered, by outcome (every answer allows the pod).",
            ["outcome"],
            registry=registry,
        )
        self.not_derived = Counter(
            "vramfit_admission_not_derived",
            "GPU pods admitted unchanged because their demand could not be derived, by reason.",
            ["reason"],
            registry=registry,
        )
        self.bad_requests = Counter(
            "vramfit_admission_bad_requests",
            "Requests that were not AdmissionReviews, by HTTP status answered.",
            ["status"],
            registry=registry,
        )
        self.latency = Histogram(
            "vramfit_admission_review_duration_seconds",
            "Time to answer one AdmissionReview.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.events = Counter(
            "vramfit_admission_events",
            "Events about pods admitted unchanged, by result.",
            ["result"],
            registry=registry,
        )
        self.certificate_not_after = Gauge(
            "vramfit_admission_certificate_not_after_timestamp_seconds",
            "When the serving certificate expires (Unix time); 0 before one is loaded.",
            registry=registry,
        )
        self.certificate_rotations = Counter(
            "vramfit_admission_certificate_rotations",
            "Serving certificates or CAs this process generated and stored.",
            ["what"],
            registry=registry,
        )
        for outcome in [*(o.value for o in Outcome), SKIPPED, ERROR]:
            self.reviews.labels(outcome)
        for reason in REASONS:
            self.not_derived.labels(reason)
        for result in EVENT_RESULTS:
            self.events.labels(result)
