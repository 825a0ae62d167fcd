"""A bounded HTTP server for probes and metrics: ``/healthz``, ``/readyz``, ``/metrics``.

Whoever reaches such a port (the kubelet's probes, Prometheus, a neighbour pod) must never take
a thread the component's real work needs, nor grow its memory. So it is not gunicorn: it is a
small server with a fixed pool of threads, a short queue (a connection that finds it full is
closed at once), a timeout on every socket operation and a deadline on each whole connection,
after which the socket is shut down whatever the client is doing. A connection serves one
request (HTTP/1.0); a client that hangs up or stalls is the client's business: a debug line,
never a traceback. The extender and the node agent both serve their probes through it.
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

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of the process the listener may hold at once: ``threads`` connections
    served and ``queue`` waiting; ``timeout_s`` for each read or write (probes and Prometheus
    send their request at once) and ``deadline_s`` for a whole connection."""

    threads: int = 4
    queue: int = 8
    timeout_s: float = 2.0
    deadline_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Page:
    """One reply: status, body and content type."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


Route = Callable[[], Page]


class _Server(HTTPServer):
    """An HTTP server with a fixed pool of threads and a deadline on every connection."""

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        limits: Limits,
        name: str,
    ) -> None:
        self.limits = limits
        self.name = name
        self._queue: queue.Queue[tuple[socket.socket, Any] | None] = queue.Queue(limits.queue)
        self._open: dict[socket.socket, float] = {}
        self._open_lock = threading.Lock()
        self._closing = threading.Event()
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(limits.threads)
        ]
        self._threads.append(threading.Thread(target=self._reap, name=f"{name}-reap", daemon=True))

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
                log.debug("%s: connection from %s ended: %s", self.name, address, exc)
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


class BoundedServer:
    """Serves ``routes`` (path to page) on ``host:port`` (0 picks a free port) until stopped;
    ``name`` names its threads and log lines."""

    def __init__(
        self,
        host: str,
        port: int,
        routes: dict[str, Route],
        *,
        limits: Limits = Limits(),
        name: str = "probes",
    ) -> None:
        class Handler(BaseHTTPRequestHandler):
            timeout = limits.timeout_s  # every socket operation, from setup() on

            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                if route is None:
                    known = ", ".join(sorted(routes))
                    page = Page(404, f"not found: try {known}\n".encode())
                else:
                    try:
                        page = route()
                    except Exception as exc:
                        log.exception("%s: %s failed", name, self.path[:100])
                        page = Page(500, f"failed: {type(exc).__name__}\n".encode())
                self.send_response(page.status)
                self.send_header("Content-Type", page.content_type)
                self.send_header("Content-Length", str(len(page.body)))
                self.end_headers()
                self.wfile.write(page.body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug(name + " http: " + format, *args)

        self._httpd = _Server((host, port), Handler, limits, name)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=name, daemon=True)

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
