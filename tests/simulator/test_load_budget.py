"""The load budget in the simulator: vramfit starts no cold load beyond it, and the run counts
the loads any policy starts beyond it; the evaluation over many seeds and its targets."""

from __future__ import annotations

import dataclasses

import pytest

from simulator.engine import simulate
from simulator.metrics import PodRecord, RunResult, summarize
from simulator.seeds import (
    SeedRow,
    misses,
    parse_seeds,
    pending_with_room,
    pools_fitting,
    rows_of,
    spreads,
    to_markdown,
)
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
            row(
                "day",
                "vramfit",
                2,
                failed_loads=2,
                budget_overruns=1,
                pending_fitting=1,
                pending_room=1,
            ),
        ],
        [
            "day: 2 failed loads on seed 2 (target: 0 on every seed)",
            "day: 1 cold loads started beyond the load budget on seed 2 (target: 0 on every seed)",
            "day: 1 pods pending at the end that the pool had room for on seed 2 "
            "(target: 0 on every seed)",
        ],
    ),
    "pending-for-capacity-held-by-equal-or-higher-priority-is-no-miss": (
        [row("day", "vramfit", 1, pending=3, pending_fitting=3, pending_room=0)],
        [],
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


# Two nodes of 4 GPUs; "low" and "high" ask for 2 GPUs at priorities 1 and 10, "wide" for 4 at
# priority 10, "huge" for more memory than any GPU has.
PRIORITIES = tiny(
    """
pools:
  - name: n
    nodes: 2
"""
    + NODE.format(gpus=4, price=4)
    + "services:\n"
    + "".join(
        f"  - {{name: {name}, model: org/{name}, modelSize: 8Gi, gpus: {gpus}, "
        f"vramPerGpu: {vram}Gi, priority: {prio}, initTime: 1s, cpu: 1, memory: 1Gi, "
        "traffic: {pattern: burst, start: 0s, rate: 1}}\n"
        for name, gpus, vram, prio in (
            ("low", 2, 10, 1),
            ("high", 2, 10, 10),
            ("wide", 4, 10, 10),
            ("huge", 1, 40, 10),
        )
    ),
)
END = 60.0
GPUS = {"low": 2, "high": 2, "wide": 4, "huge": 1}


def record(service: str, node: str | None = None, end_at: float = END) -> PodRecord:
    """A pod of ``service``: bound to ``node`` (pending without one), gone at ``end_at``."""
    return PodRecord(
        uid=f"{service}-{node}-{end_at}",
        service=service,
        node=node,
        gpus=GPUS[service],
        price_per_gpu_hour=1.0,
        created_at=0.0,
        bound_at=None if node is None else 1.0,
        ready_at=None,
        end_at=end_at,
        waited=node is None,
        restarts=0,
        last_reason="",
    )


def run_of(*pods: PodRecord) -> RunResult:
    return RunResult("vramfit", "tiny", 1, END, pods, (), 0, 0, 0, 0, 0, (), (), 8, 0.0, 0, 0.0)


FULL_OF_HIGH = [record("high", n) for n in ("n-0", "n-0", "n-1", "n-1")]

# name: pods at the end, how many pending ones the pool had room for
ROOM: dict[str, tuple[list[PodRecord], int]] = {
    "equal-priority-holds-every-gpu-waits-for-capacity": ([*FULL_OF_HIGH, record("high")], 0),
    "higher-priority-holds-every-gpu": ([*FULL_OF_HIGH, record("low")], 0),
    "lower-priority-gpus-count-as-free": (
        [*(record("low", n) for n in ("n-0", "n-0", "n-1", "n-1")), record("high")],
        1,
    ),
    "free-gpus-spread-over-nodes-count-together": (
        [record("high", "n-0"), record("high", "n-1"), record("wide")],
        1,
    ),
    "one-gpu-short-has-no-room": (
        [*FULL_OF_HIGH[:3], record("low", "n-1"), record("wide")],
        0,
    ),
    "pods-gone-before-the-end-hold-nothing": (
        [*(record("high", n, end_at=30.0) for n in ("n-0", "n-0", "n-1", "n-1")), record("high")],
        1,
    ),
    "a-pod-no-node-fits-has-no-room": ([record("huge")], 0),
    "each-pending-pod-counted-on-its-own": ([record("high"), record("high")], 2),
}


@pytest.mark.parametrize("case", ROOM)
def test_pending_with_room(case: str) -> None:
    pods, expected = ROOM[case]
    pools = pools_fitting(PRIORITIES)
    assert pools["huge"] == frozenset() and pools["wide"] == frozenset({"n"})
    assert pending_with_room(PRIORITIES, run_of(*pods), pools) == expected
