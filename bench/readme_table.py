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


def _p99(f: dict[str, Any]) -> str:
    """A latency figure: p50 / p99, the p99's least and greatest round in brackets."""
    p = f["p99"]
    return f"{f['p50']['median']:.1f} / {p['median']:.1f} ({p['min']:.1f}-{p['max']:.1f}) ms"


def _x(f: dict[str, Any], target: float | None) -> str:
    got = f"{f['median']:.2f}x ({f['min']:.2f}-{f['max']:.2f})"
    return got if target is None else f"{got} of {target:g}x"


def _extender(d: Any) -> list[str]:
    targets = d["targets"]
    first = d["latency"][0]
    rows = [
        "**Extender** (`bench/bench_extender.py`): latency over HTTP on loopback beside the "
        "*floor* (the same server stack around a handler that only decodes the request and "
        "answers one node), each request sent to both in turn; nodes of 8 GPUs, every node "
        f"named in each request; {first['rounds']} rounds of {first['requests_per_round']} "
        f"pods that place and {first['refused_per_round']} that no node can "
        "take (*refused*: the filter words a reason for every node); each figure the median "
        "of the rounds, least to greatest in brackets. Targets, with the agents' watch events "
        "arriving at their real rate: filter p99 at most "
        f"{targets['filter_over_floor']['5000']:g}x the floor's at 5,000 nodes and "
        f"{targets['filter_over_floor']['10000']:g}x at 10,000; refused at most "
        f"{targets['refused_over_floor']['5000']:g}x at 5,000.",
        "",
        "| nodes | watch events | floor p50 / p99 | filter p50 / p99 | filter / floor (p99) | "
        "refused p50 / p99 | refused / floor (p99) | prioritize p50 / p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in d["latency"]:
        n, c = str(r["nodes"]), r["churn"]
        events = f"{c['reports_per_s']:g} reports + {c['leases_per_s']:g} Leases/s" if c else "-"
        rows.append(
            f"| {r['nodes']:,} | {events} | {_p99(r['floor_ms'])} | {_p99(r['filter_ms'])} | "
            f"{_x(r['filter_over_floor'], targets['filter_over_floor'].get(n) if c else None)} "
            f"| {_p99(r['refused_ms'])} | "
            f"{_x(r['refused_over_floor'], targets['refused_over_floor'].get(n) if c else None)} "
            f"| {_p99(r['prioritize_ms'])} |"
        )
    if d["throughput"]:
        rows += [
            "",
            "Scheduling throughput with the real kube-scheduler on the local control plane, fake "
            "GPU nodes (8x H100 80 GB), the scheduler started, then a burst of single-GPU pods "
            "created by eight clients at once: pods per second from the first pod bound to the "
            "last, and the burst's time from the first pod created to the last bound; the stock "
            "scheduler and the `vramfit` profile (with the shipped extender flags, nominating "
            "ahead) in each run, their ratio taken within the run "
            f"(target at least {targets['throughput_ratio']:g} on every run).",
            "",
            "| nodes | pods | runs | stock pods/s | vramfit pods/s | ratio | burst, stock | "
            "burst, vramfit |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for t in d["throughput"]:
            rows.append(
                f"| {t['nodes']:,} | {t['pods']:,} | {t['runs']} | "
                f"{_spread(t['default_pods_per_s'], 1)} | {_spread(t['extender_pods_per_s'], 1)} "
                f"| {_spread(t['ratio'], 2)} | {_spread(t['default_burst_s'], 1)} s | "
                f"{_spread(t['extender_burst_s'], 1)} s |"
            )
    rows += ["", f"{_calibration(d)}."]
    return rows


def _spread(f: dict[str, Any], digits: int) -> str:
    return f"{f['median']:.{digits}f} ({f['min']:.{digits}f}-{f['max']:.{digits}f})"


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
    if "calibration" in d:
        rows += ["", f"{_calibration(d)}."]
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
