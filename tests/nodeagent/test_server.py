"""The agent's HTTP server under hostile clients: idle connections, drips, hang-ups."""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Gauge

from nodeagent.server import AgentServer


def registry(series: int = 2000) -> CollectorRegistry:
    """A registry whose exposition is large (a hang-up mid-reply breaks the server's write)."""
    reg = CollectorRegistry()
    gauge = Gauge("filler", "a large exposition", ["i"], registry=reg)
    for i in range(series):
        gauge.labels(str(i)).set(i)
    return reg


@pytest.fixture
def served() -> Iterator[AgentServer]:
    server = AgentServer(
        "127.0.0.1", 0, registry(), live=lambda: (True, "ok"), ready=lambda: (True, "ok")
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def healthz(server: AgentServer) -> int:
    conn = http.client.HTTPConnection(*server.address, timeout=5)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status
    finally:
        conn.close()


def test_idle_connections_hold_a_bounded_number_of_threads(served: AgentServer) -> None:
    """Regression: one thread per connection, no timeout (500 idle connections held 502
    threads of an agent limited to 128 Mi)."""
    before = threading.active_count()
    held = [socket.create_connection(served.address, timeout=5) for _ in range(200)]
    try:
        time.sleep(0.5)
        assert threading.active_count() - before <= 0
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 10
    while True:  # what was queued ends at EOF, and the server answers again
        try:
            if healthz(served) == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_a_silent_client_is_dropped_after_the_timeout(served: AgentServer) -> None:
    s = socket.create_connection(served.address, timeout=30)
    started = time.monotonic()
    try:
        s.sendall(b"GET /metr")
        assert s.recv(1) == b""
    finally:
        s.close()
    assert time.monotonic() - started < 15


def test_client_hang_ups_print_no_traceback(
    served: AgentServer, capfd: pytest.CaptureFixture[str]
) -> None:
    """Regression: every client that hung up mid-reply printed a traceback."""
    for _ in range(5):
        s = socket.create_connection(served.address, timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        s.close()  # with linger 0: a reset while the server writes
    time.sleep(0.5)
    assert healthz(served) == 200
    _, err = capfd.readouterr()
    assert "Traceback" not in err, err
