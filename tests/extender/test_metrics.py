"""/metrics: the real exposition passes ``promtool check metrics`` and counts what happened."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from extender.metrics import ExtenderMetrics
from tests.extender.conftest import A100, build_extender, gpu_node, pod_object, synced_state


def scrape_after_traffic() -> str:
    ext = build_extender(
        synced_state([gpu_node("h100-0"), gpu_node("a100-0", product=A100, gib=40)])
    )
    names = ["h100-0", "a100-0", "ghost"]
    pod = pod_object("p", uid="uid-p")
    ext.api.add(pod)
    ext.client.post("/scheduler/filter", json={"Pod": pod, "NodeNames": names})
    ext.client.post("/scheduler/prioritize", json={"Pod": pod, "NodeNames": names})
    ext.client.post(
        "/scheduler/bind",
        json={"PodName": "p", "PodNamespace": "serving", "PodUID": "uid-p", "Node": "h100-0"},
    )
    ext.client.post(
        "/scheduler/filter", json={"Pod": pod_object("web", gpus=0), "NodeNames": names}
    )
    ext.client.post(
        "/scheduler/filter", json={"Pod": pod_object("big", gpus=9), "NodeNames": names}
    )
    ext.client.post("/scheduler/filter", data=b"{")
    resp = ext.client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == CONTENT_TYPE_LATEST
    text: str = resp.data.decode()
    return text


def test_promtool_accepts_the_exposition() -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is required (make promtool installs it)"
    text = scrape_after_traffic()
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


EXPECTED = {
    "placed": 'vramfit_extender_decisions_total{outcome="placed",reason="",verb="filter"} 1.0',
    "passthrough": (
        'vramfit_extender_decisions_total{outcome="passthrough",reason="",verb="filter"} 1.0'
    ),
    "unschedulable-by-main-reason": (
        'vramfit_extender_decisions_total{outcome="unschedulable",reason="gpu-too-small",'
        'verb="filter"} 1.0'
    ),
    "bound": 'vramfit_extender_decisions_total{outcome="bound",reason="bound",verb="bind"} 1.0',
    "scored": (
        'vramfit_extender_decisions_total{outcome="scored",reason="",verb="prioritize"} 1.0'
    ),
    "node-rejections": 'vramfit_extender_node_rejections_total{reason="no-report"} 2.0',
    "reservation-states": 'vramfit_extender_reservations{state="bound"} 1.0',
    "empty-states-present": 'vramfit_extender_reservations{state="loading"} 0.0',
    "latency-per-verb": 'vramfit_extender_request_duration_seconds_count{verb="filter"} 4.0',
    "ready": "vramfit_extender_ready 1.0",
    "nodes": 'vramfit_extender_nodes{report="valid"} 2.0',
}


@pytest.mark.parametrize("line", EXPECTED.values(), ids=EXPECTED.keys())
def test_metrics_count_what_happened(line: str) -> None:
    assert line in scrape_after_traffic().splitlines()


def test_reject_counts_of_a_whole_fleet_filter_reach_the_scrape() -> None:
    """A filter that names every node settles its reject counts after its reply; a scrape that
    comes first settles them itself."""
    ext = build_extender(
        synced_state([gpu_node("h100-0"), gpu_node("a100-0", product=A100, gib=40)])
    )
    pod = pod_object("p", uid="uid-p", vram="60Gi")
    ext.api.add(pod)
    resp = ext.client.post(
        "/scheduler/filter", json={"Pod": pod, "NodeNames": ["a100-0", "h100-0"]}
    )
    assert resp.get_json()["NodeNames"] == ["h100-0"]
    text = ext.client.get("/metrics").data.decode()
    assert 'vramfit_extender_node_rejections_total{reason="gpu-too-small"} 1.0' in text


def test_held_reject_counts_are_settled_once_and_bounded() -> None:
    metrics = ExtenderMetrics(CollectorRegistry())
    for _ in range(ExtenderMetrics.MAX_LATER):
        metrics.reject_later({"gpus-busy": 2})
    assert metrics.node_rejections.labels("gpus-busy")._value.get() == 0
    metrics.reject_later({"gpus-busy": 2})  # one past the bound: all are settled at once
    assert metrics.node_rejections.labels("gpus-busy")._value.get() == 2 * (
        ExtenderMetrics.MAX_LATER + 1
    )
    metrics.settle()
    assert metrics.node_rejections.labels("gpus-busy")._value.get() == 2 * (
        ExtenderMetrics.MAX_LATER + 1
    )
