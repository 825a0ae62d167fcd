"""The charts' text never overlaps and never leaves the picture: boxes read back from the SVG
for named hard cases, for any names hypothesis draws, and for a whole HTML report of a plan
with many long pool names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.cli import EXIT_OK, main
from planner.reports.svg import Series, bar_chart, hbar_chart
from tests.browser import overlap
from tests.planner.long_pools import long_named_plan
from tests.planner.svg_boxes import layout_problems, text_boxes

LONG_POOLS = [
    f"azure-Standard_ND96isr_H100_v5-{region}-reserved-{i}"
    for i, region in enumerate(["eastus", "westeurope", "japaneast", "southcentralus"] * 4)
]
SCENARIOS = ["min", "peak", "rollout", "cold-burst"]


def dollars(v: float) -> str:
    return f"${v:,.0f}"


def series(names: list[str], n: int, scale: float = 100.0) -> list[Series]:
    return [
        Series(s, tuple(scale * (1 + (k + i) % 5) for i in range(n))) for k, s in enumerate(names)
    ]


BARS = [
    pytest.param(LONG_POOLS, series(SCENARIOS, len(LONG_POOLS)), 720, id="sixteen-long-pool-names"),
    pytest.param(LONG_POOLS[:3], series(SCENARIOS, 3), 720, id="three-long-pool-names"),
    pytest.param(
        [f"aws-g5.{i}xlarge" for i in range(12)], series(SCENARIOS, 12), 1060, id="twelve-pools"
    ),
    pytest.param(["min", "peak"], series(["plan"], 2, 1e6), 720, id="few-with-values"),
    pytest.param(
        [f"pool-{i}" for i in range(8)],
        series(["plan", "first-fit decreasing", "lower bound"], 8, 12345.0),
        720,
        id="crowded-values",
    ),
    pytest.param(
        ["aws", "gcp", "azure"],
        series([f"a series with a rather long name {i}" for i in range(6)], 3),
        720,
        id="legend-wraps",
    ),
    pytest.param(["x" * 120], series(["plan"], 1), 720, id="one-very-long-name"),
    pytest.param([f"p{i}" for i in range(80)], series(["a", "b"], 80), 720, id="eighty-categories"),
]


@pytest.mark.parametrize(("categories", "rows", "width"), BARS)
def test_bar_chart_text_never_overlaps(
    categories: list[str], rows: list[Series], width: int
) -> None:
    svg = bar_chart("GPUs per pool (peak, azure)", categories, rows, dollars, width=width)
    assert layout_problems(svg) == []
    labels = {b.text for b in text_boxes(svg)[0]}
    assert set(categories) <= labels  # every name is written whole


def test_the_old_layout_is_caught() -> None:
    """The checker finds what the report used to draw: long pool names side by side."""
    boxes, _ = text_boxes(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 100">'
        '<text x="100" y="50" font-size="11" text-anchor="middle">aws-p4de.24xlarge</text>'
        '<text x="190" y="50" font-size="11" text-anchor="middle">azure-NC80adis_H100_v5</text>'
        "</svg>"
    )
    assert overlap(boxes[0].corners, boxes[1].corners)


HBARS = [
    pytest.param([f"{p}-{i}" for i, p in enumerate(LONG_POOLS)], ["needed"], id="long-node-names"),
    pytest.param(["n" * 90, "m" * 90], ["always warm", "scale to zero"], id="very-long-names"),
    pytest.param([f"svc-{i}" for i in range(40)], ["always warm", "scale to zero"], id="many"),
]


@pytest.mark.parametrize(("labels", "names"), HBARS)
def test_hbar_chart_text_never_overlaps(labels: list[str], names: list[str]) -> None:
    rows = series(names, len(labels), 123456.0)
    svg = hbar_chart("Cost per day ($)", labels, rows, dollars, capacity=[1e6] * len(labels))
    assert layout_problems(svg) == []


NAME = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._",
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(
    categories=st.lists(NAME, min_size=1, max_size=30),
    names=st.lists(NAME, min_size=1, max_size=5),
    top=st.floats(min_value=0.0, max_value=1e7),
    width=st.integers(min_value=300, max_value=1200),
)
def test_any_bar_chart_lays_out(
    categories: list[str], names: list[str], top: float, width: int
) -> None:
    rows = series(names, len(categories), top)
    assert layout_problems(bar_chart("t", categories, rows, dollars, width=width)) == []


@settings(max_examples=40, deadline=None)
@given(labels=st.lists(NAME, min_size=1, max_size=20), names=st.lists(NAME, min_size=1, max_size=3))
def test_any_hbar_chart_lays_out(labels: list[str], names: list[str]) -> None:
    rows = series(names, len(labels), 1e5)
    assert layout_problems(hbar_chart("t", labels, rows, dollars)) == []


def test_html_report_of_many_long_pool_names_lays_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog, isvcs = long_named_plan(tmp_path)
    out = tmp_path / "plan.html"
    argv = [
        "--from",
        str(isvcs),
        "--catalog",
        str(catalog),
        "-o",
        "html",
        "--output-file",
        str(out),
    ]
    assert main([*argv, "--time-limit", "2", "--workers", "1"]) == EXIT_OK, capsys.readouterr().err
    svgs = re.findall(r"<svg .*?</svg>", out.read_text(), re.DOTALL)
    assert len(svgs) == 5
    gpus = next(s for s in svgs if "GPUs per pool" in s)
    assert sum("capacity-block-" in b.text for b in text_boxes(gpus)[0]) == 14
    for svg in svgs:
        assert layout_problems(svg) == []
