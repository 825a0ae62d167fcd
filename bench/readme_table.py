"""Render bench/results/*.json as the README's benchmark tables, so the README shows the numbers
the last `make bench` measured (``python -m bench.readme_table`` rewrites the marked section)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _load(name: str) -> Any:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _extender(d: Any) -> list[str]:
    rows = [
        "**Extender** (`bench/bench_extender.py`): latency over HTTP on loopback, nodes of 8 GPUs, "
        "every node named in each request, three rounds of 400 pods (p99: the median of the "
        "rounds' p99, each round's kept in the JSON); each filter records a reservation, so "
        f"the last requests count {d['latency'][0]['reservations_at_end']:,} of "
        "them "
        f"(target: filter p99 under {d['targets']['filter_p99_ms_at_5000']} ms at 5,000 nodes).",
        "",
        "| nodes | filter p50 | filter p99 | refused p50 | refused p99 | prioritize p50 | "
        "prioritize p99 | bytes per filter |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in d["latency"]:
        rows.append(
            f"| {r['nodes']:,} | {r['filter_p50_ms']:.1f} ms | {r['filter_p99_ms']:.1f} ms | "
            f"{r['refused_p50_ms']:.1f} ms | {r['refused_p99_ms']:.1f} ms | "
            f"{r['prioritize_p50_ms']:.1f} ms | {r['prioritize_p99_ms']:.1f} ms | "
            f"{r['filter_bytes_per_call']:,} |"
        )
    rows += [
        "",
        "*refused*: a pod no node can take (8 GPUs of 79 GiB), so the filter words a reason "
        "for every node.",
    ]
    c = d.get("latency_with_churn")
    if c:
        rows += [
            "",
            f"With the agents' watch events arriving at their real rate at {c['nodes']:,} nodes "
            f"({c['reports_per_s']:g} status updates and {c['leases_per_s']:g} Lease renewals "
            f"per second, applied as the watches apply them): filter {c['filter_p50_ms']:.1f} / "
            f"{c['filter_p99_ms']:.1f} ms (p50 / p99), refused {c['refused_p50_ms']:.1f} / "
            f"{c['refused_p99_ms']:.1f} ms, prioritize {c['prioritize_p50_ms']:.1f} / "
            f"{c['prioritize_p99_ms']:.1f} ms.",
        ]
    t = d["throughput"]
    rows += [
        "",
        f"Scheduling throughput with the real kube-scheduler, {t['nodes']:,} fake GPU nodes, "
        f"{t['pods']} GPU pods, both in one run: {t['default_pods_per_s']} pods/s without the "
        f"extender, {t['extender_pods_per_s']} pods/s with it (ratio {t['ratio']:.2f}; target "
        f"{d['targets']['throughput_ratio']}).",
    ]
    return rows


def _planner(d: Any) -> list[str]:
    rows = [
        f"**Planner** (`bench/bench_planner.py`): peak scenario, the {d['cloud'].upper()} "
        f"catalog ({len(d['pool_types'])} node types), 1 CP-SAT worker; each figure the median "
        f"of {d['rounds']} rounds (least to greatest in brackets); the gap is to the best bound "
        "proven, named in the last column. Targets: proven optimal or a gap under 1% within "
        "10 s at 20, 50 and 200 services, within 30 s at 1,000; never above first-fit "
        "decreasing.",
        "",
        "| services | pods | seconds | plan $/h | first-fit-decreasing $/h | lower bound $/h | "
        "gap | bound |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in d["runs"]:
        s, g = r["seconds"], r["gap"]
        rows.append(
            f"| {r['services']:,} | {r['pods']:,} | {s['median']:.1f} "
            f"({s['min']:.1f}-{s['max']:.1f}) of {r['target_seconds']:g} | "
            f"{r['cost_per_hour']['median']:,.2f} | {r['ffd_cost_per_hour']:,.2f} | "
            f"{_money(r['lower_bound_cost_per_hour'])} | {100 * g['median']:.2f}% "
            f"({100 * g['min']:.2f}-{100 * g['max']:.2f}) | {r['bound_source']} |"
        )
    rows += ["", f"{_calibration(d)}."]
    return rows


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _calibration(d: Any) -> str:
    """The calibration figure of one benchmark's run, in words."""
    c = d.get("calibration")
    if c is None:
        return "Calibration: not measured in this run"
    s = c["seconds"]
    return (
        f"Calibration: {c['what']} took {s['median']:.2f} s ({s['min']:.2f}-{s['max']:.2f} s) "
        "on the machine and in the run that measured these figures"
    )


def _simulator(d: Any) -> list[str]:
    rows = [
        "**Simulator** (`bench/bench_simulator.py`; target: a simulated day of a 1,000-node "
        f"fleet in under {d['daySimulationTargetSeconds']:.0f} s).",
        "",
        "| scenario | policy | nodes | services | wall time | events/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in d["runs"]:
        rows.append(
            f"| {r['scenario']} | {r['policy']} | {r['nodes']:,} | {r['services']} | "
            f"{r['wall_s']:.2f} s | {r['events_per_s']:,.0f} |"
        )
    return rows


def _rss(d: Any, kind: str) -> str:
    """A peak RSS figure: the median, and the spread when the rounds are kept."""
    r = d.get("peak_rss_mb_rounds", {}).get(kind)
    if r is None:
        return f"{d['peak_rss_mb'][kind]:.1f} MB"
    return f"{r['median']:.1f} MB ({r['min']:.1f}-{r['max']:.1f})"


def _agent(d: Any) -> list[str]:
    cpu, steady, changing = d["cpu"], d["steady"], d["changing"]
    target = d.get("targets", {}).get("peak_rss_mb", 80)
    return [
        f"**Node agent** (`bench/bench_agent.py`, {d['gpus_per_node']} GPUs, "
        f"{d['poll_interval_s']:.0f} s poll; CPU and writes on the simulated backend; "
        "peak RSS the median of rounds, least to greatest in brackets).",
        "",
        "| measure | result | target |",
        "|---|---|---|",
        f"| CPU per poll per GPU | {1e6 * cpu['cpu_seconds_per_poll_per_gpu']:.0f} µs "
        f"({cpu['core_percent_at_1s_poll']:.3f}% of a core) | under 1% of a core |",
        f"| peak RSS, simulated backend / NVML backend reading 8 GPUs* | "
        f"{_rss(d, 'simulated')} / {_rss(d, 'nvml')} | under {target:g} MB |",
        f"| status writes per node per hour, steady | {steady['status_writes_per_hour']} | "
        "at most 60 |",
        f"| status writes per node per hour, changing load | "
        f"{changing['status_writes_per_hour']} | - |",
        f"| Lease renewals per hour | {steady['lease_renewals_per_hour']} | about 360 |",
        "",
        "\\* through the real `pynvml` module, the driver's library stood in "
        "(`bench/nvml_standin.py`); on a GPU node the agent also maps `libnvidia-ml.so`. "
        f"Where NVML is unavailable: {_rss(d, 'nvml_unavailable')}.",
        "",
        f"{_calibration(d)}.",
    ]


def render() -> str:
    """The marked README section for whatever results exist."""
    parts: list[list[str]] = []
    for name, fn in (
        ("extender", _extender),
        ("agent", _agent),
        ("planner", _planner),
        ("simulator", _simulator),
    ):
        data = _load(name)
        if data is not None:
            parts.append(fn(data))
    body = "\n\n".join("\n".join(p) for p in parts)
    return f"{START}\n{body}\n{END}"


def main() -> int:
    """Rewrite the README's benchmark section in place."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        sys.stderr.write(f"README.md lacks the {START} ... {END} markers\n")
        return 1
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + render() + tail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
