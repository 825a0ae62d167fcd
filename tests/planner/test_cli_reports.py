"""End to end through ``vramfit-plan``: the bundled fleet in every output format, every
placement checked by ``placement.fit``, exit codes, and one clear error per bad input."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import types
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from placement.fit import fit
from placement.model import Demand, NvlinkMode, Reject
from planner.cli import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_UNPLACEABLE,
    EXIT_USAGE,
    build_parser,
    main,
    plan_settings,
)
from planner.frame import ServiceFrame
from planner.inputs.catalog import Catalog
from planner.plan import node_state
from planner.reports.document import (
    BaselineJSON,
    CatalogJSON,
    CatalogPoolJSON,
    CloudJSON,
    CloudScenarioJSON,
    InputsJSON,
    NodeJSON,
    PlacementJSON,
    PoolJSON,
    Report,
    ScenarioJSON,
    ServiceJSON,
    SolverJSON,
    StatsJSON,
    UnplaceableJSON,
)
from planner.settings import PlanSettings

FLEET = Path(str(resources.files("planner.data").joinpath("fleet")))
TRAFFIC = Path(str(resources.files("planner.data").joinpath("fleet-traffic.yaml")))
FIXTURES = Path(__file__).parent / "fixtures"
ARGS = ["--time-limit", "2", "--workers", "1"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def fleet_report() -> dict[str, Any]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["--from", str(FLEET), "--traffic", str(TRAFFIC), "-o", "json", *ARGS])
    assert rc == EXIT_UNPLACEABLE  # the fleet pins phi-4 to L4 GPUs that are too small
    report: dict[str, Any] = json.loads(buf.getvalue())
    return report


def test_fleet_json_has_the_documented_fields(fleet_report: dict[str, Any]) -> None:
    r = fleet_report
    for key in (
        "pools",
        "cost_per_hour",
        "lower_bound_cost_per_hour",
        "gap",
        "ffd",
        "placements",
        "unplaceable",
        "services",
    ):
        assert key in r
    assert set(r["pools"][0]) >= {
        "name",
        "gpu_product",
        "gpus_per_node",
        "vram_per_gpu_bytes",
        "nodes",
        "cost_per_hour",
    }
    assert set(r["placements"][0]) >= {
        "inference_service",
        "component",
        "replica",
        "pool",
        "node",
        "gpus",
    }
    assert set(r["services"][0]) >= {
        "name",
        "gpus_per_replica",
        "vram_per_gpu_bytes",
        "cold_start_seconds",
        "recommendation",
    }
    assert set(r["scenarios"]) == {"min", "peak", "rollout", "cold-burst"}
    assert r["inputs"]["inference_services"] >= 30
    (bad,) = {u["inference_service"] for u in r["unplaceable"]}
    assert bad == "batch/extract-phi4"
    # Pinned to L4 GPUs, which only GCP has, and too large for them: no cloud places it.
    assert r["cloud"] == "aws"
    assert "match no aws pool of the catalog" in r["unplaceable"][0]["reason"]
    assert all(c["cannot_place"] == ["batch/extract-phi4"] for c in r["clouds"])


# name: (the part of the JSON report, the TypedDict that types it)
DOCUMENT_PARTS: dict[str, tuple[Callable[[dict[str, Any]], Any], Any]] = {
    "report": (lambda r: r, Report),
    "pool": (lambda r: r["pools"][0], PoolJSON),
    "ffd": (lambda r: r["ffd"], BaselineJSON),
    "placement": (lambda r: r["placements"][0], PlacementJSON),
    "unplaceable": (lambda r: r["unplaceable"][0], UnplaceableJSON),
    "service": (lambda r: r["services"][0], ServiceJSON),
    "scenario": (lambda r: r["scenarios"]["peak"], ScenarioJSON),
    "node": (lambda r: r["scenarios"]["peak"]["nodes"][0], NodeJSON),
    "stats": (lambda r: r["scenarios"]["peak"]["stats"], StatsJSON),
    "inputs": (lambda r: r["inputs"], InputsJSON),
    "cloud": (lambda r: r["clouds"][0], CloudJSON),
    "cloud-scenario": (lambda r: r["clouds"][1]["scenarios"]["peak"], CloudScenarioJSON),
    "catalog": (lambda r: r["catalog"], CatalogJSON),
    "catalog-pool": (lambda r: r["catalog"]["pools"][0], CatalogPoolJSON),
    "solver": (lambda r: r["solver"], SolverJSON),
}


@pytest.mark.parametrize("part", list(DOCUMENT_PARTS), ids=list(DOCUMENT_PARTS))
def test_json_report_is_the_typed_document(part: str, fleet_report: dict[str, Any]) -> None:
    get, typed = DOCUMENT_PARTS[part]
    assert set(get(fleet_report)) == set(typed.__required_keys__)


def test_service_frame_and_its_json_use_the_same_names() -> None:
    assert {f.name for f in dataclasses.fields(ServiceFrame)} == set(ServiceJSON.__required_keys__)


def test_plan_is_never_worse_than_ffd_and_within_its_bound(fleet_report: dict[str, Any]) -> None:
    for name, sc in fleet_report["scenarios"].items():
        assert sc["cost_per_hour"] <= sc["ffd"]["cost_per_hour"] + 1e-6, name
        assert sc["lower_bound_cost_per_hour"] <= sc["cost_per_hour"] + 1e-6, name
        assert sc["fit_errors"] == []


def test_every_placement_passes_fit(fleet_report: dict[str, Any], catalog: Catalog) -> None:
    """Re-check each node of every scenario with the core's fit(), independently of the planner."""
    for sc in fleet_report["scenarios"].values():
        pods = {
            (
                p["node"],
                f"{p['inference_service']}/{p['component']}/{p['replica']}/{p['pod']}/{p['canary']}",
            ): p
            for p in sc["placements"]
        }
        by_node: dict[str, list[dict[str, Any]]] = {}
        for p in pods.values():
            by_node.setdefault(p["node"], []).append(p)
        for node_name, placed in by_node.items():
            pool = catalog.pool(placed[0]["pool"])
            node = node_state(node_name, pool)
            used: set[int] = set()
            for p in placed:
                assert not used & set(p["gpus"]), f"{node_name}: GPUs given twice"
                used |= set(p["gpus"])
                demand = Demand(
                    gpus=len(p["gpus"]),
                    vram_per_gpu=p["vram_per_gpu_bytes"],
                    nvlink=NvlinkMode.PREFERRED,
                )
                assert not isinstance(fit(node, demand, [], now=0.0), Reject)
                assert p["vram_per_gpu_bytes"] <= pool.vram_per_gpu


def test_services_recommendations(fleet_report: dict[str, Any]) -> None:
    services = {s["name"]: s for s in fleet_report["services"]}
    # Busy all day and a 5 s budget: keep warm.
    assert services["search/query-rewriter"]["recommendation"] == "keep-warm"
    # 40 minutes from S3 and idle 95% of a day with a 1 h budget: scale to zero.
    assert services["research/eval-llama70b"]["recommendation"] == "scale-to-zero"
    assert services["research/eval-llama70b"]["scale_to_zero_savings_per_day"] > 0
    # The custom image has no known size: reported, not guessed.
    assert services["batch/rank-custom"]["recommendation"] == "size-unknown"
    assert services["batch/rank-custom"]["vram_per_gpu_bytes"] is None
    ann = services["search/answer-llama70b"]["annotations"]
    assert ann["vramfit.io/nvlink"] == "required"
    assert ann["vramfit.io/model"] == "meta-llama/Llama-3.3-70B-Instruct"


@pytest.mark.parametrize("fmt", ["markdown", "html", "table"])
def test_human_formats(fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / f"report.{fmt}"
    rc, _, err = run(
        [
            "--from",
            str(FIXTURES / "llama70b_tp4.yaml"),
            "-o",
            fmt,
            "--output-file",
            str(out),
            *ARGS,
        ],
        capsys,
    )
    assert rc == EXIT_OK, err
    text = out.read_text()
    assert "llm/llama-70b" in text
    if fmt == "html":
        assert text.startswith("<!DOCTYPE html>") and text.count("<svg") == 5
        assert "<script" not in text and "http://" not in text.replace(
            "http://www.w3.org/2000/svg", ""
        )
    if fmt == "markdown":
        assert "| scenario |" in text


@pytest.mark.parametrize("fmt", ["markdown", "html", "table"])
def test_human_formats_show_groups_notes_and_what_was_not_read(
    fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = FIXTURES / "kserve-docs"
    out = tmp_path / f"report.{fmt}"
    files = ("llmisvc-deepseek-dp-ep.yaml", "llmisvc-broken.yaml", "isvc-hf-new-fields.yaml")
    rc, _, err = run(
        ["--from", *(str(docs / f) for f in files), "-o", fmt, "--output-file", str(out), *ARGS],
        capsys,
    )
    assert rc == EXIT_OK, err
    # Panels wrap long lines between borders: read the words in order.
    text = " ".join(out.read_text().replace("│", " ").split())
    assert "Multi-node groups" in text
    assert "default/deepseek-coder-v2 workload replica 0: 2 pods (8+8 GPUs) on 2" in text
    assert "2 pods x 8 GPUs (one group)" in text
    assert "Could not be read" in text and "half-data-parallel" in text
    assert "spec.predictor.someNewField: unknown field, ignored" in text


def _write(path: Path, docs: list[Any]) -> Path:
    path.write_text(yaml.safe_dump_all(docs))
    return path


def _isvc(name: str = "x", **predictor: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "huggingface"},
                    "storageUri": "hf://Qwen/Qwen3-8B",
                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                },
                **predictor,
            }
        },
    }


SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hf-token"}}

BAD_INPUT = [
    pytest.param(
        lambda d: [_write(d / "a.yaml", [_isvc()]).with_name("missing.yaml")],
        [],
        "missing.yaml: no such file or folder",
        id="missing-file",
    ),
    pytest.param(
        lambda d: [(d / "a.yaml", (d / "a.yaml").write_text("kind: [x\n"))[0]],
        [],
        "not valid YAML",
        id="broken-yaml",
    ),
    pytest.param(
        lambda d: [_write(d / "a.yaml", [_isvc(minReplicas=-2)])],
        [],
        "spec.predictor.minReplicas: expected a whole number >= 0, got -2",
        id="negative-replicas",
    ),
    pytest.param(
        lambda d: [_write(d / "a.yaml", [_isvc(minReplicas=-2), SECRET])],
        [],
        "ns/x: spec.predictor.minReplicas: expected a whole number >= 0, got -2",
        id="the-only-service-broken",
    ),
    pytest.param(
        lambda d: [_write(d / "a.yaml", [_isvc()])],
        ["--catalog", "/nonexistent/pools.yaml"],
        "pool catalog /nonexistent/pools.yaml: file not found",
        id="missing-catalog",
    ),
    pytest.param(
        lambda d: [_write(d / "a.yaml", [_isvc()])],
        ["--traffic", "/nonexistent/t.yaml"],
        "traffic file /nonexistent/t.yaml: file not found",
        id="missing-traffic",
    ),
]


@pytest.mark.parametrize(("make", "extra", "message"), BAD_INPUT)
def test_bad_input_one_clear_error(
    make: Any, extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = make(tmp_path)
    rc, out, err = run(["--from", *map(str, paths), *extra, "-o", "json", *ARGS], capsys)
    assert rc == EXIT_INPUT
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and message in lines[0]


def test_bad_catalog_lists_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cat = tmp_path / "pools.yaml"
    cat.write_text(
        yaml.safe_dump(
            {
                "pools": [
                    {
                        "name": "a",
                        "gpuProduct": "X",
                        "gpus": -1,
                        "memoryPerGpu": "80Gi",
                        "cpu": 8,
                        "memory": "64Gi",
                        "price": {"perHour": 1.0, "source": "s", "asOf": "2026-01-01"},
                    },
                    {
                        "name": "b",
                        "gpuProduct": "X",
                        "gpus": 8,
                        "memoryPerGpu": "80Gi",
                        "cpu": 8,
                        "memory": "64Gi",
                        "gpuCount": 8,
                        "price": {"perHour": 2.0, "asOf": "yesterday"},
                    },
                ]
            }
        )
    )
    isvc = _write(tmp_path / "a.yaml", [_isvc()])
    rc, _, err = run(["--from", str(isvc), "--catalog", str(cat), *ARGS], capsys)
    assert rc == EXIT_INPUT
    lines = err.strip().splitlines()
    assert len(lines) == 4, lines
    assert "pools[a].gpus: expected a whole number >= 1, got -1" in lines[0]
    assert "pools[b].gpuCount: unknown field" in lines[1]
    assert "pools[b].price.source: missing" in lines[2]
    assert "pools[b].price.asOf: expected a date" in lines[3]


def test_options_default_to_the_plan_settings() -> None:
    args = build_parser(None).parse_args(["plan", "--from", str(FIXTURES)])
    settings, errors = plan_settings(args)
    assert errors == []
    assert settings == PlanSettings()


def test_usage_errors_all_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(
        [
            "--from",
            str(FIXTURES),
            "--time-limit",
            "0",
            "--gpu-memory-utilization",
            "1.5",
            "--scenarios",
            "min,lunch",
        ],
        capsys,
    )
    assert rc == EXIT_USAGE
    lines = err.strip().splitlines()
    assert len(lines) == 4, lines
    assert "--gpu-memory-utilization must be in (0, 1], got 1.5" in lines[0]
    assert "unknown scenario 'lunch'" in lines[1]
    assert "--scenario peak is not among --scenarios" in lines[2]
    assert "--time-limit must be positive" in lines[3]


def test_default_catalog_prices_name_source_and_date(catalog: Catalog) -> None:
    clouds = {p.cloud for p in catalog.pools}
    assert clouds == {"aws", "gcp", "azure"}
    for p in catalog.pools:
        assert p.price.per_hour > 0 and p.price.source and len(p.price.as_of) == 10


def test_simulate_subcommand_contract() -> None:
    """``simulate`` hands its arguments to the simulator's add_arguments/run; a plan run never
    loads the simulator."""
    assert "simulator_run" not in vars(build_parser(None).parse_args(["simulate"]))
    seen: list[Any] = []

    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--burst", type=int, default=3)

    def run_sim(args: argparse.Namespace) -> int:
        seen.append(args.burst)
        return 7

    fake = types.SimpleNamespace(add_arguments=add_arguments, run=run_sim)
    args = build_parser(lambda: fake).parse_args(["simulate", "--burst", "5"])
    assert args.simulator_run(args) == 7 and seen == [5]
