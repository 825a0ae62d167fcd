"""The planner's HTML report looked at as a person would: rendered in headless Chromium, every
chart's text laid out by the browser's own fonts without overlapping or leaving its picture,
the page as wide as the window, and a screenshot saved (``make screenshots`` keeps them in
``docs/screenshots``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from planner.cli import EXIT_OK, EXIT_UNPLACEABLE, main
from tests.browser import WIDTH, measure, screenshot
from tests.planner.long_pools import long_named_plan

FLEET = Path(str(resources.files("planner.data").joinpath("fleet")))
TRAFFIC = Path(str(resources.files("planner.data").joinpath("fleet-traffic.yaml")))
ARGS = ["--time-limit", "2", "--workers", "1"]


def fleet(tmp: Path) -> list[str]:
    return ["--from", str(FLEET), "--traffic", str(TRAFFIC)]


def long_pool_names(tmp: Path) -> list[str]:
    catalog, isvcs = long_named_plan(tmp)
    return ["--from", str(isvcs), "--catalog", str(catalog)]


# name of the screenshot: the plan's inputs, and what its page must show
PAGES = [
    pytest.param("plan-fleet", fleet, ["Cost per cloud (peak)", "Multi-node groups"], id="fleet"),
    pytest.param(
        "plan-long-pool-names",
        long_pool_names,
        ["aws-p4de.24xlarge-us-east-1-capacity-block-13"],
        id="long-pool-names",
    ),
]


@pytest.mark.parametrize(("name", "inputs", "shows"), PAGES)
def test_plan_report_in_chromium(
    name: str,
    inputs: object,
    shows: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert callable(inputs)
    page = tmp_path / f"{name}.html"
    rc = main([*inputs(tmp_path), "-o", "html", "--output-file", str(page), *ARGS])
    assert rc in (EXIT_OK, EXIT_UNPLACEABLE), capsys.readouterr().err
    text = page.read_text()
    for s in shows:
        assert s in text
    laid_out = measure(page, tmp_path)
    assert len(laid_out.svgs) == 5
    for svg in laid_out.svgs:
        assert svg.texts, "a chart without text"
        assert svg.problems() == []
        assert svg.width <= WIDTH  # no chart wider than the window
    png = screenshot(page, tmp_path / f"{name}.png", laid_out.height, tmp_path)
    assert png.stat().st_size > 20_000  # a page, not a blank
