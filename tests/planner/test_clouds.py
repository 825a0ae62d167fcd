"""One cloud per plan: each provider planned on its own pools (plan and first-fit baseline),
compared cheapest first by default, one provider with ``--cloud``, providers mixed only with
``--cloud any``; end to end through ``vramfit-plan`` and on the ranking rule itself."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.cli import EXIT_OK, EXIT_UNPLACEABLE, EXIT_USAGE, main
from planner.clouds import ANY, CloudPlan, catalog_clouds, catalog_for, cloud_problem, ranked
from planner.inputs.catalog import Catalog
from planner.packing.solve import SolveOptions, SolveStats
from planner.packing.units import Scenario
from planner.plan import Plan, PoolUse, ScenarioPlan, Unplaceable

FIXTURES = Path(__file__).parent / "fixtures"
ARGS = ["--time-limit", "2", "--workers", "1", "--scenarios", "min,peak"]
LLAMA = str(FIXTURES / "llama70b_tp4.yaml")


def plan_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    rc = main([*argv, "-o", "json", *ARGS])
    out = capsys.readouterr()
    assert out.out, out.err
    report: dict[str, Any] = json.loads(out.out)
    return rc, report


def clouds_of(catalog: Catalog, pools: list[dict[str, Any]]) -> set[str]:
    return {catalog.pool(p["name"]).cloud for p in pools}


@pytest.fixture(scope="module")
def compared() -> dict[str, Any]:
    """The default run: every cloud of the shipped catalog planned and compared."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        rc = main(["--from", LLAMA, "-o", "json", *ARGS])
    assert rc == EXIT_OK
    report: dict[str, Any] = json.loads(buf.getvalue())
    return report


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"], ids=["aws", "gcp", "azure"])
def test_one_cloud_plans_only_its_pools(
    cloud: str, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, r = plan_json(["--from", LLAMA, "--cloud", cloud], capsys)
    assert rc == EXIT_OK
    assert r["cloud"] == cloud
    assert [c["cloud"] for c in r["clouds"]] == [cloud]
    assert r["clouds"][0]["catalog_pools"] == len(catalog_for(catalog, cloud).pools)
    for name, sc in r["scenarios"].items():
        assert clouds_of(catalog, sc["pools"]) == {cloud}, name
        assert clouds_of(catalog, sc["ffd"]["pools"]) == {cloud}, name
        assert {catalog.pool(p["pool"]).cloud for p in sc["placements"]} == {cloud}, name
        assert sc["cost_per_hour"] <= sc["ffd"]["cost_per_hour"] + 1e-6, name
    assert r["cost_per_hour"] == r["clouds"][0]["cost_per_hour"] > 0
    assert r["ffd"] == r["clouds"][0]["ffd"]
    assert not any("mixes clouds" in w for w in r["warnings"])


def test_default_compares_every_cloud_cheapest_first(
    compared: dict[str, Any], catalog: Catalog
) -> None:
    r = compared
    rows = r["clouds"]
    assert sorted(c["cloud"] for c in rows) == sorted(catalog_clouds(catalog))
    keys = [(c["unplaced_pods"], c["cost_per_hour"]) for c in rows]
    assert keys == sorted(keys)
    assert r["cloud"] == rows[0]["cloud"]
    assert r["cost_per_hour"] == rows[0]["cost_per_hour"]
    assert r["pools"] == rows[0]["pools"]
    for c in rows:
        assert clouds_of(catalog, c["pools"]) == {c["cloud"]}
        assert clouds_of(catalog, c["ffd"]["pools"]) == {c["cloud"]}
        assert set(c["scenarios"]) == {"min", "peak"}
        peak = c["scenarios"]["peak"]
        assert peak["cost_per_hour"] == c["cost_per_hour"]
        assert peak["ffd_cost_per_hour"] == c["ffd"]["cost_per_hour"]
        assert peak["lower_bound_cost_per_hour"] <= peak["cost_per_hour"] + 1e-6
        assert peak["cost_per_hour"] <= peak["ffd_cost_per_hour"] + 1e-6
    # The prices of every cloud stay listed: the report compares them.
    assert len(r["catalog"]["pools"]) == len(catalog.pools)


def test_each_cloud_in_the_comparison_is_its_own_plan(
    compared: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """The comparison's row of a cloud is what ``--cloud`` that cloud plans (same seed)."""
    second = compared["clouds"][1]
    rc, alone = plan_json(["--from", LLAMA, "--cloud", second["cloud"]], capsys)
    assert rc == EXIT_OK
    assert alone["clouds"][0]["scenarios"] == second["scenarios"]


def test_any_mixes_clouds_only_when_asked(
    compared: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    rc, r = plan_json(["--from", LLAMA, "--cloud", "any"], capsys)
    assert rc == EXIT_OK
    assert r["cloud"] == ANY
    assert [c["cloud"] for c in r["clouds"]] == [ANY]
    assert any("mixes clouds" in w for w in r["warnings"])
    # Mixing can only be as cheap as the cheapest single cloud, or cheaper.
    assert r["cost_per_hour"] <= compared["cost_per_hour"] + 1e-6


def test_a_cloud_the_catalog_lacks_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["--from", LLAMA, "--cloud", "oci", "-o", "json", *ARGS])
    out = capsys.readouterr()
    assert rc == EXIT_USAGE and out.out == ""
    assert out.err.strip() == (
        "error: --cloud oci: the catalog has no pool of that cloud (its clouds: aws, gcp, azure)"
    )


def test_unplaceable_reason_names_the_cloud(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A service pinned to L4 GPUs (GCP's only) cannot run on AWS: the reason says AWS pools."""
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": "small",
            "namespace": "ns",
            "annotations": {"vramfit.io/gpu-product": "NVIDIA-L4"},
        },
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "huggingface"},
                    "storageUri": "hf://Qwen/Qwen3-8B",
                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                }
            }
        },
    }
    path = tmp_path / "isvc.yaml"
    path.write_text(yaml.safe_dump(isvc))
    rc, aws = plan_json(["--from", str(path), "--cloud", "aws"], capsys)
    assert rc == EXIT_UNPLACEABLE
    assert "match no aws pool of the catalog" in aws["unplaceable"][0]["reason"]
    rc, r = plan_json(["--from", str(path)], capsys)
    assert rc == EXIT_OK
    assert r["cloud"] == "gcp"
    assert [c["unplaced_pods"] for c in r["clouds"]] == [0, 2, 2]
    assert r["clouds"][1]["cannot_place"] == ["ns/small"]


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("table", ["Cost per cloud (peak", "Node pools (peak, "]),
        ("markdown", ["## Cost per cloud (peak)", "| cloud | pools |", "## Node pools (peak, "]),
        ("html", ["<h2>Cost per cloud (peak)</h2>", "<h2>Node pools (peak, "]),
    ],
    ids=["table", "markdown", "html"],
)
def test_human_reports_compare_the_clouds(
    fmt: str, expected: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / f"report.{fmt}"
    assert main(["--from", LLAMA, "-o", fmt, "--output-file", str(out), *ARGS]) == EXIT_OK
    capsys.readouterr()
    text = out.read_text()
    for e in expected:
        assert e in text
    for cloud in ("aws", "gcp", "azure"):
        assert cloud in text
    assert "This plan is for" in " ".join(text.replace("│", " ").split())


# ---- the ranking rule, on plans built by hand ----------------------------------------------


def cloud_plan(catalog: Catalog, pool: str, nodes: int, unplaced_pods: int) -> CloudPlan:
    p = catalog.pool(pool)
    stats = SolveStats("optimal", 0.0, "-", None, 0.0, True, 0, 0, "-", 0.0)
    unplaced = (
        (Unplaceable("ns/x", "predictor", "peak", unplaced_pods, "why"),) if unplaced_pods else ()
    )
    sp = ScenarioPlan(Scenario.PEAK, (PoolUse(p, nodes),), (), (), unplaced, stats)
    plan = Plan({Scenario.PEAK: sp}, (), catalog_for(catalog, p.cloud), SolveOptions(), unplaced)
    return CloudPlan(p.cloud, plan)


RANKINGS = [
    pytest.param(
        [("aws-p5.48xlarge", 1, 0), ("gcp-g2-standard-8", 1, 0), ("azure-NC24ads_A100_v4", 1, 0)],
        ["gcp", "azure", "aws"],
        id="cheapest-first",
    ),
    pytest.param(
        [("gcp-g2-standard-8", 1, 3), ("aws-p5.48xlarge", 1, 0)],
        ["aws", "gcp"],
        id="placing-every-pod-beats-cheaper",
    ),
    pytest.param(
        [("gcp-g2-standard-8", 1, 3), ("aws-g5.xlarge", 1, 1)],
        ["aws", "gcp"],
        id="fewer-pods-left-out-first",
    ),
    pytest.param(
        [("gcp-g2-standard-8", 0, 0), ("aws-g5.xlarge", 0, 0)],
        ["aws", "gcp"],
        id="tie-by-name",
    ),
]


@pytest.mark.parametrize(("plans", "order"), RANKINGS)
def test_ranking(plans: list[tuple[str, int, int]], order: list[str], catalog: Catalog) -> None:
    built = [cloud_plan(catalog, *p) for p in plans]
    assert [c.cloud for c in ranked(built, Scenario.PEAK)] == order


@pytest.mark.parametrize(
    ("cloud", "problem"),
    [
        pytest.param(None, None, id="compare"),
        pytest.param("any", None, id="any"),
        pytest.param("azure", None, id="known"),
        pytest.param(
            "AWS",
            "--cloud AWS: the catalog has no pool of that cloud (its clouds: aws, gcp, azure)",
            id="names-are-exact",
        ),
    ],
)
def test_cloud_problem(cloud: str | None, problem: str | None, catalog: Catalog) -> None:
    assert cloud_problem(cloud, catalog) == problem


def test_every_shipped_pool_names_its_cloud(catalog: Catalog) -> None:
    assert catalog_clouds(catalog) == ("aws", "gcp", "azure")
    for p in catalog.pools:
        assert p.name.startswith(f"{p.cloud}-"), p.name
