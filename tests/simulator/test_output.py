"""The report in its three forms, and the ``simulate`` command line."""

from __future__ import annotations

import argparse
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console

from simulator import demo_main
from simulator.cli import add_arguments, run
from simulator.engine import POLICIES, simulate
from simulator.metrics import PolicySummary, downsample, percentile, summarize
from simulator.render import print_table, to_html, to_json
from simulator.scenario import Scenario
from simulator.scenario_files import builtin_scenario


@pytest.fixture(scope="module")
def burst() -> tuple[Scenario, list[PolicySummary]]:
    scenario = builtin_scenario("morning-burst")
    return scenario, [summarize(r) for r in simulate(scenario, POLICIES)]


def test_json_report(burst: tuple[Scenario, list[PolicySummary]]) -> None:
    scenario, rows = burst
    doc = json.loads(to_json(scenario, 7, rows))
    assert doc["scenario"]["name"] == "morning-burst"
    assert doc["scenario"]["gpus"] == 56
    assert [p["policy"] for p in doc["policies"]] == list(POLICIES)
    default = doc["policies"][0]
    assert default["failedLoads"] == rows[0].failed_loads > 0
    assert len(default["coldStarts"]["samplesSeconds"]) == 20
    assert default["coldStarts"]["p99Seconds"] == rows[0].cold_start_p99_s
    assert set(default["nodePeaks"]) <= {f"a100-{g}-{i}" for g in (40, 80) for i in range(4)}
    assert default["loadsInFlight"][0] == [0.0, 0]
    (reason,) = default["pending"]["reasonsAtEnd"]
    assert "Insufficient nvidia.com/gpu" in reason


def test_html_report_is_self_contained(burst: tuple[Scenario, list[PolicySummary]]) -> None:
    scenario, rows = burst
    page = to_html(scenario, 7, rows)
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)=["']?https?:""", page)
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    assert len(svgs) == 2
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg")
        paths = [e for e in root.iter() if e.tag.endswith("path")]
        assert len(paths) == len(POLICIES)
        labels = {e.text for e in root.iter() if e.tag.endswith("text")}
        assert set(POLICIES) <= labels
    for policy in POLICIES:
        assert f"<td>{policy}</td>" in page
    assert "Pods still pending at the end" in page


def test_table(burst: tuple[Scenario, list[PolicySummary]]) -> None:
    scenario, rows = burst
    console = Console(record=True, width=120)
    print_table(console, scenario, 7, rows)
    text = console.export_text()
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()[:1].isalpha()}
    for policy in POLICIES:
        assert policy in lines
    assert f" {rows[0].failed_loads} " in lines["default"]


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([], 50, None),
        ([5.0], 99, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([4.0, 1.0, 3.0, 2.0], 95, 4.0),
        (list(map(float, range(1, 101))), 99, 99.0),
    ],
)
def test_percentile_nearest_rank(values: list[float], p: float, expected: float | None) -> None:
    assert percentile(values, p) == expected


def test_downsample_keeps_peaks() -> None:
    series = [(float(t), t % 7) for t in range(10_000)]
    small = downsample(series, 10_000.0, points=100)
    assert len(small) <= 200
    assert max(v for _, v in small) == 6


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vramfit-plan simulate")
    add_arguments(parser)
    return run(parser.parse_args(argv))


TINY = """
name: tiny
duration: 10m
pools: [{name: a, type: a100-80gb-8, nodes: 1}]
services:
  - {name: s, model: org/m, modelSize: 15Gi, gpus: 1, traffic: {pattern: burst, start: 5s, rate: 1}}
"""


def test_cli_writes_json_and_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    assert cli([str(path), "-p", "default,vramfit", "-o", "json", "--seed", "4"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["policy"] for p in doc["policies"]] == ["default", "vramfit"]
    assert doc["scenario"]["seed"] == 4
    out = tmp_path / "r.html"
    assert cli([str(path), "-p", "vramfit-spread", "-o", "html", "--output-file", str(out)]) == 0
    assert "vramfit-spread" in out.read_text()
    assert cli([str(path), "--duration", "2m", "-p", "default"]) == 0
    assert "2.0m" in capsys.readouterr().out


def test_cli_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "pools": [
                    {
                        "name": "planned",
                        "gpu_product": "NVIDIA-L40S",
                        "gpus_per_node": 4,
                        "vram_per_gpu_bytes": 48 * 1024**3,
                        "nodes": 2,
                    }
                ]
            }
        )
    )
    assert cli([str(path), "--plan", str(plan), "-o", "json", "-p", "vramfit"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["scenario"]["nodes"], doc["scenario"]["gpus"]) == (2, 8)
    assert set(doc["policies"][0]["nodePeaks"]) <= {"planned-0", "planned-1"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["-p", "fastest"], "unknown policy fastest", id="policy"),
        pytest.param(["no-such-scenario"], "neither a built-in scenario", id="scenario"),
        pytest.param(["--duration", "soon"], "--duration", id="duration"),
        pytest.param(["--duration", "0s"], "must be above zero", id="zero-duration"),
        pytest.param(["--plan", "/nonexistent/plan.json"], "plan.json: file not found", id="plan"),
    ],
)
def test_cli_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("vramfit-plan simulate: ")
    assert message in err


def test_cli_reports_every_scenario_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(TINY.replace("gpus: 1", "gpus: 0").replace("rate: 1", "rate: fast"))
    assert cli([str(path)]) == 2
    err = capsys.readouterr().err
    assert "services[0].gpus: expected a whole number 1..64, got 0" in err
    assert "services[0].traffic.rate: expected a number, got 'fast'" in err


def test_cli_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["--list"]) == 0
    out = capsys.readouterr().out
    for name in ("morning-burst", "steady-diurnal", "cache-warm-fleet", "fleet-day", "a100-40gb-8"):
        assert name in out


def test_demo_prints_the_morning_burst(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo_main() == 0
    out = capsys.readouterr().out
    assert "morning-burst" in out
    for policy in POLICIES:
        assert policy in out
