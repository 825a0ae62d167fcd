"""Whole runs: deterministic for a seed, and the failure mode vramfit exists for, reproduced."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from simulator.engine import POLICIES, Engine, simulate
from simulator.metrics import PolicySummary, RunResult, summarize
from simulator.scenario_files import builtin_scenario


def comparable(run: RunResult) -> RunResult:
    """The run without its wall-clock time."""
    return dataclasses.replace(run, wall_s=0.0)


@pytest.mark.parametrize("name", ["morning-burst", "cache-warm-fleet"])
def test_same_seed_same_run(name: str) -> None:
    scenario = builtin_scenario(name)
    first = [comparable(r) for r in simulate(scenario, POLICIES, seed=3)]
    second = [comparable(r) for r in simulate(scenario, POLICIES, seed=3)]
    assert first == second


def test_another_seed_another_run() -> None:
    scenario = builtin_scenario("morning-burst")
    a = summarize(Engine(scenario, "vramfit", seed=1).run())
    b = summarize(Engine(scenario, "vramfit", seed=2).run())
    assert a.cold_start_samples != b.cold_start_samples


@pytest.fixture(scope="module")
def burst() -> dict[str, PolicySummary]:
    scenario = builtin_scenario("morning-burst")
    return {r.policy: summarize(r) for r in simulate(scenario, POLICIES)}


def test_default_overcommits_the_mixed_pool(burst: dict[str, PolicySummary]) -> None:
    default = burst["default"]
    assert default.overcommitted_pods >= 2
    assert default.failed_loads >= default.overcommitted_pods
    assert default.cold_starts_unfinished >= 1


@pytest.mark.parametrize("policy", ["vramfit", "vramfit-binpack", "vramfit-spread"])
def test_vramfit_never_overcommits_the_mixed_pool(
    burst: dict[str, PolicySummary], policy: str
) -> None:
    s = burst[policy]
    assert (s.failed_loads, s.overcommitted_pods) == (0, 0)
    assert s.cold_starts == burst["default"].cold_starts == 20


def test_every_policy_sees_the_same_traffic(burst: dict[str, PolicySummary]) -> None:
    created = {s.pods_created for s in burst.values()}
    assert created == {burst["default"].pods_created}


PRINT_RUNS = """
import dataclasses, json, sys
from simulator.engine import POLICIES, simulate
from simulator.scenario_files import builtin_scenario
runs = simulate(builtin_scenario(sys.argv[1]), POLICIES, seed=5)
print(json.dumps([dataclasses.asdict(dataclasses.replace(r, wall_s=0.0)) for r in runs]))
"""


@pytest.mark.parametrize("name", ["morning-burst", "cache-warm-fleet"])
def test_runs_do_not_depend_on_string_hashing(name: str) -> None:
    outputs = set()
    for hash_seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", PRINT_RUNS, name],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1
