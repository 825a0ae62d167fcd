"""``make fuzz``: hostile requests against the real extender server, on loopback.

The server is the shipped stack (gunicorn, one gthread worker, the Flask app, the probe
listener) holding a fleet of ``FLEET`` GPU nodes, with an in-memory API server that accepts
every annotation patch and Binding. Hypothesis draws the requests (``tests.extender.hostile``);
each is sent on its own connection and its status, reply size and time are recorded while a
thread samples the worker's resident memory. The run is bounded in count (``--requests``,
10,000 by default) and in time (``--max-seconds``); it reports status codes, reply sizes and
memory per kind and checks the bounds: never a 5xx or a dropped answer, a reply never larger
than a bound per node named, a filter answered beside stalled clients once their read timeouts
are over (``slowest_filter_s``), memory
within ``--max-rss-growth-mib`` of where it started, and the server still answering at the end.
CI runs a short version (``tests/extender/test_fuzz.py``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from prometheus_client import CollectorRegistry

from extender.app import create_app, probe_routes
from extender.bind import Binder
from extender.config import Settings
from extender.metrics import ExtenderMetrics
from extender.server import ExtenderServer
from placement.fields import MAX_REASON
from serving import BoundedServer
from tests.extender.conftest import gpu_node, pod_object, synced_state
from tests.extender.hostile import FLEET, Hostile, hostile_requests

PER_NODE_BYTES = 253 + 6 * MAX_REASON + 16
"""Most a reply may say about one node: its name and a reason, JSON-escaped."""
BASE_BYTES = 4096
"""Most a reply may say besides (an error message, the envelope)."""
THREADS = 8
READ_TIMEOUT_S = 1.0


def slowest_filter_s(h: Hostile) -> float:
    """Longest a filter may wait beside ``h``'s stalled verb connections: each holds a thread
    at most the read timeout (twice when it drips a byte in between), and they are served in
    turn, ``THREADS`` at a time, before the filter that came after them."""
    rounds = -(-h.stalled // THREADS)
    return rounds * READ_TIMEOUT_S * (2 if h.drip else 1) + 1.0


class AcceptingPodAPI:
    """The API server's pod endpoints, accepting every patch and Binding (nothing is read)."""

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        return pod_object(name, namespace=namespace, uid="unknown")

    def patch_pod(self, namespace: str, name: str, patch: Any) -> dict[str, Any]:
        return {}

    def bind_pod(self, namespace: str, name: str, uid: str, node: str, **_: Any) -> None:
        return None


def serve(port: int, metrics_port: int) -> None:
    """The server under test (run as a child process: ``fuzz.py serve PORT METRICS_PORT``)."""
    config = Settings(
        port=port,
        metrics_host="127.0.0.1",
        metrics_port=metrics_port,
        threads=THREADS,
        read_timeout_s=READ_TIMEOUT_S,
        log_level="error",
    )

    def factory() -> Any:
        now = time.time()
        nodes = [gpu_node(f"n{i}", observed_at=now) for i in range(FLEET)]
        state = synced_state(nodes, lease_at=now)
        binder = Binder(state, AcceptingPodAPI(), config)
        metrics = ExtenderMetrics(CollectorRegistry())
        BoundedServer("127.0.0.1", metrics_port, probe_routes(state, metrics)).start()
        return create_app(config, state, binder, metrics)

    ExtenderServer(config, factory).run()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its children (the gunicorn worker), in KiB."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
        for p in pids:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    except OSError:
        pass
    return total


@dataclass
class Report:
    """What a run saw: per kind, status codes, reply sizes and times; memory; violations."""

    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    largest: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    slowest: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    sent: int = 0
    rss_start_kib: int = 0
    rss_peak_kib: int = 0
    rss_end_kib: int = 0
    seconds: float = 0.0
    violations: list[str] = field(default_factory=list)

    def record(self, h: Hostile, status: int, size: int, seconds: float) -> None:
        self.sent += 1
        self.statuses[h.kind][status] += 1
        self.largest[h.kind] = max(self.largest[h.kind], size)
        self.slowest[h.kind] = max(self.slowest[h.kind], seconds)
        if status >= 500 or status == 0:
            self.violations.append(f"{h.kind} {h.path[:60]}: status {status}")
        if h.path != "/metrics" and size > BASE_BYTES + PER_NODE_BYTES * h.nodes:
            self.violations.append(f"{h.kind}: a {size}-byte reply for {h.nodes} nodes")

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.sent,
            "seconds": round(self.seconds, 1),
            "statuses": {k: dict(sorted(v.items())) for k, v in sorted(self.statuses.items())},
            "largest_reply_bytes": dict(sorted(self.largest.items())),
            "slowest_seconds": {k: round(v, 3) for k, v in sorted(self.slowest.items())},
            "server_rss_mib": {
                "start": round(self.rss_start_kib / 1024, 1),
                "peak": round(self.rss_peak_kib / 1024, 1),
                "end": round(self.rss_end_kib / 1024, 1),
            },
            "violations": self.violations[:50],
        }


def _send(port: int, h: Hostile) -> tuple[int, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        headers = {"Content-Type": "application/json"}
        if h.chunked:
            chunks = (h.body[i : i + 65536] for i in range(0, len(h.body), 65536))
            conn.request(h.method, h.path, body=chunks, headers=headers, encode_chunked=True)
        else:
            conn.request(h.method, h.path, body=h.body, headers=headers)
        resp = conn.getresponse()
        return resp.status, len(resp.read())
    except (OSError, http.client.HTTPException):
        # The server may close on a body it refuses before reading all of it (413).
        return (413, 0) if h.kind == "oversized" else (0, 0)
    finally:
        conn.close()


FILTER = json.dumps({"Pod": pod_object("probe", uid="probe"), "NodeNames": ["n0", "n1"]}).encode()


def _stall(port: int, h: Hostile) -> tuple[int, int]:
    """Stall ``h.stalled`` connections, then time a filter on a fresh one."""
    held = []
    try:
        for _ in range(h.stalled):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"POST /scheduler/filter HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
            held.append(s)
        time.sleep(h.stall_s)
        if h.drip:
            for s in held:
                s.sendall(b" ")
        started = time.monotonic()
        status, size = _send(port, Hostile("slow", "POST", "/scheduler/filter", FILTER, nodes=2))
        if status == 200 and time.monotonic() - started > slowest_filter_s(h):
            return 504, size  # answered, but too late for kube-scheduler's critical path
        return status, size
    finally:
        for s in held:
            s.close()


def run(requests: int, max_seconds: float, *, seed: int = 0) -> Report:
    """Start the server, send ``requests`` hostile requests (or stop at ``max_seconds``); the
    same ``seed`` draws the same requests."""
    port, metrics_port = _free_port(), _free_port()
    cmd = [sys.executable, "-m", "tests.extender.fuzz", "serve", str(port), str(metrics_port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    report = Report()
    stop = threading.Event()
    try:
        _wait_ready(metrics_port, proc)
        report.rss_start_kib = _rss_kib(proc.pid)

        def sample() -> None:
            while not stop.wait(0.2):
                report.rss_peak_kib = max(report.rss_peak_kib, _rss_kib(proc.pid))

        threading.Thread(target=sample, daemon=True).start()
        started = time.monotonic()

        @settings(
            max_examples=requests,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
        )
        @hypothesis_seed(seed)
        @given(hostile_requests())
        def one(h: Hostile) -> None:
            if time.monotonic() - started > max_seconds:
                return
            t0 = time.monotonic()
            status, size = _stall(port, h) if h.kind == "slow" else _send(port, h)
            report.record(h, status, size, time.monotonic() - t0)

        one()
        report.seconds = time.monotonic() - started
        status, _ = _send(port, Hostile("slow", "POST", "/scheduler/filter", FILTER, nodes=2))
        if status != 200:
            report.violations.append(f"the server no longer answers a filter ({status})")
        report.rss_end_kib = _rss_kib(proc.pid)
    finally:
        stop.set()
        proc.terminate()
        proc.wait(timeout=30)
    return report


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the fuzzed server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the fuzzed server did not become ready")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make fuzz", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    srv = sub.add_parser("serve", help="(internal) the server under test")
    srv.add_argument("port", type=int)
    srv.add_argument("metrics_port", type=int)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--max-rss-growth-mib", type=float, default=256.0)
    parser.add_argument("--seed", type=int, default=0, help="draws the same requests again")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.port, args.metrics_port)
        return 0
    report = run(args.requests, args.max_seconds, seed=args.seed)
    growth = (report.rss_peak_kib - report.rss_start_kib) / 1024
    if growth > args.max_rss_growth_mib:
        report.violations.append(f"server memory grew {growth:.0f} MiB")
    text = json.dumps(report.as_json(), indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
