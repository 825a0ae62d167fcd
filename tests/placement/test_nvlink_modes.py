"""What the NVLink modes do, as the README and ``vramfit-extender --nvlink`` say: ``required``
needs GPUs on one NVLink island; ``preferred`` (the default) and ``none`` need nothing, and the
``nvlink-quality`` score favours linked GPUs under both: ``none`` decides as ``preferred``."""

from __future__ import annotations

import pytest

from placement.model import Demand, Fit, FitSettings, NodeState, NvlinkMode
from placement.reference import decide
from tests.builders import NOW, node

# Two islands of four; GPUs 0, 1, 4, 5 held: two free GPUs on each island.
SPLIT = node(8, name="split", nvlink=[[0, 1, 2, 3], [4, 5, 6, 7]], held=(0, 1, 4, 5))
# Eight GPUs without NVLink.
PCIE = node(8, name="pcie", nvlink=None)
# Fully linked, half held.
LINKED = node(8, name="linked", held=(0, 1, 2, 3))

# nodes, GPUs per pod, the node chosen for preferred (and none), the node chosen for required
CASES = [
    pytest.param([PCIE], 2, "pcie", None, id="pcie-only"),
    pytest.param([SPLIT], 4, "split", None, id="islands-too-small-when-free"),
    pytest.param([SPLIT], 2, "split", "split", id="two-free-on-an-island"),
    pytest.param([PCIE, LINKED], 2, "linked", "linked", id="linked-node-beside-pcie"),
    pytest.param([SPLIT, PCIE, LINKED], 4, "linked", "linked", id="three-kinds"),
]


Outcome = tuple[str | None, Fit | None, tuple[tuple[str, float], ...], tuple[str, ...]]


def outcome(nodes: list[NodeState], demand: Demand, settings: FitSettings) -> Outcome:
    d = decide(nodes, demand, [], now=NOW, settings=settings)
    chosen = d.chosen.node if d.chosen else None
    return chosen, d.chosen, d.scores, tuple(r.node for r in d.rejects)


@pytest.mark.parametrize(("nodes", "gpus", "preferred", "required"), CASES)
def test_none_decides_as_preferred(
    nodes: list[NodeState], gpus: int, preferred: str, required: str | None
) -> None:
    """Annotation and setting alike: ``none`` gives the same node, GPUs, scores and rejects
    as ``preferred``."""
    default = outcome(nodes, Demand(gpus), FitSettings())
    assert default[0] == preferred
    assert outcome(nodes, Demand(gpus, nvlink=NvlinkMode.NONE), FitSettings()) == default
    setting_none = FitSettings(nvlink_for_multi_gpu=NvlinkMode.NONE)
    assert outcome(nodes, Demand(gpus), setting_none) == default


@pytest.mark.parametrize(("nodes", "gpus", "preferred", "required"), CASES)
def test_required_keeps_pods_on_one_island(
    nodes: list[NodeState], gpus: int, preferred: str, required: str | None
) -> None:
    """``--nvlink required`` holds pods without the annotation to one island, as the
    annotation does."""
    setting = FitSettings(nvlink_for_multi_gpu=NvlinkMode.REQUIRED)
    assert outcome(nodes, Demand(gpus), setting)[0] == required
    assert outcome(nodes, Demand(gpus, nvlink=NvlinkMode.REQUIRED), FitSettings())[0] == required
