"""Benchmark of the burst simulator: simulated events per second and wall time per run.

Runs the built-in morning burst under every policy, and a simulated day of the built-in
1,000-node, 200-service fleet under every policy (target: under a minute per policy on one
core). For the vramfit policies it also reports how many nodes each decision evaluated against
the nodes that passed kube-scheduler's filters, which is what the node-class pruning saves.
Beside them, the calibration loop (``bench.calibration``) timed before and after each scenario
in the same run. Writes ``bench/results/simulator.json`` and prints a table.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from bench.calibration import Calibration, line
from simulator.engine import POLICIES, Engine, compile_traffic
from simulator.metrics import summarize
from simulator.scenario_files import builtin_scenario

RESULTS = Path(__file__).parent / "results" / "simulator.json"
DAY_TARGET_S = 60.0


@dataclass(frozen=True, slots=True)
class BenchRow:
    """One policy's run of one scenario."""

    scenario: str
    policy: str
    nodes: int
    services: int
    simulated_s: float
    traffic_compile_s: float
    wall_s: float
    events: int
    events_per_s: float
    pods: int
    loads: int
    decisions: int
    nodes_per_decision: float | None
    failed_loads: int
    cold_start_p95_s: float | None


def _measure(name: str) -> list[BenchRow]:
    scenario = builtin_scenario(name)
    started = time.perf_counter()
    plans = compile_traffic(scenario, scenario.seed)
    compile_s = time.perf_counter() - started
    nodes = sum(p.nodes for p in scenario.pools)
    rows: list[BenchRow] = []
    for policy in POLICIES:
        run = Engine(scenario, policy, seed=scenario.seed, plans=plans).run()
        s = summarize(run)
        rows.append(
            BenchRow(
                scenario=name,
                policy=policy,
                nodes=nodes,
                services=len(scenario.services),
                simulated_s=scenario.duration_s,
                traffic_compile_s=compile_s,
                wall_s=run.wall_s,
                events=run.events,
                events_per_s=s.events_per_s,
                pods=s.pods_created,
                loads=s.loads_started,
                decisions=run.decisions,
                nodes_per_decision=run.candidates_evaluated / run.decisions
                if run.decisions
                else None,
                failed_loads=s.failed_loads,
                cold_start_p95_s=s.cold_start_p95_s,
            )
        )
    return rows


def main() -> int:
    """Run the benchmark, write the JSON results, print the table; 1 if the target is missed."""
    calibration = Calibration()
    rows = []
    for name in ("morning-burst", "fleet-day"):
        calibration.take()
        rows += _measure(name)
    calibration.take()
    figure = calibration.figure()
    slowest = max(r.wall_s for r in rows if r.scenario == "fleet-day")
    result = {
        "machine": {"python": platform.python_version(), "processor": platform.processor()},
        "daySimulationTargetSeconds": DAY_TARGET_S,
        "daySimulationSlowestSeconds": slowest,
        "targetMet": slowest < DAY_TARGET_S,
        "runs": [asdict(r) for r in rows],
        "calibration": figure,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title="burst simulator: wall time per policy run", box=box.SIMPLE_HEAD)
    for column in (
        "scenario",
        "policy",
        "nodes",
        "simulated",
        "wall s",
        "events",
        "events/s",
        "pods",
        "nodes per decision",
    ):
        table.add_column(
            column,
            justify="left" if column in ("scenario", "policy") else "right",
            no_wrap=True,
        )
    for r in rows:
        table.add_row(
            r.scenario,
            r.policy,
            str(r.nodes),
            f"{r.simulated_s / 3600:.1f} h",
            f"{r.wall_s:.2f}",
            f"{r.events:,}",
            f"{r.events_per_s:,.0f}",
            str(r.pods),
            "-" if r.nodes_per_decision is None else f"{r.nodes_per_decision:.1f} of {r.nodes}",
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=130)
    console.print(table)
    console.print(
        f"1,000-node day: slowest policy {slowest:.1f} s (target {DAY_TARGET_S:.0f} s): "
        + ("met" if slowest < DAY_TARGET_S else "MISSED")
    )
    console.print(line(figure))
    console.print(f"results: {RESULTS}")
    return 0 if slowest < DAY_TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
