"""The agent's HTTP endpoints: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz`` for
the kubelet's probes.

A handful of requests a minute, but anyone in the cluster the NetworkPolicy lets through can
connect, and the agent lives in 128 Mi. So the server holds a fixed number of threads and a
short queue (a connection that finds it full is closed at once), gives every socket operation
a timeout and every connection a deadline, serves one request per connection, and treats a
client that hangs up or stalls as the client's business: a debug line, never a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, str]]


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """``threads`` connections served and ``queue`` waiting at once; ``timeout_s`` for each
    read or write, ``deadline_s`` for a whole connection."""

    threads: int = 4
    queue: int = 8
    timeout_s: float = 5.0
    deadline_s: float = 20.0


class _BoundedServer(HTTPServer):
    """An HTTP server with a fixed pool of threads and a deadline on every connection."""

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        limits: ServerLimits,
    ) -> None:
        self.limits = limits
        self._queue: queue.Queue[tuple[socket.socket, Any] | None] = queue.Queue(limits.queue)
        self._open: dict[socket.socket, float] = {}
        self._open_lock = threading.Lock()
        self._closing = threading.Event()
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)
        self._threads = [
            threading.Thread(target=self._work, name=f"http-{i}", daemon=True)
            for i in range(limits.threads)
        ]
        self._threads.append(threading.Thread(target=self._reap, name="http-reap", daemon=True))

    def start_threads(self) -> None:
        for t in self._threads:
            t.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            self._queue.put_nowait((request, client_address))
        except queue.Full:
            self.shutdown_request(request)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            request, address = item
            with self._open_lock:
                self._open[request] = time.monotonic() + self.limits.deadline_s
            try:
                self.finish_request(request, address)
            except Exception as exc:  # a client that hangs up or stalls: nothing to report
                log.debug("http connection from %s ended: %s", address, exc)
            finally:
                with self._open_lock:
                    self._open.pop(request, None)
                self.shutdown_request(request)

    def _reap(self) -> None:
        """Shut down connections past their deadline (a client dripping bytes)."""
        while not self._closing.wait(0.25):
            now = time.monotonic()
            with self._open_lock:
                late = [s for s, deadline in self._open.items() if deadline < now]
            for s in late:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def server_close(self) -> None:
        self._closing.set()
        super().server_close()
        for _ in range(self.limits.threads):
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                break


class AgentServer:
    """Serves the registry and two checks on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        *,
        live: Check,
        ready: Check,
        limits: ServerLimits = ServerLimits(),
    ) -> None:
        class Handler(BaseHTTPRequestHandler):
            timeout = limits.timeout_s  # every socket operation, from setup() on

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    try:
                        body = generate_latest(registry)
                    except Exception as exc:
                        log.exception("metrics exposition failed")
                        self._send(500, f"metrics failed: {exc}\n".encode(), "text/plain")
                        return
                    self._send(200, body, CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/readyz"):
                    ok, why = (live if path == "/healthz" else ready)()
                    self._send(200 if ok else 503, (why or "ok").encode() + b"\n", "text/plain")
                else:
                    self._send(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http: " + format, *args)

        self._httpd = _BoundedServer((host, port), Handler, limits)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port."""
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Serve in daemon threads."""
        self._httpd.start_threads()
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
