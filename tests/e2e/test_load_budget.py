"""End to end: the load budget and room for a large pod, live.

The extender runs with a 10 s load budget (``--load-budget``): at the simulated agents' 20 GiB/s
remote bandwidth, a node takes another cold load only while the bytes its cold loads have left
(the model size less what their pods' GPUs already hold, as the agents report it) and the new
pod's come to at most 200 GiB. A burst of 140 GiB loads is sampled from the agents' reports
while it lands: no node ever holds more than that. And a large pod let go in the middle of a
burst of small ones binds: the small ones kept off the last node it could use.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from controlplane.pytest_plugin import wait_for
from placement.model import GIB
from tests.e2e.bursts import Cluster, assert_no_double_booking, gpu_pod, is_bound

pytestmark = pytest.mark.integration

BUDGET_S = 10
REMOTE = 20 * GIB  # the world's node spec (tests.e2e.world.node_spec)
LOAD = 140 * GIB  # 141Gi of weights, at most its 2 x 70 GiB of memory


@pytest.fixture
def budgeted(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster's extender restarted with a short load budget (and back after)."""
    extender = cluster.extender
    shipped = extender.args
    extender.stop()
    extender.args = (*shipped, f"--load-budget={BUDGET_S}")
    extender.start()
    try:
        yield cluster
    finally:
        extender.stop()
        extender.args = shipped
        extender.start()


def loads_by_node(reports: dict[str, dict[str, Any]], uids: set[str]) -> dict[str, list[int]]:
    """By node, the bytes each of the ``uids`` pods holding GPUs there has still to load (the
    load budget's count: its load less the memory its GPUs report)."""
    out: dict[str, list[int]] = {}
    for name, status in reports.items():
        held: dict[str, int] = {}
        for gpu in status.get("gpus", []):
            holder = gpu.get("holderPodUID")
            if holder in uids:
                held.setdefault(holder, 0)
            for p in gpu.get("pods", []):
                if p["podUID"] in uids:
                    held[p["podUID"]] = held.get(p["podUID"], 0) + int(p["bytes"])
        left = [LOAD - b for b in held.values() if b < LOAD]
        if left:
            out[name] = left
    return out


def test_no_node_loads_beyond_its_budget(budgeted: Cluster, namespace: str) -> None:
    burst = budgeted.burst(namespace, "budget", 8, expected=8)
    worst: list[str] = []
    most = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal most
        while not stop.wait(0.2):
            try:
                uids = {p["metadata"]["uid"] for p in burst.live()}
                for node, left in loads_by_node(budgeted.reports(), uids).items():
                    most = max(most, len(left))
                    if len(left) > 1 and sum(left) > BUDGET_S * REMOTE:
                        worst.append(f"{node}: {len(left)} loads, {sum(left) / GIB:.0f} GiB left")
            except Exception:  # the API server may be busy: skip this sample
                continue

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        burst.scale()
        burst.wait_whole(180)
        wait_for(
            "every load to finish",
            lambda: (
                not loads_by_node(budgeted.reports(), {p["metadata"]["uid"] for p in burst.live()})
            ),
            timeout=120,
        )
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not worst, f"loads beyond the budget: {sorted(set(worst))[:8]}"
    assert most >= 1, "no load was seen in flight"
    metrics = budgeted.extender.metrics()
    assert 'vramfit_extender_node_rejections_total{reason="load-budget"}' in metrics
    assert_no_double_booking(burst.pods(), budgeted)


def test_a_large_pod_in_the_middle_of_a_burst_binds(cluster: Cluster, namespace: str) -> None:
    # 24 one-GPU pods and one 8-GPU pod fill the four H100 nodes exactly (70 GiB per GPU: no
    # A100 can take them). The large pod is created first, held back by a scheduling gate (the
    # extender sees it waiting), and let go when half the small ones are bound: it binds only
    # if they left a node whole.
    large = gpu_pod("large", gpus=8, vram="70Gi")
    large["spec"]["schedulingGates"] = [{"name": "vramfit.io/e2e-hold"}]
    cluster.create(namespace, [large])
    burst = cluster.burst(namespace, "small", 24, expected=24, gpus=1, model_size="60Gi")
    burst.scale()
    wait_for("half the burst to bind", lambda: len(burst.bound()) >= 12, timeout=120)
    cluster.core.patch_namespaced_pod("large", namespace, {"spec": {"schedulingGates": None}})
    burst.wait_whole(180)
    wait_for(
        "the large pod to bind",
        lambda: any(
            is_bound(p) for p in cluster.pods(namespace) if p["metadata"]["name"] == "large"
        ),
        timeout=120,
    )
    assert_no_double_booking(cluster.pods(namespace), cluster)
