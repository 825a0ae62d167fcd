"""The extender's probe listener over real sockets: its routes, and the bounds it keeps under clients that
stall, drip or pile up."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from controlplane.pytest_plugin import wait_for
from extender.app import probe_routes
from extender.metrics import ExtenderMetrics
from serving import BoundedServer, Limits, Page
from tests.extender.conftest import mixed_pool, synced_state

LIMITS = Limits(threads=2, queue=2, timeout_s=1.0, deadline_s=2.0)


@pytest.fixture
def server() -> Iterator[BoundedServer]:
    routes = {"/healthz": lambda: Page(200, b"ok\n")}
    probes = BoundedServer("127.0.0.1", 0, routes, limits=LIMITS)
    probes.start()
    try:
        yield probes
    finally:
        probes.stop()


def get(port: int, path: str, method: str = "GET") -> tuple[int, bytes, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.getheader("Content-Type") or ""
    finally:
        conn.close()


def test_the_extender_routes_answer_as_on_the_verbs_port() -> None:
    state = synced_state(mixed_pool())
    probes = BoundedServer(
        "127.0.0.1", 0, probe_routes(state, ExtenderMetrics(CollectorRegistry()))
    )
    probes.start()
    try:
        port = probes.address[1]
        assert get(port, "/healthz")[:2] == (200, b"ok\n")
        assert get(port, "/readyz")[:2] == (200, b"ok\n")
        status, body, ctype = get(port, "/metrics")
        assert status == 200 and ctype == CONTENT_TYPE_LATEST
        assert b"vramfit_extender_ready 1.0" in body
        status, body, _ = get(port, "/scheduler/filter")
        assert status == 404 and b"/healthz" in body
        assert get(port, "/scheduler/bind", "POST")[0] == 501
    finally:
        probes.stop()


def test_a_dripping_client_is_cut_at_the_deadline(server: BoundedServer) -> None:
    s = socket.create_connection(server.address, timeout=5)
    started = time.monotonic()
    closed = False
    try:
        for byte in b"GET /healthz HTTP/1.0\r\nX-Slow: " + b"a" * 40:
            try:
                s.sendall(bytes([byte]))
                time.sleep(0.1)
            except OSError:
                closed = True
                break
        else:
            closed = s.recv(1) == b""
    finally:
        s.close()
    assert closed and time.monotonic() - started < LIMITS.deadline_s + 1.0


def test_connections_beyond_the_queue_are_closed_at_once() -> None:
    # Patient limits, so that a loaded machine cannot time the held clients out mid-test.
    limits = Limits(threads=2, queue=2, timeout_s=30.0, deadline_s=60.0)
    server = BoundedServer("127.0.0.1", 0, {"/healthz": lambda: Page(200, b"ok\n")}, limits=limits)
    server.start()
    held = []
    try:
        for count in (limits.threads, limits.queue):  # the threads take theirs, then the queue
            held += [socket.create_connection(server.address, timeout=5) for _ in range(count)]
            time.sleep(0.5)
        extra = socket.create_connection(server.address, timeout=5)
        started = time.monotonic()
        try:
            assert extra.recv(1) == b""  # closed without a reply
        finally:
            extra.close()
        assert time.monotonic() - started < limits.timeout_s / 2
    finally:
        for s in held:
            s.close()
    try:
        # Once the stalled clients are gone, it serves again.
        wait_for(
            "a reply again",
            lambda: get(server.address[1], "/healthz")[:2] == (200, b"ok\n") or None,
            30,
            retry_on=lambda exc: isinstance(exc, OSError),
        )
    finally:
        server.stop()
