"""The kube-scheduler emulation: how many nodes it scores; which GPUs the kubelet and the device
plugin give."""

from __future__ import annotations

import itertools
import random

import pytest

from simulator.cluster import Node
from simulator.default_policy import device_plugin_gpus, nodes_to_find
from tests.simulator.builders import sim_node


@pytest.mark.parametrize(
    ("total", "percent", "expected"),
    [
        pytest.param(50, 0, 50, id="small-cluster-all"),
        pytest.param(99, 0, 99, id="below-minimum-all"),
        pytest.param(100, 0, 100, id="minimum"),
        pytest.param(1000, 0, 420, id="adaptive-42-percent"),
        pytest.param(5000, 0, 500, id="adaptive-10-percent"),
        pytest.param(20000, 0, 1000, id="adaptive-floor-5-percent"),
        pytest.param(1000, 100, 1000, id="all-requested"),
        pytest.param(1000, 5, 100, id="never-below-100"),
    ],
)
def test_nodes_to_find(total: int, percent: int, expected: int) -> None:
    assert nodes_to_find(total, percent) == expected


QUADS = ((0, 1, 2, 3), (4, 5, 6, 7))


@pytest.mark.parametrize(
    ("n", "count", "answers"),
    [
        pytest.param(sim_node("all"), 1, {(i,) for i in range(8)}, id="one-any-gpu"),
        pytest.param(
            sim_node(QUADS, held=(0, 1, 2, 3)), 4, {(4, 5, 6, 7)}, id="four-on-the-whole-quad"
        ),
        pytest.param(
            sim_node(QUADS, held=(0, 5)),
            3,
            {(1, 2, 3), (4, 6, 7)},
            id="three-within-either-quad",
        ),
        pytest.param(
            sim_node(QUADS, held=(0, 1, 4, 5)), 4, {(2, 3, 6, 7)}, id="spans-when-it-must"
        ),
        pytest.param(
            sim_node("none", held=(1,)),
            2,
            set(itertools.combinations((0, 2, 3, 4, 5, 6, 7), 2)),
            id="no-nvlink-any-two",
        ),
    ],
)
def test_device_plugin_gpus(n: Node, count: int, answers: set[tuple[int, ...]]) -> None:
    """The kubelet's map order is random: over many draws, every answer the rule may give, and
    only those."""
    rng = random.Random(7)
    assert {device_plugin_gpus(n, count, rng) for _ in range(200)} == answers


def test_device_plugin_refuses_more_than_free() -> None:
    with pytest.raises(ValueError, match="has 6 free GPUs, pod asks for 8"):
        device_plugin_gpus(sim_node("all", held=(0, 1)), 8, random.Random(0))
