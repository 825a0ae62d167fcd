"""The agent's HTTP endpoints: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz`` for
the kubelet's probes.

A handful of requests a minute, but anyone in the cluster the NetworkPolicy lets through can
connect, and the agent lives in 128 Mi: so they are served by the bounded server in
``serving`` (fixed threads, a short queue, a timeout on every socket operation and a deadline
on every connection), with the agent's own, more patient, limits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from serving import BoundedServer, Limits, Page, Route

log = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, str]]

AGENT_LIMITS = Limits(threads=4, queue=8, timeout_s=5.0, deadline_s=20.0)
"""The agent's server limits: probes come from the kubelet on the node, Prometheus from afar."""


def _check_page(check: Check) -> Route:
    def page() -> Page:
        ok, why = check()
        return Page(200 if ok else 503, (why or "ok").encode() + b"\n")

    return page


def _metrics_page(registry: CollectorRegistry) -> Route:
    def page() -> Page:
        try:
            body = generate_latest(registry)
        except Exception as exc:
            log.exception("metrics exposition failed")
            return Page(500, f"metrics failed: {type(exc).__name__}\n".encode())
        return Page(200, body, CONTENT_TYPE_LATEST)

    return page


class AgentServer(BoundedServer):
    """Serves the registry and two checks on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        *,
        live: Check,
        ready: Check,
        limits: Limits = AGENT_LIMITS,
    ) -> None:
        routes = {
            "/metrics": _metrics_page(registry),
            "/healthz": _check_page(live),
            "/readyz": _check_page(ready),
        }
        super().__init__(host, port, routes, limits=limits, name="http")
