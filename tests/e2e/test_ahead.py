"""End to end: nominating ahead of kube-scheduler's cycle (``--nominate-ahead``), live.

The extender runs under the shipped ServiceAccount with ``--nominate-ahead``; a burst of GPU
pods lands on the simulated GPU nodes through the real kube-scheduler. The extender sets the
pods' nominations from its pod watch (the API server accepts its status patch), kube-scheduler
tries each nominated node first, every pod binds, and no GPU is booked twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.e2e.bursts import Cluster, assert_no_double_booking

pytestmark = pytest.mark.integration


@pytest.fixture
def ahead(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster's extender restarted with ``--nominate-ahead`` (and back after)."""
    extender = cluster.extender
    shipped = extender.args
    extender.stop()
    extender.args = (*shipped, "--nominate-ahead")
    extender.start()
    try:
        yield cluster
    finally:
        extender.stop()
        extender.args = shipped
        extender.start()


def outcomes(metrics: str) -> dict[str, float]:
    pattern = r'vramfit_extender_nominations_ahead_total\{outcome="([a-z-]+)"\} ([0-9.e+]+)'
    return {m[1]: float(m[2]) for m in re.finditer(pattern, metrics)}


def test_a_burst_binds_through_nominations_set_ahead(ahead: Cluster, namespace: str) -> None:
    burst = ahead.burst(namespace, "chat", 12, expected=12, gpus=1, model_size="16Gi")
    with burst.watching():
        burst.scale()
        burst.wait_whole(180)
    assert not burst.worst, f"GPUs double-booked during the burst: {sorted(burst.worst)}"
    assert_no_double_booking(burst.pods(), ahead)
    seen = outcomes(ahead.extender.metrics())
    assert seen.get("failed", 0) == 0, seen
    assert seen.get("nominated", 0) >= 1, seen
