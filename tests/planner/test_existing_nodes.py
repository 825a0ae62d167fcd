"""Existing nodes: the plan says how many to add or remove per pool, lists pools it empties,
and with ``--keep-existing`` never removes a node."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.cli import EXIT_OK, main
from planner.inputs.catalog import Catalog, keep_existing, parse_catalog
from planner.reports.document import PoolJSON
from planner.reports.presentation import pool_table

FIXTURES = Path(__file__).parent / "fixtures"
ARGS = ["--time-limit", "2", "--workers", "1", "--scenarios", "peak", "-o", "json"]


def pool(name: str, gpus: int, vram: str, price: float, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "gpuProduct": "NVIDIA-A100-SXM4-80GB" if vram == "80Gi" else "NVIDIA-L4",
        "gpus": gpus,
        "memoryPerGpu": vram,
        "nvlink": "all" if gpus > 1 else "none",
        "cpu": 16 * gpus,
        "memory": f"{64 * gpus}Gi",
        "price": {"perHour": price, "source": "test", "asOf": "2026-01-01"},
        **extra,
    }


def catalog_file(tmp_path: Path, *pools: dict[str, Any]) -> Path:
    path = tmp_path / "pools.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "pools": list(pools)}))
    return path


def plan(tmp_path: Path, pools: Path, *extra: str) -> dict[str, Any]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(
            ["--from", str(FIXTURES / "hf_isvc.yaml"), "--catalog", str(pools), *ARGS, *extra]
        )
    assert rc == EXIT_OK
    report: dict[str, Any] = json.loads(buf.getvalue())
    return report


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in report["pools"]}


def test_the_plan_says_what_to_add_and_remove(tmp_path: Path) -> None:
    pools = catalog_file(
        tmp_path,
        pool("big", 8, "80Gi", 30.0, existingNodes=3),
        pool("small", 1, "24Gi", 1.0, existingNodes=0),
    )
    got = by_name(plan(tmp_path, pools))
    # A 7B model needs one small GPU: the big pool is emptied, and still listed.
    assert got["small"]["nodes"] == 1 and got["small"]["change_nodes"] == 1
    assert got["big"]["nodes"] == 0 and got["big"]["existing_nodes"] == 3
    assert got["big"]["change_nodes"] == -3


def test_keep_existing_never_removes_a_node(tmp_path: Path) -> None:
    pools = catalog_file(
        tmp_path,
        pool("big", 8, "80Gi", 30.0, existingNodes=3),
        pool("small", 1, "24Gi", 1.0),
    )
    report = plan(tmp_path, pools, "--keep-existing")
    got = by_name(report)
    assert got["big"]["nodes"] == 3 and got["big"]["change_nodes"] == 0
    assert "small" not in got  # the model fits on the nodes already there
    assert report["cost_per_hour"] == pytest.approx(90.0)


CASES = {
    # name: (minNodes, maxNodes, existingNodes) -> minNodes kept
    "no-existing": ((0, None, 0), 0),
    "existing-raises-min": ((1, None, 4), 4),
    "min-above-existing-stays": ((5, None, 2), 5),
    "max-caps-what-is-kept": ((0, 2, 4), 2),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_keep_existing_raises_min_nodes(case: str) -> None:
    (min_nodes, max_nodes, existing), kept = CASES[case]
    extra: dict[str, Any] = {"minNodes": min_nodes, "existingNodes": existing}
    if max_nodes is not None:
        extra["maxNodes"] = max_nodes
    catalog: Catalog = parse_catalog(
        {"version": 1, "pools": [pool("p", 1, "24Gi", 1.0, **extra)]}, "test"
    )
    (p,) = keep_existing(catalog).pools
    assert p.min_nodes == kept
    assert dataclasses.replace(p, min_nodes=min_nodes) == catalog.pools[0]


def pool_json(nodes: int, existing: int) -> PoolJSON:
    return PoolJSON(
        name="p",
        gpu_product="NVIDIA-L4",
        gpus_per_node=1,
        vram_per_gpu_bytes=24 * 1024**3,
        nodes=nodes,
        existing_nodes=existing,
        change_nodes=nodes - existing,
        cost_per_hour=float(nodes),
    )


TABLES = {
    # name: pools -> (header has existing/change, change cells)
    "no-existing-nodes-no-columns": ([pool_json(2, 0)], (False, [])),
    "growth": ([pool_json(3, 1), pool_json(1, 0)], (True, ["+2", "+1"])),
    "shrink-and-keep": ([pool_json(0, 3), pool_json(2, 2)], (True, ["-3", "0"])),
}


@pytest.mark.parametrize("case", list(TABLES), ids=list(TABLES))
def test_pool_table_shows_changes_only_with_existing_nodes(case: str) -> None:
    pools, (shown, changes) = TABLES[case]
    header, rows = pool_table(pools)
    assert ("change" in header) is shown and ("existing" in header) is shown
    if shown:
        at = header.index("change")
        assert [r[at] for r in rows] == changes
    assert all(len(r) == len(header) for r in rows)


def test_markdown_report_shows_the_change(tmp_path: Path) -> None:
    pools = catalog_file(
        tmp_path,
        pool("big", 8, "80Gi", 30.0, existingNodes=3),
        pool("small", 1, "24Gi", 1.0),
    )
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        args = ["--from", str(FIXTURES / "hf_isvc.yaml"), "--catalog", str(pools)]
        rc = main([*args, "--time-limit", "2", "--scenarios", "peak", "-o", "markdown"])
    assert rc == EXIT_OK
    text = buf.getvalue()
    assert "| change |" in text and "| -3 |" in text and "| +1 |" in text
