"""Invariants over random clusters and traffic: vramfit never over-commits a GPU, and its pruned
decisions equal decisions over every node (the engine's check mode compares each one)."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from placement.model import NvlinkMode
from placement.shape import NodeShape, NvLink
from simulator.catalog import NodeType
from simulator.engine import POLICIES, Engine
from simulator.scenario import OutOfBand, Pool, Scenario, Service, Traffic
from simulator.settings import Settings

GIB = 1024**3
MIB = 1024**2


def nvlink(kind: str, n: int) -> NvLink:
    """NVLink of ``n`` GPUs: all joined, none, or in pairs."""
    if kind == "all":
        return NvLink.all(n)
    if kind == "none":
        return NvLink.none(n)
    return NvLink.of(tuple(tuple(range(i, min(n, i + 2))) for i in range(0, n, 2)), n)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    pools = []
    for i in range(draw(st.integers(1, 3))):
        gpus = draw(st.sampled_from([1, 2, 4, 8, 8, 8]))
        t = NodeType(
            name=f"t{i}",
            shape=NodeShape(
                product=draw(st.sampled_from(["GPU-A", "GPU-B"])),
                gpus=gpus,
                vram_per_gpu=draw(st.sampled_from([16, 24, 40, 48, 80, 80])) * GIB,
                nvlink=nvlink(draw(st.sampled_from(["all", "none", "pairs"])), gpus),
                local_disk_bytes_per_s=draw(st.sampled_from([1, 2, 4])) * GIB,
                remote_bytes_per_s=draw(st.sampled_from([0.5, 1, 2])) * GIB,
            ),
            cpu_milli=draw(st.sampled_from([32_000, 96_000, 192_000])),
            memory_bytes=draw(st.sampled_from([256, 1024])) * GIB,
            reserved_per_gpu=draw(st.sampled_from([0, 512 * MIB, 1 * GIB])),
            price_per_hour=10.0,
        )
        pools.append(Pool(f"p{i}", t, draw(st.integers(1, 3))))
    largest = max(p.node_type.shape.gpus for p in pools)
    services = []
    for j in range(draw(st.integers(1, 8))):
        size = draw(st.sampled_from([2, 8, 8, 15, 15, 30, 62, 131])) * GIB
        gpus = draw(st.sampled_from([g for g in (1, 2, 4, 8) if g <= largest]))
        headroom = draw(st.sampled_from([0.0, 0.1, 0.2, 0.5]))
        if draw(st.booleans()):
            traffic = Traffic(
                "burst",
                rate=draw(st.sampled_from([0.5, 1.0, 3.0])),
                start=(0.0, draw(st.sampled_from([0.0, 10.0, 30.0, 120.0]))),
                duration_s=draw(st.sampled_from([None, 300.0, 900.0])),
            )
        else:
            traffic = Traffic(
                "onoff",
                rate=draw(st.sampled_from([0.5, 2.0])),
                on_mean_s=draw(st.sampled_from([120.0, 600.0])),
                off_mean_s=draw(st.sampled_from([120.0, 600.0])),
            )
        services.append(
            Service(
                name=f"s{j}",
                model_id=f"org/m{draw(st.integers(0, 3))}",
                model_bytes=size,
                gpus=gpus,
                vram_per_gpu=math.ceil(size / gpus * (1 + headroom)),
                traffic=traffic,
                nvlink=draw(st.sampled_from(list(NvlinkMode))),
                products=draw(st.sampled_from([(), ("GPU-A",)])),
                init_s=draw(st.sampled_from([0.0, 10.0])),
                max_replicas=draw(st.integers(1, 3)),
                scale_to_zero_after_s=draw(st.sampled_from([30.0, 300.0])),
                cpu_milli=4000 * gpus,
                memory_bytes=32 * GIB * gpus,
                policy=draw(st.sampled_from(["", "binpack", "spread"])),
            )
        )
    sizes: dict[str, int] = {}
    for svc in services:
        sizes.setdefault(svc.model_id, svc.model_bytes)
    models = sorted(sizes)
    pools = [
        Pool(p.name, p.node_type, p.nodes, tuple((m, None) for m in models if draw(st.booleans())))
        if draw(st.booleans())
        else p
        for p in pools
    ]
    oob = []
    for p in pools:
        for name in p.node_names():
            if draw(st.integers(0, 3)) == 0:
                room = p.node_type.shape.vram_per_gpu - p.node_type.reserved_per_gpu
                oob.append(
                    OutOfBand(name, draw(st.integers(0, p.node_type.shape.gpus - 1)), room // 2)
                )
    s = Settings(
        agent_interval_s=draw(st.sampled_from([1.0, 5.0, 10.0, 30.0])),
        scheduling_cycle_s=draw(st.sampled_from([0.0, 0.01])),
        bind_latency_s=draw(st.sampled_from([0.0, 0.05, 2.0])),
        admission_delay_s=draw(st.sampled_from([0.0, 1.0, 5.0])),
        container_start_s=draw(st.sampled_from([0.0, 4.0])),
        termination_grace_s=draw(st.sampled_from([0.0, 5.0, 30.0])),
        scale_down_delay_s=draw(st.sampled_from([0.0, 60.0])),
        cache_on_load=draw(st.booleans()),
        reservation_end=draw(st.sampled_from(["held", "loaded"])),
    )
    return Scenario(
        name="random",
        duration_s=draw(st.sampled_from([900.0, 2400.0])),
        pools=tuple(pools),
        services=tuple(services),
        seed=draw(st.integers(0, 1000)),
        settings=s,
        out_of_band=tuple(oob),
        model_sizes=tuple(sorted(sizes.items())),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scenario=scenarios(), policy=st.sampled_from(["vramfit", "vramfit-binpack", "vramfit-spread"])
)
def test_vramfit_never_overcommits_a_gpu(scenario: Scenario, policy: str) -> None:
    # The kubelet gives each pod whatever set the device plugin's rule draws, not the GPUs
    # vramfit predicted (it may miss): every set the rule may give must hold the pod.
    run = Engine(scenario, policy, seed=scenario.seed, check=True).run()
    assert run.overcommitted_loads == 0
    assert run.out_of_memory == 0
    assert run.predictions_missed <= sum(1 for p in run.pods if p.bound_at is not None)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_vramfit_decide_and_decide_fleet_place_alike(scenario: Scenario) -> None:
    fleet = Engine(scenario, "vramfit", seed=scenario.seed).run()
    reference = Engine(scenario, "vramfit", seed=scenario.seed, reference=True).run()
    assert [(p.uid, p.node, p.bound_at, p.ready_at) for p in fleet.pods] == [
        (p.uid, p.node, p.bound_at, p.ready_at) for p in reference.pods
    ]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_default_overcommits_only_by_memory(scenario: Scenario) -> None:
    # The device plugin never hands a GPU to two pods (the engine raises if it would); what
    # the default scheduler over-commits is memory, and every such load fails or is cut short.
    run = Engine(scenario, "default", seed=scenario.seed).run()
    assert run.predictions_missed == 0  # the default scheduler predicts no GPUs
    assert run.out_of_memory <= run.overcommitted_loads
    assert run.overcommitted_loads - run.out_of_memory <= len(run.pods)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(), policy=st.sampled_from(POLICIES))
def test_not_recomputing_unchanged_retries_changes_nothing(scenario: Scenario, policy: str) -> None:
    fast = Engine(scenario, policy, seed=scenario.seed).run()
    slow = Engine(scenario, policy, seed=scenario.seed, repeat_unchanged=True).run()
    assert fast.pods == slow.pods
    assert fast.cold_starts == slow.cold_starts
    assert fast.loads_series == slow.loads_series
    assert fast.events == slow.events
