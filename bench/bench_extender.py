"""Benchmark of vramfit's scheduler extender, held to targets measured as ratios in one run.

1. Latency against the floor (``bench.extender_latency``): filter, prioritize and a filter no
   node passes, over HTTP on loopback against the real server stack holding 1,000, 5,000 and
   10,000 nodes of 8 GPUs while the agents' watch events arrive at their real rate, each
   request beside the floor (the same stack, a handler that only decodes the same bytes).
   Once more at 5,000 nodes without the watch events. Targets: filter p99 at most 2x the
   floor's at 5,000 nodes and 2.5x at 10,000; a refused pod's at most 3x at 5,000.
2. Throughput with the real kube-scheduler (``bench.extender_throughput``): 1,000 nodes and 500
   pods, 5,000 nodes and 2,000 pods, three runs each of the stock scheduler and the shipped
   ``vramfit`` profile. Target: a ratio of at least 1.0 on every run.

Every figure is the median of rounds with the least and greatest, beside the calibration loop
(``bench.calibration``) timed in the same run. Writes ``bench/results/extender.json``, prints a
table, and fails when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.calibration import Calibration, line
from bench.extender_fleet import serve, synthetic_app
from bench.extender_latency import REQUESTS, measure
from bench.extender_throughput import run_throughput

RESULTS = Path(__file__).parent / "results" / "extender.json"
SIZES = (1_000, 5_000, 10_000)
QUIET_SIZE = 5_000
"""The size measured once more without the agents' watch events."""
THROUGHPUT = ((1_000, 500), (5_000, 2_000))
THROUGHPUT_RUNS = 3
TARGETS: dict[str, Any] = {
    "filter_over_floor": {"5000": 2.0, "10000": 2.5},
    "refused_over_floor": {"5000": 3.0},
    "throughput_ratio": 1.0,
}

__all__ = ["main", "synthetic_app"]


def missed(result: dict[str, Any]) -> list[str]:
    """Each target the run missed, in words (the latency targets hold under churn)."""
    out = []
    for row in result["latency"]:
        if row["churn"] is None:
            continue
        for key, what in (("filter_over_floor", "filter"), ("refused_over_floor", "refused")):
            target = TARGETS[key].get(str(row["nodes"]))
            got = row[key]["median"]
            if target is not None and got > target:
                out.append(
                    f"{what} p99 {got:.2f}x the floor's at {row['nodes']:,} nodes "
                    f"(target at most {target}x)"
                )
    for t in result["throughput"]:
        low = min(t["ratio"]["rounds"])
        if low < TARGETS["throughput_ratio"]:
            out.append(
                f"throughput ratio {low:.2f} on a run at {t['nodes']:,} nodes / {t['pods']:,} "
                f"pods (target at least {TARGETS['throughput_ratio']} on every run)"
            )
    return out


def _ms(figure: dict[str, Any]) -> str:
    p = figure["p99"]
    return f"{figure['p50']['median']:.2f} / {p['median']:.2f} ({p['min']:.2f}-{p['max']:.2f})"


def table(result: dict[str, Any]) -> Table:
    t = Table(title="vramfit extender: p50 / p99 in ms (p99 least-greatest of 3 rounds)")
    for col in ("nodes", "churn", "floor", "filter", "x floor", "refused", "x floor", "prior."):
        t.add_column(col, justify="right")
    for r in result["latency"]:
        t.add_row(
            f"{r['nodes']:,}",
            "yes" if r["churn"] else "no",
            _ms(r["floor_ms"]),
            _ms(r["filter_ms"]),
            f"{r['filter_over_floor']['median']:.2f}",
            _ms(r["refused_ms"]),
            f"{r['refused_over_floor']['median']:.2f}",
            _ms(r["prioritize_ms"]),
        )
    t.caption = "\n".join(
        f"throughput {x['nodes']:,} nodes / {x['pods']:,} pods: stock "
        f"{x['default_pods_per_s']['median']:.1f} pods/s, vramfit "
        f"{x['extender_pods_per_s']['median']:.1f} pods/s, ratio {x['ratio']['median']:.2f} "
        f"({x['ratio']['min']:.2f}-{x['ratio']['max']:.2f}); burst to last bound "
        f"{x['default_burst_s']['median']:.1f} s / {x['extender_burst_s']['median']:.1f} s"
        for x in result["throughput"]
    )
    return t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_extender")
    sub = parser.add_subparsers(dest="command")
    srv = sub.add_parser("serve", help="(internal) serve a synthetic fleet, or the floor")
    srv.add_argument("nodes", type=int)
    srv.add_argument("port", type=int)
    srv.add_argument("--churn", action="store_true", help="apply agents' watch events too")
    srv.add_argument("--floor", action="store_true", help="serve the floor instead")
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-quiet", action="store_true", help="no run without churn")
    parser.add_argument("--throughput-runs", type=int, default=THROUGHPUT_RUNS)
    args = parser.parse_args([] if argv is None else argv)
    if args.command == "serve":
        serve(args.nodes, args.port, churn=args.churn, floor=args.floor)
        return 0
    calibration = Calibration()
    sizes = [int(n) for n in args.sizes.split(",")]
    latency = [measure(n, args.requests, between=calibration.take) for n in sizes]
    if not args.skip_quiet and QUIET_SIZE in sizes:
        latency.append(measure(QUIET_SIZE, args.requests, churn=False, between=calibration.take))
    throughput = []
    if not args.skip_throughput:
        for nodes, pods in THROUGHPUT:
            calibration.take()
            throughput.append(run_throughput(nodes=nodes, pods=pods, runs=args.throughput_runs))
    calibration.take()
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "calibration": calibration.figure(),
        "latency": latency,
        "throughput": throughput,
        "targets": TARGETS,
    }
    result["missed"] = missed(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=RESULTS.parent, delete=False) as f:
        json.dump(result, f, indent=2)
    os.replace(f.name, RESULTS)
    console = Console(width=max(120, Console().width))
    console.print(table(result))
    console.print(line(result["calibration"]))
    for miss in result["missed"]:
        console.print(f"[red]target missed: {miss}[/red]")
    return 1 if result["missed"] else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
