"""The watched objects read at the edge: pods, agent Leases and NodeGPUState reports."""

from __future__ import annotations

from typing import Any

import pytest

from extender.objects import AgentLease, NodeReport, lease_times, read_lease, read_pod, read_report
from placement.nodegpustate import LEASE_PREFIX
from tests.extender.conftest import NOW, gpu_node, lease_object, pod_object, report_object

LEASE_CASES = {
    "renewed": ({"spec": {"renewTime": "2027-01-15T08:00:00.000000Z"}}, (1800000000.0, 40.0)),
    "acquired-only": (
        {"spec": {"acquireTime": "2027-01-15T08:00:00Z", "leaseDurationSeconds": 15}},
        (1800000000.0, 15.0),
    ),
    "never-renewed": ({"spec": {}}, (None, 40.0)),
    "garbage-time": ({"spec": {"renewTime": "yesterday"}}, (None, 40.0)),
    "no-spec": ({}, (None, 40.0)),
    "zero-duration": ({"spec": {"leaseDurationSeconds": 0}}, (None, 40.0)),
}


@pytest.mark.parametrize(("raw", "expect"), LEASE_CASES.values(), ids=LEASE_CASES.keys())
def test_lease_times(raw: dict[str, Any], expect: tuple[float | None, float]) -> None:
    assert lease_times(raw) == expect


AGENT_LEASE_CASES = {
    "agent": (lease_object("n0", NOW, 15), AgentLease("n0", NOW, 15.0)),
    "other-lease": (lease_object("n0", NOW) | {"metadata": {"name": "kube-scheduler"}}, None),
    "prefix-only": (lease_object("n0", NOW) | {"metadata": {"name": LEASE_PREFIX}}, None),
    "no-metadata": ({"spec": {}}, None),
}


@pytest.mark.parametrize(
    ("raw", "expect"), AGENT_LEASE_CASES.values(), ids=AGENT_LEASE_CASES.keys()
)
def test_read_lease(raw: dict[str, Any], expect: AgentLease | None) -> None:
    assert read_lease(raw) == expect


def test_read_pod_tolerates_odd_pods() -> None:
    assert read_pod({"metadata": {}}, now=NOW) is None
    info = read_pod(pod_object("p", vram="lots", uid="u"), now=NOW)
    assert info is not None and info.demand is None


def test_read_pod_reads_what_reservations_need() -> None:
    raw = pod_object("p", uid="u", node_name="n0", phase="Running", ready=True, deleting=True)
    info = read_pod(raw, now=NOW)
    assert info is not None
    assert (info.key, info.node_name, info.phase) == ("serving/p", "n0", "Running")
    assert info.ready and info.terminating
    assert info.demand is not None and info.demand.gpus == 1


def _broken() -> dict[str, Any]:
    raw = report_object(gpu_node("n0"))
    raw["status"]["gpus"][0]["memory"]["totalBytes"] = "80Gi"
    return raw


REPORT_CASES = {
    "no-name": ({"status": {}}, None, ""),
    "no-status": ({"metadata": {"name": "n0"}}, "n0", "has no status yet"),
    "bad-status": (_broken(), "n0", "totalBytes"),
    "valid": (report_object(gpu_node("n0")), "n0", ""),
}


@pytest.mark.parametrize(("raw", "name", "problem"), REPORT_CASES.values(), ids=REPORT_CASES.keys())
def test_read_report(raw: dict[str, Any], name: str | None, problem: str) -> None:
    report = read_report(raw)
    if name is None:
        assert report is None
        return
    assert report is not None and report.name == name
    assert (report.node is None) == bool(problem)
    assert problem in report.problem
    if report.node is not None:
        assert report.node.lease_renewed_at is None, "Lease facts come from the Lease watch"


FREE_CASES = {
    "two-free": (NodeReport("n", node=gpu_node("n", gpus=2)), 2),
    "one-held": (NodeReport("n", node=gpu_node("n", gpus=2, held={0: "pod-a"})), 1),
    "unhealthy": (NodeReport("n", node=gpu_node("n", gpus=1, unhealthy=(0,))), 0),
    "invalid-report": (NodeReport("n", problem="GPU report is invalid"), 0),
}


@pytest.mark.parametrize(("report", "free"), FREE_CASES.values(), ids=FREE_CASES.keys())
def test_free_gpus(report: NodeReport, free: int) -> None:
    assert report.free_gpus == free
