"""The webhook's HTTP face: ``POST /mutate`` on the TLS listener, probes and metrics on another.

``/mutate`` decodes the AdmissionReview (``review``), asks the core what to add
(``placement.derive``), and answers with a JSONPatch. Every answer allows the pod: a pod whose
demand cannot be derived goes through unchanged, with a warning to its creator, an Event and a
metric. A body that is not an AdmissionReview gets 400 (413 when too large) with a message; a
fault of ours still allows the pod unchanged (the API server would otherwise apply the failure
policy to a pod that did nothing wrong).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from flask import Flask, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from admission.events import EventSink, involved_object
from admission.metrics import ERROR, SKIPPED, AdmissionMetrics
from admission.review import ReviewError, decode_review, patch_ops, response
from placement.derive import Outcome, derive
from placement.models import Headroom, ModelCatalog

log = logging.getLogger(__name__)


def _json(value: object, status: int) -> Response:
    return Response(orjson.dumps(value), status=status, mimetype="application/json")


def _body(limit: int) -> bytes:
    """The request body; 413 when over ``limit`` (a chunked body that reaches it included)."""
    data = request.get_data(cache=False)
    if request.content_length is None and len(data) >= limit:
        raise RequestEntityTooLarge()
    return data


class Mutator:
    """Answers one AdmissionReview body (no Flask here, so tests call it directly)."""

    def __init__(
        self,
        catalog: ModelCatalog,
        headroom: Headroom,
        metrics: AdmissionMetrics,
        events: EventSink | None,
    ) -> None:
        self.catalog = catalog
        self.headroom = headroom
        self.metrics = metrics
        self.events = events

    def review(self, body: bytes) -> bytes:
        """The answer to ``body``; raises ``ReviewError`` when it is not an AdmissionReview."""
        review = decode_review(body)
        if not review.is_pod_create:
            self.metrics.reviews.labels(SKIPPED).inc()
            return response(review.uid, [])
        pod: dict[str, Any] = dict(review.obj)
        meta = dict(pod.get("metadata") or {})
        meta.setdefault("namespace", review.namespace)
        pod["metadata"] = meta
        try:
            derivation = derive(pod, self.catalog, self.headroom)
        except Exception:
            log.exception("deriving the demand of a pod in %s failed", review.namespace)
            self.metrics.reviews.labels(ERROR).inc()
            return response(review.uid, [])
        self.metrics.reviews.labels(derivation.outcome.value).inc()
        if derivation.outcome is Outcome.NOT_DERIVED:
            self.metrics.not_derived.labels(derivation.reason).inc()
            log.info("%s", derivation.message)
            if self.events is not None and not review.dry_run:
                self.events.report(
                    involved_object(pod, review.namespace), derivation.reason, derivation.message
                )
            return response(review.uid, [], [derivation.message])
        return response(review.uid, patch_ops(review.obj, derivation))


def create_app(mutator: Mutator, max_body_bytes: int) -> Flask:
    """The TLS listener's app: ``POST /mutate`` only."""
    app = Flask("vramfit-admission")
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    metrics = mutator.metrics

    @app.post("/mutate")
    def mutate() -> Response:
        started = time.perf_counter()
        try:
            answer = mutator.review(_body(max_body_bytes))
        except ReviewError as exc:
            metrics.bad_requests.labels("400").inc()
            return _json({"error": f"mutate: {exc}"}, 400)
        finally:
            metrics.latency.observe(time.perf_counter() - started)
        return Response(answer, status=200, mimetype="application/json")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 400
        metrics.bad_requests.labels(str(status)).inc()
        message: Any = exc.description
        if status == 413:
            message = f"request body larger than {max_body_bytes} bytes"
        return _json({"error": message}, status)

    return app


StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def probe_app(
    metrics: AdmissionMetrics, ready: Callable[[], bool]
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The plain-HTTP probe and metrics listener: ``/healthz``, ``/readyz`` (a serving
    certificate is loaded), ``/metrics``. A WSGI app of its own, so probes and scrapes never
    wait behind reviews."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [generate_latest(metrics.registry)]
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            if ready():
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [b"ok\n"]
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"not ready: no serving certificate yet\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: /healthz, /readyz, /metrics\n"]

    return app
