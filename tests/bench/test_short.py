"""Short versions of the benchmarks, for CI: the full runs are ``make bench`` (minutes of a quiet
machine). They check that the benchmark code runs against the real server stack, that a missed
target fails the benchmark, and that the README shows the figures the last run measured."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bench import readme_table
from bench.bench_extender import TARGETS, missed
from bench.calibration import Calibration, spread
from bench.extender_latency import measure, scheduler_order
from bench.extender_throughput import shipped_extender_flags
from extender.cli import parser


def test_the_readme_shows_the_last_measured_figures() -> None:
    text = (readme_table.ROOT / "README.md").read_text()
    assert readme_table.render() in text, "run python -m bench.readme_table after make bench"


def _latency(nodes: int, filter_x: float, refused_x: float, churn: bool = True) -> dict[str, Any]:
    return {
        "nodes": nodes,
        "churn": {"reports_per_s": 1.0, "leases_per_s": 1.0} if churn else None,
        "filter_over_floor": spread([filter_x] * 3),
        "refused_over_floor": spread([refused_x] * 3),
    }


def _throughput(ratios: list[float]) -> dict[str, Any]:
    return {"nodes": 5000, "pods": 2000, "ratio": spread(ratios, 3)}


MISSED = [
    pytest.param([_latency(5000, 1.9, 2.9)], [], [], id="within-every-target"),
    pytest.param([_latency(5000, 2.1, 2.0)], [], ["filter p99 2.10x"], id="filter-over-2x"),
    pytest.param([_latency(5000, 1.0, 3.2)], [], ["refused p99 3.20x"], id="refused-over-3x"),
    pytest.param([_latency(10000, 2.4, 9.0)], [], [], id="no-refused-target-at-10000"),
    pytest.param([_latency(10000, 2.6, 1.0)], [], ["filter p99 2.60x"], id="filter-over-2.5x"),
    pytest.param([_latency(5000, 9.0, 9.0, churn=False)], [], [], id="quiet-run-not-held"),
    pytest.param([], [_throughput([1.2, 0.99, 1.3])], ["throughput ratio 0.99"], id="one-low-run"),
    pytest.param([], [_throughput([1.0, 1.0, 1.0])], [], id="ratio-of-one-holds"),
]


@pytest.mark.parametrize(("latency", "throughput", "expected"), MISSED)
def test_a_missed_target_is_named(
    latency: list[dict[str, Any]], throughput: list[dict[str, Any]], expected: list[str]
) -> None:
    got = missed({"latency": latency, "throughput": throughput, "targets": TARGETS})
    assert len(got) == len(expected)
    for line, start in zip(got, expected, strict=True):
        assert line.startswith(start), line


def test_each_request_names_the_nodes_in_an_order_of_its_own() -> None:
    names = [f"n{i}" for i in range(50)]
    orders = [scheduler_order(names, i) for i in range(3)]
    assert all(sorted(o) == sorted(names) for o in orders)
    assert len({tuple(o) for o in orders}) == 3
    assert scheduler_order(names, 1) == orders[1]  # the same request, the same order


def test_the_calibration_loop_times_something() -> None:
    c = Calibration()
    c.take()
    figure = c.figure()
    assert figure["seconds"]["median"] > 0 and "additions" in figure["what"]


def test_a_short_latency_run_against_the_real_server_stack() -> None:
    """The extender and the floor as child processes (gunicorn, Flask), 100 nodes with the
    agents' watch events, a few requests: every figure is there and the extender places."""
    row = measure(100, requests=8)
    assert row["placed"] == 3 * 8 and row["churn"] is not None
    for key in ("floor_ms", "filter_ms", "refused_ms", "prioritize_ms", "floor_refused_ms"):
        figure = row[key]
        assert 0 < figure["p50"]["median"] <= figure["p99"]["max"], key
    assert row["filter_over_floor"]["median"] > 0
    result = {"latency": [copy.deepcopy(row)], "throughput": [], "targets": TARGETS}
    assert isinstance(missed(result), list)


def test_the_throughput_bench_runs_the_extender_as_shipped() -> None:
    # The flags come from deploy/scheduler-deployment.yaml, and the extender's own parser
    # takes every one of them.
    flags = shipped_extender_flags()
    assert "--nominate-ahead" in flags
    assert not any(f.startswith(("--listen", "--metrics-listen")) for f in flags)
    assert parser().parse_args(flags).nominate_ahead
