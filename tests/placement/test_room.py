"""Room for waiting pods: a pod keeps off the last nodes a waiting pod could use, and off the
nodes whose free GPUs the waiting pods that fit only there need, when it fits elsewhere, and
never waits for them. Each case is asked of the reference ``decide()`` and of the
fleet's ``decide_fleet``, which must choose the same node."""

from __future__ import annotations

import pytest

from placement.fleet import Fleet, Query, decide_fleet
from placement.model import GIB, Demand, NodeState
from placement.policies import PROFILES
from placement.reference import decide
from placement.room import Waiting
from tests.builders import NOW, node

EMPTY = node(8, name="a")
HALF = node(8, name="b", held=range(4))
TWIN = node(8, name="c")
BIG = node(8, name="big", total=80)
SMALL = node(8, name="small", total=40)
ONE = Demand(1, vram_per_gpu=10 * GIB)
EIGHT = Demand(8, vram_per_gpu=20 * GIB)
LARGE_FOUR = Demand(4, vram_per_gpu=60 * GIB)
LARGE_TWO = Demand(2, vram_per_gpu=60 * GIB)
LARGE_ONE = Demand(1, vram_per_gpu=60 * GIB)
BIG_HALF = node(8, name="big-half", total=80, held=range(4))

# name: nodes, pod, waiting, profile, chosen
CASES: dict[str, tuple[list[NodeState], Demand, Waiting, str, str]] = {
    "nothing-waits-spread-takes-the-empty-node": ([EMPTY, HALF], ONE, (), "spread", "a"),
    "the-last-whole-node-is-kept": ([EMPTY, HALF], ONE, ((EIGHT, 1),), "spread", "b"),
    "no-pod-of-it-may-come": ([EMPTY, HALF], ONE, ((EIGHT, 0),), "spread", "a"),
    "two-whole-nodes-for-one-pod-are-not-short": (
        [EMPTY, HALF, TWIN],
        ONE,
        ((EIGHT, 1),),
        "spread",
        "a",
    ),
    "two-pods-make-two-nodes-short": ([EMPTY, HALF, TWIN], ONE, ((EIGHT, 2),), "spread", "b"),
    "a-pod-that-fits-only-there-takes-it": ([EMPTY], ONE, ((EIGHT, 1),), "spread", "a"),
    "a-pod-that-leaves-enough-keeps-nothing": (
        [EMPTY, HALF],
        ONE,
        ((Demand(4, vram_per_gpu=10 * GIB), 1),),
        "spread",
        "a",
    ),
    "a-large-pod-keeps-off-what-a-constrained-one-needs": (
        [BIG, SMALL],
        EIGHT,
        ((LARGE_FOUR, 1),),
        "binpack",
        "small",
    ),
    "the-pods-own-shape-keeps-nothing": ([EMPTY, HALF], ONE, ((ONE, 5),), "spread", "a"),
    "a-small-pod-leaves-the-large-gpus-the-waiting-pods-need": (
        [BIG_HALF, SMALL],
        ONE,
        ((LARGE_TWO, 2),),
        "binpack",
        "small",
    ),
    "large-gpus-to-spare-for-the-waiting-pods-are-used": (
        [BIG_HALF, SMALL],
        ONE,
        ((LARGE_TWO, 1),),
        "binpack",
        "big-half",
    ),
    "waiting-pods-that-fit-anywhere-keep-no-class": (
        [BIG_HALF, SMALL],
        ONE,
        ((Demand(2, vram_per_gpu=10 * GIB), 8),),
        "binpack",
        "big-half",
    ),
    "a-pod-that-needs-the-large-gpus-takes-them": (
        [BIG_HALF, SMALL],
        LARGE_ONE,
        ((LARGE_TWO, 2),),
        "binpack",
        "big-half",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_room_for_waiting_pods(case: str) -> None:
    nodes, demand, waiting, profile, chosen = CASES[case]
    prof = PROFILES[profile]
    expected = decide(nodes, demand, [], now=NOW, profile=prof, waiting=waiting)
    assert expected.chosen is not None and expected.chosen.node == chosen
    names = [n.name for n in nodes]
    got = decide_fleet(
        Fleet(nodes), Query(names, demand, [], now=NOW, waiting=waiting), profile=prof
    )
    assert got.decision() == expected
    alone = decide(nodes, demand, [], now=NOW, profile=prof)
    assert dict(alone.scores) == dict(expected.scores)  # room changes the choice, no score
