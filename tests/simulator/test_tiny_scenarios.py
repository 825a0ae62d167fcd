"""Tiny scenarios whose load times and outcomes are computed by hand, checked exactly.

Sizes and bandwidths are powers of two, so every time below is exact in floating point.
All control-plane delays are zero, so a pod starts loading at the instant it is created.
"""

from __future__ import annotations

import pytest

from simulator.engine import Engine, simulate
from simulator.metrics import RunResult, summarize
from simulator.scenario import Scenario
from simulator.scenario_files import scenario_from_text

ZERO_DELAYS = """
settings:
  schedulingCycle: 0s
  bindLatency: 0s
  admissionDelay: 0s
  containerStart: 0s
  terminationGrace: 0s
  agentInterval: 1s
"""

NODE = """
    product: TEST-GPU-16GB
    gpus: {gpus}
    memoryPerGpu: 16Gi
    nvlink: all
    cpu: 64
    memory: 256Gi
    localDiskBandwidth: 2Gi
    remoteBandwidth: 1Gi
    reservedPerGpu: 0
    pricePerHour: {price}
"""


def tiny(body: str, duration: str = "60s") -> Scenario:
    return scenario_from_text(f"name: tiny\nduration: {duration}\n{ZERO_DELAYS}{body}", "tiny")


SHARED = tiny(
    """
pools:
  - name: n
    nodes: 1
"""
    + NODE.format(gpus=4, price=4)
    + """
    cachedModels: [{model: org/c}]
services:
  - {name: a, model: org/a, modelSize: 8Gi, gpus: 1, vramPerGpu: 10Gi, initTime: 2s, cpu: 1,
     memory: 1Gi, traffic: {pattern: burst, start: 0s, rate: 1}}
  - {name: b, model: org/b, modelSize: 8Gi, gpus: 1, vramPerGpu: 10Gi, initTime: 2s, cpu: 1,
     memory: 1Gi, traffic: {pattern: burst, start: 4s, rate: 1}}
  - {name: c, model: org/c, modelSize: 8Gi, gpus: 1, vramPerGpu: 10Gi, initTime: 2s, cpu: 1,
     memory: 1Gi, traffic: {pattern: burst, start: 4s, rate: 1}}
"""
)


def by_service(run: RunResult) -> dict[str, tuple[float | None, float | None]]:
    return {p.service: (p.bound_at, p.ready_at) for p in run.pods}


@pytest.mark.parametrize("policy", ["default", "vramfit", "vramfit-binpack", "vramfit-spread"])
def test_shared_remote_link_splits_bandwidth(policy: str) -> None:
    # a loads 8 GiB alone at 1 GiB/s from 0 to 4 (4 GiB done); b joins the remote link at 4:
    # both move at 0.5 GiB/s, a's last 4 GiB take 8 s (done at 12), b has 4 GiB by then and
    # finishes alone at 16. c's weights are on the node's disk (2 GiB/s, a link of its own):
    # 8 GiB from 4 to 8. Each is Ready 2 s (initTime) after its load.
    run = Engine(SHARED, policy, seed=1).run()
    assert by_service(run) == {"a": (0.0, 14.0), "b": (4.0, 18.0), "c": (4.0, 10.0)}
    assert sorted((c.service, c.start, c.end, c.completed) for c in run.cold_starts) == [
        ("a", 0.0, 14.0, True),
        ("b", 4.0, 18.0, True),
        ("c", 4.0, 10.0, True),
    ]
    assert run.loads_series == ((0.0, 1), (4.0, 3), (8.0, 2), (12.0, 1), (16.0, 0))
    assert run.node_peaks == (("n-0", 3),)
    assert (run.loads_started, run.out_of_memory, run.overcommitted_loads) == (3, 0, 0)
    s = summarize(run)
    assert (s.cold_start_p50_s, s.cold_start_p95_s, s.cold_start_p99_s) == (14.0, 14.0, 14.0)
    # GPU-seconds held: a 60, b 56, c 56; $4 per node-hour over 4 GPUs is $1 per GPU-hour.
    assert s.gpu_hours == pytest.approx(172 / 3600)
    assert s.cost == pytest.approx(172 / 3600)
    assert s.gpu_hours_serving == pytest.approx((46 + 42 + 50) / 3600)
    assert s.fleet_cost == pytest.approx(4 * 60 / 3600)


OOM = tiny(
    """
pools:
  - name: n
    nodes: 1
"""
    + NODE.format(gpus=2, price=2)
    + """
services:
  - {name: big, model: org/big, modelSize: 24Gi, gpus: 1, initTime: 2s, cpu: 1, memory: 1Gi,
     vramPerGpu: 24Gi, traffic: {pattern: burst, start: 0s, rate: 1}}
""",
    duration="100s",
)

KV = tiny(
    """
pools:
  - name: n
    nodes: 1
"""
    + NODE.format(gpus=2, price=2)
    + """
services:
  - {name: kv, model: org/kv, modelSize: 8Gi, gpus: 1, initTime: 2s, cpu: 1, memory: 1Gi,
     vramPerGpu: 20Gi, traffic: {pattern: burst, start: 0s, rate: 1}}
""",
    duration="100s",
)


@pytest.mark.parametrize(
    ("scenario", "loads", "series"),
    [
        # 24 GiB of weights on a 16 GiB GPU: the server dies when 16 GiB are in, 16 s into a
        # load at 1 GiB/s; CrashLoopBackOff restarts it 10, 20, 40 s later (at 26, 62, 118).
        pytest.param(
            OOM,
            (0.0, 26.0, 62.0),
            ((0.0, 1), (16.0, 0), (26.0, 1), (42.0, 0), (62.0, 1), (78.0, 0)),
            id="weights-do-not-fit",
        ),
        # 8 GiB of weights fit, the 20 GiB it needs with its KV cache do not: the whole load
        # completes (8 s), then allocation fails; restarts at 18, 46, 94.
        pytest.param(
            KV,
            (0.0, 18.0, 46.0, 94.0),
            ((0.0, 1), (8.0, 0), (18.0, 1), (26.0, 0), (46.0, 1), (54.0, 0), (94.0, 1)),
            id="kv-cache-does-not-fit",
        ),
    ],
)
def test_default_crash_loops_out_of_memory(
    scenario: Scenario, loads: tuple[float, ...], series: tuple[tuple[float, int], ...]
) -> None:
    run = Engine(scenario, "default", seed=1).run()
    assert run.loads_series == series
    assert run.loads_started == len(loads)
    ooms = sum(1 for _, n in series if n == 0)
    assert run.out_of_memory == ooms
    assert run.overcommitted_loads == len(loads)
    (pod,) = run.pods
    assert (pod.bound_at, pod.ready_at, pod.restarts) == (0.0, None, ooms)
    (cold,) = run.cold_starts
    assert (cold.start, cold.end, cold.completed) == (0.0, 100.0, False)
    assert summarize(run).overcommitted_pods == 1


@pytest.mark.parametrize("scenario", [OOM, KV], ids=["weights-do-not-fit", "kv-cache-does-not-fit"])
@pytest.mark.parametrize("policy", ["vramfit", "vramfit-binpack", "vramfit-spread"])
def test_vramfit_leaves_a_pod_that_fits_nowhere_pending(scenario: Scenario, policy: str) -> None:
    run = Engine(scenario, policy, seed=1).run()
    assert (run.loads_started, run.out_of_memory, run.overcommitted_loads) == (0, 0, 0)
    (pod,) = run.pods
    assert pod.bound_at is None
    assert pod.waited
    assert "needs 1 GPU(s) with at least" in pod.last_reason
    s = summarize(run)
    assert (s.pods_waited, s.pending_at_end, s.pending_max_s) == (1, 1, 100.0)
    assert s.gpu_hours == 0.0


MIXED = tiny(
    """
pools:
  - name: big
    nodes: 1
    product: TEST-GPU-32GB
    gpus: 2
    memoryPerGpu: 32Gi
    cpu: 16
    memory: 256Gi
    remoteBandwidth: 1Gi
    reservedPerGpu: 0
    pricePerHour: 8
  - name: small
    nodes: 1
    product: TEST-GPU-16GB
    gpus: 2
    memoryPerGpu: 16Gi
    cpu: 64
    memory: 256Gi
    remoteBandwidth: 1Gi
    reservedPerGpu: 0
    pricePerHour: 2
services:
  - {name: m, model: org/m, modelSize: 20Gi, gpus: 1, vramPerGpu: 24Gi, initTime: 2s, cpu: 4,
     memory: 16Gi, traffic: {pattern: burst, start: 0s, rate: 1}}
""",
    duration="100s",
)


def test_default_prefers_the_node_with_more_cpu_left_and_runs_out_of_memory() -> None:
    # LeastAllocated: big (16 cores) keeps 75% of its CPU, small (64 cores) 93%; memory and
    # topology spread are equal, so the 16 GiB node wins: OOM at 16 GiB of 20 (16 s), then at
    # 42 s and 78 s after restarts at 26 and 62.
    default, vramfit = simulate(MIXED, ("default", "vramfit"), seed=1)
    (pod,) = default.pods
    assert pod.node == "small-0"
    assert default.out_of_memory == 3
    assert default.loads_series[:3] == ((0.0, 1), (16.0, 0), (26.0, 1))
    # vramfit knows the 16 GiB GPUs can never hold it: 20 GiB in 20 s, Ready at 22.
    (pod,) = vramfit.pods
    assert (pod.node, pod.bound_at, pod.ready_at) == ("big-0", 0.0, 22.0)
    assert vramfit.out_of_memory == 0
    assert summarize(vramfit).cost == pytest.approx(4 * 100 / 3600)


OUT_OF_BAND_BODY = (
    """
pools:
  - name: n
    nodes: 1
"""
    + NODE.format(gpus=2, price=2)
    + """
outOfBand: [{node: n-0, gpu: 0, memory: 8Gi}]
services:
  - {name: o, model: org/o, modelSize: 10Gi, gpus: 1, vramPerGpu: 12Gi, initTime: 2s, cpu: 1,
     memory: 1Gi, traffic: {pattern: burst, start: 0s, rate: 1}}
"""
)
OUT_OF_BAND = tiny(OUT_OF_BAND_BODY, duration="30s")


def test_memory_held_outside_kubernetes() -> None:
    # GPU 0 has 8 GiB in use by a process the device plugin does not know. The kubelet lists
    # the free GPUs in a random order; with this seed the plugin hands out GPU 0: the server
    # dies with 8 of its 10 GiB loaded (8 s), and again after its restart at 18 (at 26).
    # vramfit cannot tell the kubelet which GPU to use, and either may be handed out: it
    # refuses the node and names the GPU whose memory no pod uses.
    default, vramfit = simulate(OUT_OF_BAND, ("default", "vramfit"), seed=4)
    assert default.loads_series == ((0.0, 1), (8.0, 0), (18.0, 1), (26.0, 0))
    assert (default.out_of_memory, default.pods[0].ready_at) == (2, None)
    (pod,) = vramfit.pods
    assert (vramfit.out_of_memory, pod.bound_at) == (0, None)
    assert "GPU 0 has 8 GiB free, 8 GiB used by no pod" in pod.last_reason


def test_memory_held_outside_kubernetes_sends_vramfit_to_a_clean_node() -> None:
    # The same leak on n-0, and a clean n-1: the default scheduler ties the two and, with this
    # seed, the kubelet of n-0 hands out GPU 0; vramfit takes n-1: 10 s of loading, Ready at 12.
    two = tiny(OUT_OF_BAND_BODY.replace("nodes: 1", "nodes: 2"), duration="30s")
    default, vramfit = simulate(two, ("default", "vramfit"), seed=4)
    assert (default.pods[0].node, default.out_of_memory) == ("n-0", 2)
    assert (vramfit.pods[0].node, vramfit.out_of_memory, vramfit.pods[0].ready_at) == (
        "n-1",
        0,
        12.0,
    )


def test_crash_loop_back_off_stays_at_its_cap_for_days() -> None:
    # CrashLoopBackOff doubles from 10 s to its 300 s cap: crashes at 16, 42, 78, 134, 230,
    # 406, then every 316 s (300 s back-off + 16 s of loading), for ten days.
    long = OOM.with_duration(10 * 86400.0)
    run = Engine(long, "default", seed=1).run()
    (pod,) = run.pods
    expected = 6 + (10 * 86400 - 406) // 316
    assert pod.restarts == run.out_of_memory == expected
    assert pod.restarts > 1024
