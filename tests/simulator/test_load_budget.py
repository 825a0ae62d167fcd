"""The load budget in the simulator: vramfit starts no cold load beyond it, and the run counts
the loads any policy starts beyond it; the evaluation over many seeds and its targets."""

from __future__ import annotations

import dataclasses

import pytest

from simulator.engine import simulate
from simulator.metrics import summarize
from simulator.seeds import SeedRow, misses, parse_seeds, rows_of, spreads, to_markdown
from tests.simulator.test_tiny_scenarios import NODE, tiny

# Three 8 GiB cold loads at once on two nodes of 1 GiB/s with a 10 s budget: two cannot share a
# node (16 s), one of them waits for the first to finish.
BURST = tiny(
    """
settings:
  loadBudget: 10s
pools:
  - name: n
    nodes: 2
"""
    + NODE.format(gpus=4, price=4)
    + "services:\n"
    + "".join(
        f"  - {{name: s{i}, model: org/m{i}, modelSize: 8Gi, gpus: 1, vramPerGpu: 10Gi, "
        "initTime: 1s, cpu: 1, memory: 1Gi, traffic: {pattern: burst, start: 0s, rate: 1}}\n"
        for i in range(3)
    ),
    duration="120s",
)


def test_vramfit_keeps_every_node_within_the_budget() -> None:
    default, vramfit = (summarize(r) for r in simulate(BURST, ("default", "vramfit"), seed=1))
    assert vramfit.budget_overruns == 0
    assert vramfit.peak_loads_per_node == 1
    assert vramfit.pods_ready == 3
    assert default.budget_overruns == 1  # the default scheduler puts two loads on one node
    assert default.peak_loads_per_node == 2


def test_without_a_budget_nothing_is_counted() -> None:
    off = dataclasses.replace(
        BURST, settings=dataclasses.replace(BURST.settings, load_budget_s=0.0)
    )
    for r in simulate(off, ("default", "vramfit"), seed=1):
        assert summarize(r).budget_overruns == 0


@pytest.mark.parametrize(
    ("text", "seeds"),
    [
        pytest.param("1-3", (1, 2, 3), id="range"),
        pytest.param("7", (7,), id="one"),
        pytest.param("1,4,7-9,4", (1, 4, 7, 8, 9), id="list-each-once"),
    ],
)
def test_parse_seeds(text: str, seeds: tuple[int, ...]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a", "3-1", "1-99999"])
def test_parse_seeds_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_seeds(text)


def row(scenario: str, policy: str, seed: int, **values: float) -> SeedRow:
    base = dict(
        failed_loads=0,
        budget_overruns=0,
        peak_loads=1,
        p50=10.0,
        p95=20.0,
        p99=30.0,
        pending=0,
        pending_fitting=0,
        gpu_hours=1.0,
    )
    return SeedRow(scenario, policy, seed, **(base | values))  # type: ignore[arg-type]


MISSES: dict[str, tuple[list[SeedRow], list[str]]] = {
    "all-met": (
        [
            row("morning-burst", "default", 1, p99=100.0),
            row("morning-burst", "vramfit", 1, p99=40.0),
            row("day", "vramfit", 1, p99=30.0),
            row("day", "vramfit-spread", 1, p99=28.0),
        ],
        [],
    ),
    "worst-seed-counts": (
        [
            row("day", "vramfit", 1),
            row("day", "vramfit", 2, failed_loads=2, budget_overruns=1, pending_fitting=1),
        ],
        [
            "day: 2 failed loads on seed 2 (target: 0 on every seed)",
            "day: 1 cold loads started beyond the load budget on seed 2 (target: 0 on every seed)",
            "day: 1 pods pending at the end that fit an empty node on seed 2 "
            "(target: 0 on every seed)",
        ],
    ),
    "burst-above-40-percent": (
        [
            row("morning-burst", "default", 1, p99=100.0),
            row("morning-burst", "vramfit", 1, p99=41.0),
        ],
        ["morning-burst: worst-seed p99 cold start 41s is above 40s, 40% of default's"],
    ),
    "more-than-10-percent-above-the-best-profile": (
        [row("day", "vramfit", 1, p99=34.0), row("day", "vramfit-spread", 1, p99=30.0)],
        [
            "day: worst-seed p99 cold start 34s is more than 10% above the best other vramfit "
            "profile's (30s)"
        ],
    ),
}


@pytest.mark.parametrize("case", MISSES)
def test_misses(case: str) -> None:
    rows, expected = MISSES[case]
    assert misses(rows) == expected


def test_rows_and_report_of_a_run() -> None:
    rows = rows_of(BURST, simulate(BURST, ("default", "vramfit"), seed=1))
    assert [(r.policy, r.budget_overruns, r.pending) for r in rows] == [
        ("default", 1, 0),
        ("vramfit", 0, 0),
    ]
    table = spreads([*rows, dataclasses.replace(rows[1], seed=2, p99=rows[1].p99 + 10)])
    p99 = table[("tiny", "vramfit")]["p99"]
    assert (p99.worst, p99.worst_seed) == (rows[1].p99 + 10, 2)
    assert "| tiny | vramfit |" in to_markdown(rows)
