"""When the agent writes: meaningful change, memory threshold, minimum interval, maximum age."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodeagent.change import ChangeSettings, WriteReason, memory_moved, structure, write_reason
from placement.model import GIB, CachedModel, MigDevice, NodeState, PodMemory
from tests.builders import gpu, node

S = ChangeSettings(memory_threshold_bytes=GIB // 2, min_interval_s=5.0, max_age_s=60.0)


BASE = node([gpu(0, free=70)])


@pytest.mark.parametrize(
    ("new", "dt", "reason"),
    [
        pytest.param(BASE, 1.0, None, id="nothing-changed"),
        pytest.param(node([gpu(0, free=70 - 100 / 1024)]), 10.0, None, id="small-move"),
        pytest.param(node([gpu(0, free=69)]), 10.0, WriteReason.MEMORY, id="big-move"),
        pytest.param(node([gpu(0, free=69)]), 2.0, None, id="big-move-too-soon"),
        pytest.param(BASE, 60.0, WriteReason.MAX_AGE, id="max-age"),
        pytest.param(node([gpu(0, free=70, healthy=False)]), 0.1, WriteReason.CHANGED, id="health"),
        pytest.param(
            node([gpu(0, free=70, holder="pod-1")]), 0.1, WriteReason.CHANGED, id="holder"
        ),
        pytest.param(node([gpu(0, free=None)]), 0.1, WriteReason.CHANGED, id="reading-lost"),
        pytest.param(
            node([gpu(0, free=70, pod_memory=[PodMemory("p", 1)])]),
            0.1,
            WriteReason.CHANGED,
            id="new-pod",
        ),
        pytest.param(
            dataclasses.replace(BASE, agent_error="NVML unavailable"),
            0.1,
            WriteReason.CHANGED,
            id="agent-error",
        ),
        pytest.param(
            dataclasses.replace(BASE, cached_models=(CachedModel("m", 1),)),
            0.1,
            WriteReason.CHANGED,
            id="cache",
        ),
        pytest.param(dataclasses.replace(BASE, observed_at=50.0), 1.0, None, id="time-alone"),
    ],
)
def test_write_reason(new: NodeState, dt: float, reason: WriteReason | None) -> None:
    assert write_reason(BASE, 100.0, new, 100.0 + dt, S) is reason


def test_first_write() -> None:
    assert write_reason(None, 0.0, BASE, 0.0, S) is WriteReason.FIRST


def test_drift_accumulates_against_the_last_write() -> None:
    """Hysteresis is relative to what was written, so a slow drift is written eventually."""
    written, at = BASE, 0.0
    writes = 0
    for step in range(1, 40):
        new = node([gpu(0, free=70 - step * 50 / 1024)])
        if write_reason(written, at, new, step * 10.0, S):
            written, at, writes = new, step * 10.0, writes + 1
    assert writes >= 3
    assert abs((written.gpus[0].free_bytes or 0) - (70 * GIB - 39 * 50 * 1024**2)) < GIB


@given(free=st.lists(st.integers(0, 80 * GIB), min_size=1, max_size=300))
@settings(max_examples=50, deadline=None)
def test_memory_only_writes_are_at_least_min_interval_apart(free: list[int]) -> None:
    written: NodeState | None = None
    at = -1e9
    times = []
    for i, f in enumerate(free):
        now = float(i)
        new = node([gpu(0, free=f / GIB)])
        if write_reason(written, at, new, now, S) is not None:
            written, at = new, now
            times.append(now)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g >= S.min_interval_s for g in gaps)


def test_structure_ignores_amounts_and_memory_moved_measures_them() -> None:
    assert structure(node([gpu(0, free=1)])) == structure(node([gpu(0, free=2)]))
    assert memory_moved(node([gpu(0, free=10)]), node([gpu(0, free=7)])) == 3 * GIB


MIG_A = MigDevice("MIG-1", 1, 0, 20 * GIB, 10 * GIB, 10 * GIB)
MIG_BASE = node([gpu(0, free=70, mig=True, mig_devices=[MIG_A])])


def mig(**device: object) -> NodeState:
    changed = dataclasses.replace(MIG_A, **device)  # type: ignore[arg-type]
    return node([gpu(0, free=70, mig=True, mig_devices=[changed])])


@pytest.mark.parametrize(
    ("new", "dt", "reason"),
    [
        pytest.param(mig(), 1.0, None, id="nothing-changed"),
        pytest.param(mig(free_bytes=9 * GIB, used_bytes=11 * GIB), 10.0, WriteReason.MEMORY,
                     id="mig-memory-moved"),
        pytest.param(mig(free_bytes=9 * GIB), 2.0, None, id="mig-memory-moved-too-soon"),
        pytest.param(mig(free_bytes=None), 0.1, WriteReason.CHANGED, id="mig-reading-lost"),
        pytest.param(mig(uuid="MIG-2", gpu_instance_id=2), 0.1, WriteReason.CHANGED,
                     id="mig-reconfigured"),
        pytest.param(node([gpu(0, free=70, mig=True, mig_devices=[MIG_A, dataclasses.replace(MIG_A, uuid="MIG-2")])]),
                     0.1, WriteReason.CHANGED, id="mig-device-added"),
    ],
)  # fmt: skip
def test_write_reason_with_mig_devices(
    new: NodeState, dt: float, reason: WriteReason | None
) -> None:
    assert write_reason(MIG_BASE, 100.0, new, 100.0 + dt, S) is reason
