"""Priorities and preemption in the simulator: kube-scheduler's own choice of victims against
vramfit's preempt verb, on a full pool of small and large GPUs."""

from __future__ import annotations

import json

import pytest

from placement.fields import InputError
from simulator.engine import Engine, simulate
from simulator.metrics import summarize
from simulator.render import table, to_json
from simulator.scenario import Scenario
from simulator.scenario_files import builtin_scenario, scenario_from_text

SETTINGS = """
settings:
  schedulingCycle: 0s
  bindLatency: 0s
  admissionDelay: 0s
  containerStart: 0s
  terminationGrace: 2s
  agentInterval: 1s
"""

POOL = """
  - name: {name}
    nodes: 1
    product: TEST-GPU-{gib}GB
    gpus: 2
    memoryPerGpu: {gib}Gi
    nvlink: all
    cpu: 64
    memory: 256Gi
    localDiskBandwidth: 2Gi
    remoteBandwidth: 1Gi
    reservedPerGpu: 0
    pricePerHour: 2
"""


def full_pool(*, batch: int = 10, chat: int = 100) -> Scenario:
    """A 16 GiB node and a 32 GiB node, two GPUs each, filled by four one-GPU batch pods at
    priority ``batch``; a one-GPU chat pod needing 20 GiB (the large node only) arrives at
    30 s at priority ``chat``. The small node's name sorts first: kube-scheduler's last tie
    breaker (here the first node by name, in kube-scheduler map order) picks it."""
    pools = POOL.format(name="n16", gib=16) + POOL.format(name="n32", gib=32)
    services = f"""
services:
  - {{name: batch, model: org/b, modelSize: 4Gi, gpus: 1, vramPerGpu: 8Gi, initTime: 1s, cpu: 1,
     memory: 1Gi, minReplicas: 4, maxReplicas: 4, priority: {batch},
     traffic: {{pattern: constant, rate: 4}}}}
  - {{name: chat, model: org/c, modelSize: 16Gi, gpus: 1, vramPerGpu: 20Gi, initTime: 1s, cpu: 1,
     memory: 1Gi, maxReplicas: 1, priority: {chat},
     traffic: {{pattern: burst, start: 30s, rate: 1}}}}
"""
    text = f"name: full\nduration: 10m\n{SETTINGS}pools:{pools}{services}"
    return scenario_from_text(text, "full")


def evictions(scenario: Scenario, policy: str) -> list[tuple[str, str, bool]]:
    engine = Engine(scenario, policy, seed=1)
    engine.run()
    return [
        (e.victim.service.spec.name, e.node.name, e.wasted) for e in engine.preemption.evictions
    ]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        pytest.param(
            "default",
            [("batch", "n16-0", True)],
            id="default-evicts-on-the-small-node-for-nothing",
        ),
        pytest.param("vramfit", [("batch", "n32-0", False)], id="vramfit-evicts-where-it-fits"),
    ],
)
def test_who_is_evicted(policy: str, expected: list[tuple[str, str, bool]]) -> None:
    assert evictions(full_pool(), policy) == expected


@pytest.mark.parametrize(
    ("batch", "chat"),
    [
        pytest.param(10, 10, id="equal-priorities-never-preempt"),
        pytest.param(100, 10, id="lower-priority-never-preempts"),
    ],
)
@pytest.mark.parametrize("policy", ["default", "vramfit"])
def test_no_preemption_without_a_higher_priority(policy: str, batch: int, chat: int) -> None:
    assert evictions(full_pool(batch=batch, chat=chat), policy) == []


def test_the_summary_counts_evictions_waste_and_the_top_priority_cold_start() -> None:
    rows = {s.policy: s for s in map(summarize, simulate(full_pool(), ("default", "vramfit")))}
    assert (rows["default"].evictions, rows["default"].wasted_evictions) == (1, 1)
    assert rows["default"].failed_loads > 0  # the chat pod runs out of memory on 16 GiB
    assert rows["default"].top_priority_cold_starts == 1
    assert rows["default"].top_priority_cold_start_p50_s == 10 * 60 - 30  # never Ready
    v = rows["vramfit"]
    assert (v.evictions, v.wasted_evictions, v.failed_loads) == (1, 0, 0)
    assert v.top_priority_cold_start_p50_s is not None and v.top_priority_cold_start_p50_s < 60


def test_the_report_shows_preemption_only_with_priorities() -> None:
    with_priorities = [summarize(r) for r in simulate(full_pool(), ("vramfit",))]
    without = [summarize(r) for r in simulate(full_pool(batch=0, chat=0), ("vramfit",))]
    headers = [c.header for c in table(full_pool(), 1, with_priorities).columns]
    assert "evicted\n(wasted)" in headers
    assert "evicted\n(wasted)" not in [c.header for c in table(full_pool(), 1, without).columns]
    report = json.loads(to_json(full_pool(), 1, with_priorities))
    assert report["policies"][0]["preemption"]["evictions"] == 1
    assert report["policies"][0]["preemption"]["topPriorityColdStarts"] == 1


def test_a_victim_is_always_of_lower_priority_and_vramfit_never_evicts_where_it_cannot_fit() -> (
    None
):
    scenario = builtin_scenario("priority-preemption")
    for policy in ("default", "vramfit"):
        engine = Engine(scenario, policy, seed=scenario.seed)
        run = engine.run()
        for e in engine.preemption.evictions:
            assert e.victim.service.spec.priority < e.preemptor.service.spec.priority
            if policy == "vramfit":
                assert e.node.type.shape.vram_per_gpu >= e.preemptor.service.spec.vram_per_gpu
                assert not e.wasted
        if policy == "vramfit":
            assert run.out_of_memory == 0


def test_the_builtin_scenario_shows_the_difference() -> None:
    scenario = builtin_scenario("priority-preemption")
    rows = {s.policy: s for s in map(summarize, simulate(scenario, ("default", "vramfit")))}
    assert rows["default"].wasted_evictions > 0
    assert rows["default"].failed_loads > 0
    assert rows["vramfit"].wasted_evictions == 0
    assert rows["vramfit"].failed_loads == 0
    assert rows["vramfit"].top_priority_cold_start_p95_s is not None
    assert rows["default"].top_priority_cold_start_p95_s is not None
    assert (
        rows["vramfit"].top_priority_cold_start_p95_s
        < rows["default"].top_priority_cold_start_p95_s
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("high", "priority", id="not-a-number"),
        pytest.param("1.5", "priority", id="not-whole"),
        pytest.param("2000000000", "priority", id="above-the-highest-user-priority"),
    ],
)
def test_a_bad_priority_is_refused(value: str, message: str) -> None:
    text = (
        "name: bad\nduration: 1m\npools:\n  - {name: a, type: a100-80gb-8, nodes: 1}\n"
        "services:\n  - {name: s, model: org/m, modelSize: 1Gi, gpus: 1, "
        f"priority: {value}, traffic: {{pattern: constant, rate: 1}}}}\n"
    )
    with pytest.raises(InputError, match=message):
        scenario_from_text(text, "bad")


def two_large_nodes() -> Scenario:
    """Two 32 GiB nodes, four GPUs each, filled by eight one-GPU batch pods at priority 10; two
    one-GPU chat services (20 GiB, priority 100) arrive together at 30 s and preempt."""
    pools = (
        POOL.format(name="n32", gib=32)
        .replace("nodes: 1", "nodes: 2")
        .replace("gpus: 2", "gpus: 4")
    )
    chat = """
  - {{name: chat-{i}, model: org/c{i}, modelSize: 16Gi, gpus: 1, vramPerGpu: 20Gi, initTime: 1s,
     cpu: 1, memory: 1Gi, maxReplicas: 1, priority: 100,
     traffic: {{pattern: burst, start: 30s, rate: 1}}}}"""
    services = (
        """
services:
  - {name: batch, model: org/b, modelSize: 4Gi, gpus: 1, vramPerGpu: 8Gi, initTime: 1s, cpu: 1,
     memory: 1Gi, minReplicas: 8, maxReplicas: 8, priority: 10,
     traffic: {pattern: constant, rate: 8}}"""
        + chat.format(i=0)
        + chat.format(i=1)
    )
    text = f"name: two\nduration: 10m\n{SETTINGS}pools:{pools}{services}\n"
    return scenario_from_text(text, "two")


@pytest.mark.parametrize("policy", ["vramfit", "vramfit-binpack", "vramfit-spread"])
def test_two_preemptors_at_once_load_on_different_nodes(policy: str) -> None:
    # kube-scheduler counts the first one on its nominated node and offers two victims there
    # for the second, one on the other node. vramfit's view holds the first one's room too (as
    # the extender's pod watch does), so it needs both victims there: kube-scheduler picks the
    # other node, and the two loads do not share a node.
    engine = Engine(two_large_nodes(), policy, seed=1)
    engine.run()
    chats = [e for e in engine.preemption.evictions if e.preemptor.service.spec.priority == 100]
    assert sorted(e.node.name for e in chats) == ["n32-0", "n32-1"]
    assert all(not e.wasted for e in chats)
