"""The simulator's HTML report looked at as a person would: rendered in headless Chromium, its
charts' text laid out by the browser without overlapping or leaving the picture, and a
screenshot saved (``make screenshots`` keeps it in ``docs/screenshots``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from simulator.cli import add_arguments, run
from tests.browser import WIDTH, measure, screenshot


def simulate(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vramfit-plan simulate")
    add_arguments(parser)
    return run(parser.parse_args(argv))


@pytest.mark.parametrize(
    ("scenario", "policies"),
    [pytest.param("morning-burst", "default,vramfit,vramfit-spread", id="morning-burst")],
)
def test_simulation_report_in_chromium(scenario: str, policies: str, tmp_path: Path) -> None:
    page = tmp_path / f"simulate-{scenario}.html"
    argv = [scenario, "-p", policies, "--seed", "7", "-o", "html", "--output-file", str(page)]
    assert simulate(argv) == 0
    for policy in policies.split(","):
        assert f"<td>{policy}</td>" in page.read_text()
    laid_out = measure(page, tmp_path)
    assert len(laid_out.svgs) == 2
    for svg in laid_out.svgs:
        assert svg.texts, "a chart without text"
        assert svg.problems() == []
        assert svg.width <= WIDTH
    png = screenshot(page, tmp_path / f"simulate-{scenario}.png", laid_out.height, tmp_path)
    assert png.stat().st_size > 20_000
