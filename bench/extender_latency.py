"""The extender's latency against its floor, over HTTP on loopback, measured in one run.

Two servers run side by side, each a child process behind the same stack (gunicorn, one
worker, the Flask app): the extender over a synthetic fleet (``bench.extender_fleet``), and the
floor, a handler that decodes the same request bytes and answers one node. Every request body
goes to the floor and then to the extender, one after the other, so both see the same machine
at the same moment; on a shared machine only their ratio means much.

kube-scheduler filters the nodes in parallel and names the feasible ones in the order its
goroutines finish, a different order pod after pod; so each request names every node in an
order of its own (``scheduler_order``), never the one the extender saw last.

Three rounds of 400 pods that place, then three rounds of 400 that no node can take (their
filter words a reason for every node), so a p99 is the fourth slowest of a round. Each figure
is the median of the rounds with the least and greatest (``bench.calibration.spread``); a ratio
is the extender's p99 over the floor's, per round.
"""

from __future__ import annotations

import http.client
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench.calibration import spread
from bench.extender_fleet import (
    LEASES_PER_NODE_S,
    REPORTS_PER_NODE_S,
    node_name,
    pod_body,
    refused_body,
)

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = 400
"""Pods per round that place."""
ROUNDS = 3
WARMUP = 40
HEADERS = {"Content-Type": "application/json"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"benchmark server exited with {proc.returncode}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.2)
    raise RuntimeError("benchmark server did not become ready")


def _start(nodes: int, *flags: str) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_extender", "serve", str(nodes), str(port), *flags],
        cwd=ROOT,
    )
    return proc, port


def scheduler_order(names: list[str], i: int) -> list[str]:
    """The node names of request ``i`` in an order of its own, as kube-scheduler sends them:
    its parallel filter appends each feasible node when its goroutine finishes with it."""
    order = names[:]
    random.Random(i).shuffle(order)
    return order


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def _rounds(ms: list[float]) -> list[list[float]]:
    size = len(ms) // ROUNDS
    return [ms[k * size : (k + 1) * size] for k in range(ROUNDS)]


def summary(ms: list[float]) -> dict[str, Any]:
    """p50 and p99 of each round (their median, least and greatest), and the mean of all."""
    rounds = _rounds(ms)
    return {
        "p50": spread([percentile(r, 50) for r in rounds], 3),
        "p99": spread([percentile(r, 99) for r in rounds], 3),
        "mean": round(statistics.fmean(ms), 3),
    }


def over(ms: list[float], floor: list[float]) -> dict[str, Any]:
    """The extender's p99 over the floor's, round by round."""
    pairs = zip(_rounds(ms), _rounds(floor), strict=True)
    return spread([percentile(a, 99) / percentile(b, 99) for a, b in pairs], 3)


class _Client:
    """One keep-alive connection to a server, timing each call."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, verb: str, body: bytes) -> tuple[float, bytes]:
        started = time.perf_counter()
        self.conn.request("POST", f"/scheduler/{verb}", body=body, headers=HEADERS)
        resp = self.conn.getresponse()
        data = resp.read()
        elapsed = (time.perf_counter() - started) * 1000
        if resp.status != 200:
            raise RuntimeError(f"{verb} answered {resp.status}: {data[:200]!r}")
        return elapsed, data


def _placing(
    real: _Client, floor: _Client, names: list[str], requests: int, times: dict[str, list[float]]
) -> dict[str, Any]:
    placed = held = size = 0
    for i in range(WARMUP + ROUNDS * requests):
        body = orjson.dumps(pod_body(i, scheduler_order(names, i)))
        floor_ms, _ = floor.post("filter", body)
        filter_ms, data = real.post("filter", body)
        prioritize_ms, _ = real.post("prioritize", body)
        passed = bool(orjson.loads(data)["NodeNames"])
        held += passed  # every placing filter records a reservation (30 s TTL)
        if i >= WARMUP:
            times["floor"].append(floor_ms)
            times["filter"].append(filter_ms)
            times["prioritize"].append(prioritize_ms)
            placed += passed
            size += len(body) + len(data)
    return {
        "placed": placed,
        "reservations_at_end": held,
        "filter_bytes_per_call": round(size / (ROUNDS * requests)),
    }


def _refusing(
    real: _Client, floor: _Client, names: list[str], count: int, times: dict[str, list[float]]
) -> None:
    """Warm up until no node is left for the big pod (the few nodes of a large synthetic fleet
    that could take one are each held by one of the warm-up pods), then time ``count``.

    A reservation lasts 30 s, so over a long run a node comes free again now and then: the big
    pod that takes it is not timed (its own reservation holds the node again)."""
    for i in range(2 * count + WARMUP):
        body = orjson.dumps(refused_body(i, scheduler_order(names, -1 - i)))
        floor_ms, _ = floor.post("filter", body)
        refused_ms, data = real.post("filter", body)
        placed = bool(orjson.loads(data)["NodeNames"])
        if i >= WARMUP // 4 and not placed:
            times["floor_refused"].append(floor_ms)
            times["refused"].append(refused_ms)
        if len(times["refused"]) == count:
            return
    raise RuntimeError(f"only {len(times['refused'])} of {count} big pods were refused")


def measure(
    nodes: int,
    requests: int = REQUESTS,
    *,
    churn: bool = True,
    between: Callable[[], object] = lambda: None,
) -> dict[str, Any]:
    """Filter, prioritize and a refused filter at ``nodes`` nodes, each beside the floor on
    the same bytes; with ``churn``, while the agents' watch events arrive at their real rate.
    ``between`` runs before the servers start (the calibration loop)."""
    between()
    real_proc, real_port = _start(nodes, *(["--churn"] if churn else []))
    floor_proc, floor_port = _start(nodes, "--floor")
    try:
        _wait_ready(real_port, real_proc)
        _wait_ready(floor_port, floor_proc)
        names = [node_name(i) for i in range(nodes)]
        real, floor = _Client(real_port), _Client(floor_port)
        times: dict[str, list[float]] = {
            k: [] for k in ("filter", "prioritize", "floor", "refused", "floor_refused")
        }
        counts = _placing(real, floor, names, requests, times)
        _refusing(real, floor, names, ROUNDS * requests, times)
        real.conn.close()
        floor.conn.close()
    finally:
        for proc in (real_proc, floor_proc):
            proc.terminate()
            proc.wait(timeout=30)
    return {
        "nodes": nodes,
        "gpus": nodes * 8,
        "churn": {
            "reports_per_s": round(nodes * REPORTS_PER_NODE_S, 1),
            "leases_per_s": round(nodes * LEASES_PER_NODE_S, 1),
        }
        if churn
        else None,
        "rounds": ROUNDS,
        "requests_per_round": requests,
        "refused_per_round": requests,
        **counts,
        **{f"{k}_ms": summary(v) for k, v in times.items()},
        "filter_over_floor": over(times["filter"], times["floor"]),
        "refused_over_floor": over(times["refused"], times["floor_refused"]),
    }
