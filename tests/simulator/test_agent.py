"""The simulated agent reports what the node's shape implies: NVLink peers and GFD labels."""

from __future__ import annotations

import pytest

from simulator import agent
from tests.simulator.builders import sim_node

QUADS = ((0, 1, 2, 3), (4, 5, 6, 7))


@pytest.mark.parametrize(
    ("nvlink", "gpu", "peers"),
    [
        pytest.param("all", 0, (1, 2, 3, 4, 5, 6, 7), id="nvswitch"),
        pytest.param("none", 3, (), id="no-nvlink"),
        pytest.param(QUADS, 5, (4, 6, 7), id="quads"),
        pytest.param(((0, 1),), 1, (0,), id="listed-pair"),
        pytest.param(((0, 1),), 2, (), id="unlisted-gpu-alone"),
    ],
)
def test_peers(nvlink: str | tuple[tuple[int, ...], ...], gpu: int, peers: tuple[int, ...]) -> None:
    node = sim_node(nvlink)
    uuids = {node.gpus[i].uuid for i in peers}
    assert agent.peers_of(node)[gpu] == uuids


@pytest.mark.parametrize(
    ("node_type", "labels"),
    [
        pytest.param(
            "a100-80gb-8",
            {
                "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
                "nvidia.com/gpu.count": "8",
                "nvidia.com/gpu.memory": "81920",
                "nvidia.com/gpu.family": "ampere",
            },
            id="a100",
        ),
        pytest.param(
            "l40s-48gb-4",
            {
                "nvidia.com/gpu.product": "NVIDIA-L40S",
                "nvidia.com/gpu.count": "4",
                "nvidia.com/gpu.memory": "46068",
                "nvidia.com/gpu.family": "ada-lovelace",
            },
            id="l40s",
        ),
    ],
)
def test_report_labels_are_gfds(node_type: str, labels: dict[str, str]) -> None:
    node = sim_node("none", node_type=node_type)
    gpus = agent.read_gpus(node, agent.peers_of(node))
    state = agent.report(
        node, gpus, (), observed_at=0.0, lease_renewed_at=0.0, lease_duration_s=40.0
    )
    assert labels.items() <= dict(state.labels).items()
