"""The Grafana dashboard and the Prometheus alerts: every expression reads only metrics and
labels the agent and the extender export; promtool accepts the rules and their unit tests, and
those tests catch an alert that never fires or always fires."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.chart import DASHBOARD_FILE, REPO_ROOT, RULES_FILE, RULES_TEST_FILE
from tests.deploy.metric_names import Reads, defined_metrics, reads

EXPORTERS = (REPO_ROOT / "extender" / "metrics.py", REPO_ROOT / "nodeagent" / "metrics.py")
# Labels Prometheus itself puts on every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})


def _exposed() -> dict[str, frozenset[str]]:
    series: dict[str, frozenset[str]] = {}
    for metric in defined_metrics(EXPORTERS):
        series.update(metric.series())
    return series


EXPOSED = _exposed()


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    return loaded


def _panels(dashboard: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _dashboard_exprs() -> dict[str, str]:
    dashboard = _dashboard()
    exprs = {
        f"{panel['title']} {target['refId']}": target["expr"]
        for panel in _panels(dashboard)
        for target in panel.get("targets", [])
    }
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, Mapping) else query
            # label_values(metric, label): the metric is what is read.
            exprs[f"variable {variable['name']}"] = text.removeprefix("label_values(").split(",")[0]
    return exprs


def _rules() -> list[Mapping[str, Any]]:
    groups = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _alert_exprs() -> dict[str, str]:
    return {rule["alert"]: rule["expr"] for rule in _rules()}


EXPRS = {**{f"dashboard: {k}": v for k, v in _dashboard_exprs().items()}}
EXPRS |= {f"alert: {k}": v for k, v in _alert_exprs().items()}


@pytest.mark.parametrize(
    "series",
    [
        "vramfit_extender_decisions_total",
        "vramfit_extender_request_duration_seconds_bucket",
        "vramfit_extender_reservations",
        "vramfit_extender_requeues_total",
        "vramfit_gpu_memory_free_bytes",
        "vramfit_agent_last_status_write_timestamp_seconds",
        "vramfit_agent_xid_events_total",
    ],
)
def test_the_exporters_are_read_with_their_series(series: str) -> None:
    """The reading of the exporters' source finds what they are known to export."""
    assert series in EXPOSED


def test_labels_are_read_through_names_and_both_branches_of_a_choice() -> None:
    """The GPU metrics' labels come from a list chosen at run time (with or without GPU UUIDs):
    both choices count."""
    assert {"node", "gpu", "product"} <= EXPOSED["vramfit_gpu_healthy"]
    assert {"node", "gpu", "product", "pod_uid"} <= EXPOSED["vramfit_gpu_pod_memory_bytes"]
    assert EXPOSED["vramfit_extender_request_duration_seconds_bucket"] == {"verb", "le"}
    assert EXPOSED["vramfit_extender_decisions_total"] == {"verb", "outcome", "reason"}


READS = {
    "counter-rate": (
        'sum by (outcome, reason) (rate(vramfit_extender_decisions_total{verb="filter"}[5m]))',
        Reads(
            frozenset({"vramfit_extender_decisions_total"}),
            frozenset({("vramfit_extender_decisions_total", "verb")}),
            frozenset({"outcome", "reason"}),
        ),
    ),
    "grafana-variables-and-numbers": (
        'histogram_quantile(0.99, sum by (le) (rate(x_bucket{node=~"$node"}[$__rate_interval]))) > 1e3',
        Reads(frozenset({"x_bucket"}), frozenset({("x_bucket", "node")}), frozenset({"le"})),
    ),
    "set-operators-and-vector": (
        "count(a == 0) or vector(0) unless on (node) b offset 5m",
        Reads(frozenset({"a", "b"}), frozenset(), frozenset({"node"})),
    ),
    "time-minus-timestamp": (
        "time() - max without (instance) (c)",
        Reads(frozenset({"c"}), frozenset(), frozenset({"instance"})),
    ),
    "strings-with-braces": (
        'd{reason=~"a|{b}"} > 0',
        Reads(frozenset({"d"}), frozenset({("d", "reason")}), frozenset()),
    ),
}


@pytest.mark.parametrize(("expr", "expected"), list(READS.values()), ids=list(READS))
def test_reads(expr: str, expected: Reads) -> None:
    assert reads(expr) == expected


@pytest.mark.parametrize("expr", list(EXPRS.values()), ids=list(EXPRS))
def test_every_expression_reads_only_exported_metrics_and_labels(expr: str) -> None:
    found = reads(expr)
    assert found.metrics, "reads no metric"
    assert found.metrics <= set(EXPOSED), found.metrics - set(EXPOSED)
    for metric, label in found.matched:
        assert label in EXPOSED[metric] | TARGET_LABELS, (metric, label)
    labels = set().union(*(EXPOSED[m] for m in found.metrics)) | TARGET_LABELS
    assert found.grouped <= labels, found.grouped - labels


@pytest.mark.parametrize(
    "title",
    [
        "Free VRAM by GPU product",
        "Loads in flight",
        "Filter decisions by outcome and reason",
        "Bind and prioritize decisions by outcome",
        "Latency per verb (p50, p99)",
        "Reservations by state",
        "Requeued pods",
        "Agents' report age",
        "Unhealthy GPUs",
        "NVML unavailable",
    ],
)
def test_the_dashboard_has_the_panel(title: str) -> None:
    assert title in {panel["title"] for panel in _panels(_dashboard())}


def test_the_dashboard_is_well_formed() -> None:
    dashboard = _dashboard()
    panels = list(_panels(dashboard))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"


# --- promtool ------------------------------------------------------------------------------


def _promtool() -> str:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is required (make promtool installs it)"
    return promtool


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_checks_the_rules() -> None:
    result = _run("check", "rules", RULES_FILE.name, cwd=RULES_FILE.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_promtool_runs_the_rules_unit_tests() -> None:
    result = _run("test", "rules", RULES_TEST_FILE.name, cwd=RULES_TEST_FILE.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_unit_tests() -> None:
    tests = yaml.safe_load(RULES_TEST_FILE.read_text(encoding="utf-8"))["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    assert tested == set(_alert_exprs())


MUTATIONS = {"never-fires": "vector(1) == 0", "always-fires": "vector(1)"}


@pytest.mark.parametrize("mutation", list(MUTATIONS.values()), ids=list(MUTATIONS))
@pytest.mark.parametrize("alert", list(_alert_exprs()))
def test_the_unit_tests_catch_a_broken_alert(tmp_path: Path, alert: str, mutation: str) -> None:
    """With one alert's expression replaced, ``promtool test rules`` must fail: each alert has
    a case where it fires and one where it must not."""
    rules = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = mutation
    (tmp_path / RULES_FILE.name).write_text(yaml.safe_dump(rules), encoding="utf-8")
    shutil.copy(RULES_TEST_FILE, tmp_path / RULES_TEST_FILE.name)
    result = _run("test", "rules", RULES_TEST_FILE.name, cwd=tmp_path)
    assert result.returncode != 0, result.stdout
    assert alert in result.stdout + result.stderr
