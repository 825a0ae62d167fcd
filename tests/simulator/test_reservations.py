"""The simulated extender keeps reservations by the shared rule of ``placement.lifecycle``.

A load counts as in flight until its pod is Ready, even after the agent reports the pod
holding its GPUs, exactly as the extender counts it; the scenario below is decided by that.
"""

from __future__ import annotations

import dataclasses

import pytest

from placement.lifecycle import GONE, PodFacts
from simulator.cluster import Phase
from simulator.engine import Engine
from simulator.vramfit_policy import pod_facts
from tests.simulator.builders import sim_pod
from tests.simulator.test_tiny_scenarios import NODE, tiny

TWO_NODES = tiny(
    """
pools:
  - name: n
    nodes: 2
"""
    + NODE.format(gpus=4, price=4)
    + """
services:
  - {name: a, model: org/a, modelSize: 8Gi, gpus: 1, vramPerGpu: 10Gi, initTime: 2s, cpu: 1,
     memory: 1Gi, traffic: {pattern: burst, start: 0s, rate: 1}}
  - {name: b, model: org/b, modelSize: 8Gi, gpus: 1, vramPerGpu: 10Gi, initTime: 2s, cpu: 1,
     memory: 1Gi, traffic: {pattern: burst, start: 5s, rate: 1}}
"""
)


@pytest.mark.parametrize("end", ["held", "loaded"])
def test_a_load_the_agent_already_shows_is_in_flight_until_ready(end: str) -> None:
    # a loads 8 GiB at 1 GiB/s from 0 to 8, Ready at 10; its agent reports it holding its GPU
    # within a second. b arrives at 5, while a still loads: a's node scores
    # (binpack 5 x 2 + in-flight 5 x 3 + NVLink 10 x 2) / 10 = 4.5, the empty node
    # (2.5 x 2 + 10 x 3 + 10 x 2) / 10 = 5.5, so b goes to the empty node and loads alone.
    scenario = dataclasses.replace(
        TWO_NODES, settings=dataclasses.replace(TWO_NODES.settings, reservation_end=end)
    )
    run = Engine(scenario, "vramfit", seed=1).run()
    placed = {p.service: (p.node, p.bound_at, p.ready_at) for p in run.pods}
    assert placed == {"a": ("n-0", 0.0, 10.0), "b": ("n-1", 5.0, 15.0)}
    assert run.node_peaks == (("n-0", 1), ("n-1", 1))


FACTS = {
    "pending": (Phase.PENDING, PodFacts(phase="Pending")),
    "binding": (Phase.BINDING, PodFacts(phase="Pending")),
    "bound-not-started": (Phase.BOUND, PodFacts(phase="Pending")),
    "loading": (Phase.LOADING, PodFacts(phase="Running")),
    "initializing": (Phase.INITIALIZING, PodFacts(phase="Running")),
    "ready": (Phase.READY, PodFacts(phase="Running", ready=True)),
    "crashed": (Phase.CRASHED, PodFacts(phase="Running")),
    "terminating": (Phase.TERMINATING, PodFacts(phase="Running", terminating=True)),
    "gone": (Phase.GONE, GONE),
}


@pytest.mark.parametrize(("phase", "facts"), FACTS.values(), ids=FACTS.keys())
def test_pod_facts_as_the_api_server_would_show_them(phase: Phase, facts: PodFacts) -> None:
    assert pod_facts(sim_pod(phase)) == facts
