"""Benchmark of vramfit's scheduler extender.

1. Latency: filter and prioritize over HTTP on loopback against the real server stack
   (gunicorn gthread, one worker, the Flask app, the fleet arrays) holding 1,000, 5,000 and
   10,000 nodes of 8 GPUs, fed through the same state calls the watches use. The client sends
   every node name, as kube-scheduler does with ``percentageOfNodesToScore: 100``, in three
   rounds of 400 pods; p99 is the median of the rounds' p99. Target: p99 under 5 ms at 5,000
   nodes. Then a pod no node can take, whose filter words a reason for
   every node (``FailedNodes``), as for the pods a burst leaves over. Once more at 5,000 nodes
   while the agents' watch events arrive at their real rate (``Churn``).
2. Throughput: the real kube-scheduler on the local control plane, 1,000 fake GPU nodes and
   500 GPU pods, scheduled once by the default scheduler and once by the ``vramfit`` profile
   through the extender, in one run. Target: at least half the throughput without it.

Writes ``bench/results/extender.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from flask import Flask
from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.table import Table

from bench.extender_throughput import run_throughput
from extender.app import create_app
from extender.bind import Binder
from extender.config import Settings
from extender.kubeapi import KubeError
from extender.metrics import ExtenderMetrics
from extender.objects import read_lease, read_leases, read_report, read_reports
from extender.server import ExtenderServer
from extender.state import LEASES, PODS, REPORTS, ClusterState
from placement.model import GIB, CachedModel, GpuState, NodeState
from placement.nodegpustate import LEASE_PREFIX, encode_status, format_time

RESULTS = Path(__file__).parent / "results" / "extender.json"
SIZES = (1_000, 5_000, 10_000)
REQUESTS = 400
TARGET_NODES = 5_000
TARGET_FILTER_P99_MS = 5.0
TARGET_THROUGHPUT_RATIO = 0.5
ROUNDS = 3
CHURN_NODES = 5_000
WARMUP = 40
MODELS = ("meta-llama/Llama-3.1-70B-Instruct", "meta-llama/Llama-3.1-8B-Instruct")


# ----- a synthetic fleet, fed as the watches feed it ----------------------------------------


def node_name(i: int) -> str:
    """The name of the synthetic fleet's node ``i``: every fourth is an A100 node."""
    return f"{'h100' if i % 4 != 3 else 'a100'}-{i:05d}"


def synthetic_node(i: int, rng: random.Random, now: float) -> NodeState:
    """One of a mixed fleet: 3/4 H100 80 GB (NVLink all), 1/4 A100 40 GB (NVLink pairs)."""
    h100 = i % 4 != 3
    name = node_name(i)
    gib = 80 if h100 else 40
    uuids = [f"GPU-{name}-{g}" for g in range(8)]
    groups = [list(range(8))] if h100 else [[0, 1], [2, 3], [4, 5], [6, 7]]
    peers = {g: frozenset(uuids[p] for p in grp if p != g) for grp in groups for g in grp}
    gpus = []
    for g in range(8):
        held = rng.random() < 0.3
        free = 0 if held else int(gib * GIB * rng.choice((1.0, 1.0, 0.95, 0.5)))
        gpus.append(
            GpuState(
                uuid=uuids[g],
                index=g,
                product="NVIDIA-H100-80GB-HBM3" if h100 else "NVIDIA-A100-SXM4-40GB",
                total_bytes=gib * GIB,
                free_bytes=free,
                used_bytes=gib * GIB - free,
                healthy=rng.random() > 0.01,
                nvlink_peers=peers[g],
                holder_pod_uid=f"running-{name}-{g}" if held else None,
            )
        )
    cached = tuple(CachedModel(m, 140 * GIB) for m in MODELS if rng.random() < 0.1)
    return NodeState(
        name=name, gpus=tuple(gpus), observed_at=now, lease_renewed_at=None, cached_models=cached
    )


def synthetic_state(nodes: int, now: float, seed: int = 7) -> tuple[ClusterState, list[str]]:
    rng = random.Random(seed)
    fleet = [synthetic_node(i, rng, now) for i in range(nodes)]
    state = ClusterState(assumed_ttl_s=30.0)
    state.replace_leases(
        read_leases(
            {
                "metadata": {"name": f"{LEASE_PREFIX}{n.name}"},
                "spec": {"renewTime": format_time(now), "leaseDurationSeconds": 3600},
            }
            for n in fleet
        )
    )
    state.replace_reports(
        read_reports(
            {"metadata": {"name": n.name}, "status": dict(encode_status(n))} for n in fleet
        )
    )
    state.replace_pods([], listed_at=now)
    for resource in (REPORTS, LEASES, PODS):
        state.mark_synced(resource)
    return state, [n.name for n in fleet]


class _NoBindAPI:
    """The latency benchmark never binds; a bind would fail loudly, not pretend."""

    def _refuse(self, *_args: object) -> Any:
        raise KubeError("benchmark", 0, "no API server in the latency benchmark")

    get_pod = patch_pod = bind_pod = _refuse


REPORTS_PER_NODE_S = 1 / 60
"""Status writes per node per second of an agent at steady state (one per maximum age)."""
LEASES_PER_NODE_S = 1 / 10
"""Lease renewals per node per second (every 10 s)."""


class Churn:
    """The watch events a fleet of agents makes, at their real rate, applied as the extender's
    watches apply them: decoded from JSON, read into reports and Leases, then ``apply_report`` /
    ``apply_lease`` under the state's lock, beside the requests being measured."""

    def __init__(self, state: ClusterState, nodes: int, seed: int = 11) -> None:
        self.state = state
        self.nodes = nodes
        rng = random.Random(seed)
        now = time.time()
        # New reports of random nodes (their GPUs and holders change); stamped fresh on use.
        self.reports = [
            orjson.dumps({"metadata": {"name": n.name}, "status": dict(encode_status(n))})
            for n in (synthetic_node(rng.randrange(nodes), rng, now) for _ in range(500))
        ]
        self.names = [node_name(i) for i in range(nodes)]
        self.applied = {"reports": 0, "leases": 0}

    def run(self, stop: threading.Event) -> None:
        started = time.monotonic()
        reports_per_s = self.nodes * REPORTS_PER_NODE_S
        leases_per_s = self.nodes * LEASES_PER_NODE_S
        while not stop.wait(0.01):
            elapsed = time.monotonic() - started
            while self.applied["reports"] < elapsed * reports_per_s:
                raw = orjson.loads(self.reports[self.applied["reports"] % len(self.reports)])
                raw["status"]["observedAt"] = format_time(time.time())
                report = read_report(raw)
                assert report is not None
                self.state.apply_report("MODIFIED", report)
                self.applied["reports"] += 1
            while self.applied["leases"] < elapsed * leases_per_s:
                name = self.names[self.applied["leases"] % self.nodes]
                event = orjson.dumps(
                    {
                        "metadata": {"name": f"{LEASE_PREFIX}{name}"},
                        "spec": {
                            "renewTime": format_time(time.time()),
                            "leaseDurationSeconds": 3600,
                        },
                    }
                )
                lease = read_lease(orjson.loads(event))
                assert lease is not None
                self.state.apply_lease("MODIFIED", lease)
                self.applied["leases"] += 1


def synthetic_app(nodes: int, *, churn: bool = False) -> Callable[[], Flask]:
    def factory() -> Flask:
        settings = Settings()
        state, _ = synthetic_state(nodes, time.time())
        metrics = ExtenderMetrics(CollectorRegistry())
        if churn:
            stop = threading.Event()  # the worker's daemon thread ends with the process
            threading.Thread(target=Churn(state, nodes).run, args=(stop,), daemon=True).start()
        return create_app(settings, state, Binder(state, _NoBindAPI(), settings), metrics)

    return factory


def serve(nodes: int, port: int, *, churn: bool = False) -> None:
    """Run the real server stack over a synthetic fleet (a child process of the benchmark)."""
    settings = Settings(port=port, threads=4, log_level="warning")
    ExtenderServer(settings, synthetic_app(nodes, churn=churn)).run()


# ----- the latency client ------------------------------------------------------------------


def pod_body(i: int, names: list[str]) -> dict[str, Any]:
    shapes = (
        (2, "70Gi", "required", MODELS[0]),
        (1, "18Gi", "preferred", MODELS[1]),
        (4, "35Gi", "preferred", ""),
    )
    gpus, vram, nvlink, model = shapes[i % len(shapes)]
    ann = {"vramfit.io/vram-per-gpu": vram, "vramfit.io/nvlink": nvlink}
    if model:
        ann["vramfit.io/model"] = model
    pod = {
        "metadata": {
            "name": f"bench-{i}",
            "namespace": "bench",
            "uid": f"bench-uid-{i:08d}",
            "resourceVersion": "1",
            "annotations": ann,
        },
        "spec": {
            "schedulerName": "vramfit",
            "containers": [
                {
                    "name": "server",
                    "image": "kserve/huggingfaceserver:v0.15.0-gpu",
                    "resources": {
                        "limits": {"nvidia.com/gpu": str(gpus)},
                        "requests": {"nvidia.com/gpu": str(gpus)},
                    },
                }
            ],
        },
        "status": {"phase": "Pending"},
    }
    return {"Pod": pod, "Nodes": None, "NodeNames": names}


def refused_body(i: int, names: list[str]) -> dict[str, Any]:
    """A pod no node of the synthetic fleet can take (8 GPUs of 79 GiB each, free now): the
    filter words a reason for every node, as it does for the pods a burst leaves over."""
    body = pod_body(i, names)
    pod = body["Pod"]
    pod["metadata"]["uid"] = f"refused-uid-{i:08d}"
    pod["metadata"]["annotations"]["vramfit.io/vram-per-gpu"] = "79Gi"
    pod["spec"]["containers"][0]["resources"] = {
        "limits": {"nvidia.com/gpu": "8"},
        "requests": {"nvidia.com/gpu": "8"},
    }
    return body


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"benchmark server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("benchmark server did not become ready")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary(name: str, ms: list[float]) -> dict[str, Any]:
    """p50 and mean over every sample; p99 as the median of the p99 of each of ``ROUNDS``
    consecutive rounds (each round's p99 is kept too), so a few seconds of a noisy neighbour on
    a shared machine move one round, not the figure."""
    size = len(ms) // ROUNDS
    rounds = [percentile(ms[k * size : (k + 1) * size], 99) for k in range(ROUNDS)]
    return {
        f"{name}_p50_ms": round(percentile(ms, 50), 3),
        f"{name}_p99_ms": round(statistics.median(rounds), 3),
        f"{name}_mean_ms": round(statistics.fmean(ms), 3),
        f"{name}_p99_rounds_ms": [round(r, 3) for r in rounds],
    }


def measure_latency(nodes: int, requests: int = REQUESTS, *, churn: bool = False) -> dict[str, Any]:
    """p50/p99 of filter and prioritize at ``nodes`` nodes over HTTP on loopback; with
    ``churn``, while the agents' watch events arrive at their real rate."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_extender", "serve", str(nodes), str(port)]
        + (["--churn"] if churn else []),
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        _wait_ready(port, proc)
        names = [node_name(i) for i in range(nodes)]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Content-Type": "application/json"}
        times: dict[str, list[float]] = {"filter": [], "prioritize": []}
        sizes: dict[str, list[int]] = {"filter": [], "prioritize": []}
        placed = 0
        held = 0  # reservations the server holds: every placing filter records one (30 s TTL)
        for i in range(WARMUP + ROUNDS * requests):
            body = orjson.dumps(pod_body(i, names))
            for verb in ("filter", "prioritize"):
                started = time.perf_counter()
                conn.request("POST", f"/scheduler/{verb}", body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                elapsed = time.perf_counter() - started
                if resp.status != 200:
                    raise RuntimeError(f"{verb} answered {resp.status}: {data[:200]!r}")
                if i >= WARMUP:
                    times[verb].append(elapsed * 1000)
                    sizes[verb].append(len(body) + len(data))
                if verb == "filter" and orjson.loads(data)["NodeNames"]:
                    held += 1
                    placed += i >= WARMUP
        # Warm up until no node is left for the big pod: the few nodes of a large synthetic
        # fleet that could take one are each held by one of the warm-up pods.
        refused: list[float] = []
        for i in range(WARMUP + ROUNDS * requests // 4):
            body = orjson.dumps(refused_body(i, names))
            started = time.perf_counter()
            conn.request("POST", "/scheduler/filter", body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            elapsed = time.perf_counter() - started
            if resp.status != 200:
                raise RuntimeError(f"filter answered {resp.status}: {data[:200]!r}")
            placed_big = bool(orjson.loads(data)["NodeNames"])
            if refused and placed_big:
                raise RuntimeError(f"the refused pod was placed: {data[:200]!r}")
            if i >= WARMUP // 4 and not placed_big:
                refused.append(elapsed * 1000)
            if len(refused) == ROUNDS * (requests // 4):
                break
        conn.close()
        return {
            "nodes": nodes,
            "gpus": nodes * 8,
            "requests": requests,
            "placed": placed,
            "reservations_at_end": held,
            "rounds": ROUNDS,
            **summary("filter", times["filter"]),
            **summary("prioritize", times["prioritize"]),
            "filter_bytes_per_call": round(statistics.fmean(sizes["filter"])),
            "refused_requests": len(refused),
            **summary("refused", refused),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def table(latency: list[dict[str, Any]], throughput: dict[str, Any] | None) -> Table:
    t = Table(title="vramfit extender")
    columns = (
        "nodes",
        "filter p50",
        "filter p99",
        "refused p50",
        "refused p99",
        "prioritize p50",
        "prioritize p99",
        "KB/call",
    )
    for col in columns:
        t.add_column(col, justify="right")
    for r in latency:
        t.add_row(
            f"{r['nodes']:,}",
            f"{r['filter_p50_ms']:.2f} ms",
            f"{r['filter_p99_ms']:.2f} ms",
            f"{r['refused_p50_ms']:.2f} ms",
            f"{r['refused_p99_ms']:.2f} ms",
            f"{r['prioritize_p50_ms']:.2f} ms",
            f"{r['prioritize_p99_ms']:.2f} ms",
            f"{r['filter_bytes_per_call'] / 1024:.0f}",
        )
    if throughput:
        t.caption = (
            f"throughput, {throughput['nodes']:,} nodes, {throughput['pods']} GPU pods: "
            f"default scheduler {throughput['default_pods_per_s']:.1f} pods/s, with the "
            f"extender {throughput['extender_pods_per_s']:.1f} pods/s "
            f"(ratio {throughput['ratio']:.2f})"
        )
    return t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_extender")
    sub = parser.add_subparsers(dest="command")
    srv = sub.add_parser("serve", help="(internal) serve a synthetic fleet")
    srv.add_argument("nodes", type=int)
    srv.add_argument("port", type=int)
    srv.add_argument("--churn", action="store_true", help="apply agents' watch events too")
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-churn", action="store_true")
    args = parser.parse_args([] if argv is None else argv)
    if args.command == "serve":
        serve(args.nodes, args.port, churn=args.churn)
        return 0
    latency = [measure_latency(int(n), args.requests) for n in args.sizes.split(",")]
    churn = None
    if not args.skip_churn:
        churn = measure_latency(CHURN_NODES, args.requests, churn=True)
        churn["reports_per_s"] = round(CHURN_NODES * REPORTS_PER_NODE_S, 1)
        churn["leases_per_s"] = round(CHURN_NODES * LEASES_PER_NODE_S, 1)
    throughput = None if args.skip_throughput else run_throughput(nodes=1_000, pods=500)
    result = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "latency": latency,
        "latency_with_churn": churn,
        "throughput": throughput,
        "targets": {
            "filter_p99_ms_at_5000": TARGET_FILTER_P99_MS,
            "throughput_ratio": TARGET_THROUGHPUT_RATIO,
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=RESULTS.parent, delete=False) as f:
        json.dump(result, f, indent=2)
    os.replace(f.name, RESULTS)
    console = Console(width=max(120, Console().width))
    console.print(table(latency, throughput))
    missed = [
        f"filter p99 {r['filter_p99_ms']:.2f} ms at {r['nodes']:,} nodes (target under 5 ms)"
        for r in latency
        if r["nodes"] == TARGET_NODES and r["filter_p99_ms"] >= TARGET_FILTER_P99_MS
    ]
    if throughput is not None and throughput["ratio"] < TARGET_THROUGHPUT_RATIO:
        missed.append(f"throughput ratio {throughput['ratio']:.2f} (target at least 0.5)")
    for miss in missed:
        console.print(f"[red]target missed: {miss}[/red]")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
