"""Tests of waking refused pods: the pure schedule (tables) and the requeuer's bookkeeping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from extender.objects import AgentLease, NodeReport
from extender.requeue import (
    A_REQUEUED_AT,
    CapacitySignals,
    Refusal,
    Requeuer,
    RequeueSettings,
    due,
)
from placement.nodegpustate import parse_time
from tests.extender.conftest import NOW, gpu_node, pod_object, pod_of

S = RequeueSettings(settle_s=0.0, min_interval_s=5.0, max_age_s=100.0, max_per_round=2)


@pytest.mark.parametrize(
    ("refusals", "now", "touch", "expired"),
    [
        pytest.param({}, 10.0, [], [], id="nothing-refused"),
        pytest.param({"a": Refusal("a", "ns", "a", 0.0)}, 1.0, ["a"], [], id="never-nudged"),
        pytest.param(
            {"a": Refusal("a", "ns", "a", 0.0, nudged_at=8.0)}, 10.0, [], [], id="nudged-recently"
        ),
        pytest.param(
            {"a": Refusal("a", "ns", "a", 0.0, nudged_at=5.0)}, 10.0, ["a"], [], id="interval-over"
        ),
        pytest.param(
            {"a": Refusal("a", "ns", "a", 0.0)}, 100.5, [], ["a"], id="refused-too-long-ago"
        ),
        pytest.param(
            {"a": Refusal("a", "ns", "a", 0.0, wake_pending=False)},
            10.0,
            [],
            [],
            id="no-change-since-last-touch",
        ),
        pytest.param(
            {
                "c": Refusal("c", "ns", "c", 3.0),
                "a": Refusal("a", "ns", "a", 1.0),
                "b": Refusal("b", "ns", "b", 2.0),
            },
            10.0,
            ["a", "b"],
            [],
            id="oldest-first-capped",
        ),
    ],
)
def test_due(
    refusals: dict[str, Refusal], now: float, touch: list[str], expired: list[str]
) -> None:
    todo, gone, _ = due(refusals, now, S)
    assert [r.uid for r in todo] == touch
    assert gone == expired


class FakeApi:
    """Stands in for the API server's pod patch endpoint."""

    def __init__(
        self,
        missing: set[str] | None = None,
        failing: set[str] | None = None,
        replaced: set[str] | None = None,
    ) -> None:
        self.patches: list[tuple[str, str, Mapping[str, Any]]] = []
        self.missing = missing or set()
        self.failing = failing or set()
        self.replaced = replaced or set()  # pods now of another UID than the one refused

    def patch_pod(self, namespace: str, name: str, patch: Mapping[str, Any]) -> object:
        if name in self.missing:
            raise _StatusError(404)
        if name in self.replaced and "uid" in patch["metadata"]:
            raise _StatusError(422)
        if name in self.failing:
            raise _StatusError(500)
        self.patches.append((namespace, name, patch))
        return {}


class _StatusError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_refused_pods_are_touched_once_per_interval_and_forgotten_when_placed() -> None:
    api, clock = FakeApi(), Clock()
    q = Requeuer(api.patch_pod, settings=S, clock=clock)
    q.refused("u1", "team", "llm-1")
    q.refused("u2", "team", "llm-2")
    assert q.run_once() == 0  # refused, but nothing has changed yet
    q.capacity_changed()
    assert q.run_once() == 2
    assert {p[1] for p in api.patches} == {"llm-1", "llm-2"}
    assert all(A_REQUEUED_AT in p[2]["metadata"]["annotations"] for p in api.patches)
    clock.now += 1
    q.capacity_changed()
    assert q.run_once() == 0  # rate-limited, but the wake-up is kept
    q.forget("u1")
    clock.now += 5
    assert q.run_once() == 1
    assert api.patches[-1][1] == "llm-2"
    assert q.waiting() == 1


def test_a_refusal_again_keeps_the_rate_limit() -> None:
    api, clock = FakeApi(), Clock()
    q = Requeuer(api.patch_pod, settings=S, clock=clock)
    q.refused("u1", "team", "llm-1")
    q.capacity_changed()
    assert q.run_once() == 1
    clock.now += 10
    q.refused("u1", "team", "llm-1")  # refused again: no news of capacity
    assert q.run_once() == 0


def test_deleted_pods_are_forgotten_and_failures_retried() -> None:
    api, clock = FakeApi(missing={"gone"}, failing={"flaky"}), Clock()
    q = Requeuer(api.patch_pod, settings=S, clock=clock)
    q.refused("u1", "team", "gone")
    q.refused("u2", "team", "flaky")
    q.capacity_changed()
    assert q.run_once() == 0
    assert q.waiting() == 1  # the 404 is forgotten, the 500 kept
    api.failing.clear()
    assert q.run_once() == 1


def test_pods_refused_too_long_ago_are_dropped() -> None:
    api, clock = FakeApi(), Clock()
    q = Requeuer(api.patch_pod, settings=S, clock=clock)
    q.refused("u1", "team", "old")
    q.capacity_changed()
    clock.now += 101
    assert q.run_once() == 0
    assert q.waiting() == 0


def _report(name: str, *holders: str | None, observed_at: float = NOW) -> NodeReport:
    """A report of ``name`` whose GPUs are held by ``holders`` (``None``: free)."""
    held = {i: h for i, h in enumerate(holders) if h is not None}
    node = gpu_node(name, gpus=len(holders), held=held, observed_at=observed_at)
    return NodeReport(name, node=node)


def _lease(node: str, renewed: str) -> AgentLease:
    return AgentLease(node, parse_time(renewed), 40.0)


def test_a_change_during_the_rate_limit_wakes_the_pod_when_the_interval_ends() -> None:
    api, clock = FakeApi(), Clock()
    q = Requeuer(api.patch_pod, settings=S, clock=clock)
    q.refused("u1", "team", "llm-1")
    q.capacity_changed()
    assert q.run_once() == 1  # e.g. the Lease came back, but the report was still stale
    clock.now += 1
    q.refused("u1", "team", "llm-1")
    q.capacity_changed()  # the fresh report arrives within the interval
    touched, next_at = q._round()
    assert touched == 0
    assert next_at == clock.now - 1 + S.min_interval_s
    clock.now += 4
    assert q.run_once() == 1


def _observed(name: str, at: str) -> NodeReport:
    return _report(name, "pod-a", observed_at=parse_time(at))


def test_a_report_that_was_stale_signals_when_fresh_again() -> None:
    clock = Clock()
    clock.now = 1_767_225_900.0  # 2026-01-01T00:05:00Z
    signals = CapacitySignals(max_report_age_s=120.0, clock=clock)
    assert signals.report("ADDED", _observed("n", "2026-01-01T00:04:30.000000Z"))
    # Same free GPUs, previous report fresh: no signal.
    assert not signals.report("MODIFIED", _observed("n", "2026-01-01T00:04:50.000000Z"))
    clock.now += 300  # the agent stopped; its last report is now five minutes old
    assert signals.report("MODIFIED", _observed("n", "2026-01-01T00:10:00.000000Z"))


def test_capacity_signals_fire_only_when_capacity_may_have_grown() -> None:
    signals = CapacitySignals(max_report_age_s=1e12)
    busy = _report("h100-0", "pod-a", "pod-b")
    freed = _report("h100-0", None, "pod-b")
    assert signals.report("ADDED", busy) is True  # a node seen for the first time
    assert signals.report("MODIFIED", busy) is False  # memory moved, nothing freed
    assert signals.report("MODIFIED", freed) is True
    assert signals.report("MODIFIED", busy) is False  # taken again
    # The report that shows a new pod's load (ending its reservation) also drops a pod that
    # was deleted meanwhile: as many free GPUs as before, more for the extender.
    swapped = _report("h100-0", "pod-c", "pod-b")
    assert signals.report("MODIFIED", swapped) is True
    assert signals.report("MODIFIED", swapped) is False
    assert signals.report("DELETED", busy) is False

    assert signals.lease("ADDED", _lease("h100-0", "2026-01-01T00:00:00.000000Z"))
    routine = _lease("h100-0", "2026-01-01T00:00:10.000000Z")
    assert signals.lease("MODIFIED", routine) is False
    back = _lease("h100-0", "2026-01-01T00:05:00.000000Z")
    assert signals.lease("MODIFIED", back) is True  # renewed after it had lapsed

    gone = pod_of(pod_object("p", uid="p"))
    assert CapacitySignals.pod("DELETED", gone) is True
    assert CapacitySignals.pod("MODIFIED", gone) is False


def test_the_wake_up_patch_names_the_pod_uid() -> None:
    """Regression: the requeue patch named the pod only by namespace and name, so a pod
    deleted and created again under the same name was annotated in its place."""
    api, clock = FakeApi(), Clock()
    q = Requeuer(api.patch_pod, settings=S, clock=clock)
    q.refused("u1", "team", "llm-1")
    q.capacity_changed()
    assert q.run_once() == 1
    assert api.patches[0][2]["metadata"]["uid"] == "u1"


def test_a_pod_replaced_under_the_same_name_is_not_touched_and_forgotten() -> None:
    """The API server refuses a patch whose metadata.uid is not the pod's (422, immutable
    field): the refusal is forgotten like a deleted pod's."""
    api, clock = FakeApi(replaced={"llm-1"}), Clock()
    q = Requeuer(api.patch_pod, settings=S, clock=clock)
    q.refused("u1", "team", "llm-1")
    q.capacity_changed()
    assert q.run_once() == 0
    assert api.patches == [] and q.waiting() == 0
