"""A pod vramfit refused is retried once an agent's report shows capacity back, as the
extender's Requeuer wakes it, not only on the next pod event or after five minutes."""

from __future__ import annotations

import dataclasses

import pytest

from placement.model import GIB, GpuState
from simulator.engine import Engine, simulate
from simulator.vramfit_policy import capacity_back
from tests.simulator.test_tiny_scenarios import NODE, tiny

GPU = GpuState("GPU-0", 0, "TEST", 16 * GIB, 16 * GIB)
HELD = dataclasses.replace(GPU, holder_pod_uid="pod-a", free_bytes=6 * GIB)
LOADING = dataclasses.replace(HELD, free_bytes=4 * GIB)

# name: old report's GPUs, new report's GPUs, capacity back
CASES: dict[str, tuple[tuple[GpuState, ...], tuple[GpuState, ...], bool]] = {
    "a-held-gpu-is-released": ((HELD,), (dataclasses.replace(HELD, holder_pod_uid=None),), True),
    "free-memory-rises": ((LOADING,), (HELD,), True),
    "a-load-takes-memory": ((HELD,), (LOADING,), False),
    "a-gpu-is-taken": ((GPU,), (HELD,), False),
    "unknown-free-memory-becomes-known": (
        (dataclasses.replace(GPU, free_bytes=None),),
        (GPU,),
        True,
    ),
    "nothing-changes": ((HELD,), (HELD,), False),
}


@pytest.mark.parametrize("case", CASES)
def test_capacity_back(case: str) -> None:
    old, new, back = CASES[case]
    assert capacity_back(old, new) is back


# One 1-GPU node: "a" holds it until it scales to zero; "b" asks for it from 30 s. The pod
# terminates 5 s after its deletion (the agent reports the GPU free later still), and the
# scheduler retries a refused pod only after an hour unless something wakes it.
ONE_GPU = tiny(
    """
pools:
  - name: n
    nodes: 1
"""
    + NODE.format(gpus=1, price=1)
    + """
services:
  - {name: a, model: org/a, modelSize: 8Gi, gpus: 1, vramPerGpu: 10Gi, initTime: 1s, cpu: 1,
     memory: 1Gi, scaleToZeroAfter: 30s,
     traffic: {pattern: burst, start: 0s, duration: 60s, rate: 1}}
  - {name: b, model: org/b, modelSize: 8Gi, gpus: 1, vramPerGpu: 10Gi, initTime: 1s, cpu: 1,
     memory: 1Gi, traffic: {pattern: burst, start: 30s, duration: 20m, rate: 1}}
""",
    duration="20m",
)
SLOW_RETRY = dataclasses.replace(
    ONE_GPU,
    settings=dataclasses.replace(
        ONE_GPU.settings, unschedulable_timeout_s=3600.0, termination_grace_s=5.0
    ),
)


def test_a_refused_pod_binds_once_the_report_shows_the_gpu_free() -> None:
    (run,) = simulate(SLOW_RETRY, ("vramfit",), seed=1)
    a = next(p for p in run.pods if p.service == "a")
    b = next(p for p in run.pods if p.service == "b")
    assert b.waited and b.bound_at is not None
    # within the agent's next report and the pod's back-off, not the hour of the timeout
    s = SLOW_RETRY.settings
    assert a.end_at <= b.bound_at <= a.end_at + s.agent_interval_s + s.pod_backoff_max_s


def test_without_the_requeuer_the_pod_waits_for_the_timeout() -> None:
    engine = Engine(SLOW_RETRY, "vramfit", seed=1)
    assert engine.vramfit is not None
    engine.vramfit.requeue = lambda kind: None
    b = next(p for p in engine.run().pods if p.service == "b")
    assert b.bound_at is None
