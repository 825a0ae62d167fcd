"""Scoring policies and profiles: each policy's value on named cases, and the orderings they give."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import pytest

from placement.model import (
    Demand,
    Fit,
    NodeState,
    Reservation,
    ReservationState,
)
from placement.policies import (
    DEFAULT_PROFILE,
    MAX_SCORE,
    POLICIES,
    PROFILES,
    Profile,
    ScoreInput,
    cache_affinity,
    in_flight_penalty,
    loads_in_flight,
    nvlink_quality,
    score,
    vram_binpack,
    vram_spread,
)
from tests.builders import NOW, gpu, node, reservation


def take(state: NodeState, *indices: int) -> Fit:
    return Fit(state.name, tuple(state.gpus[i].uuid for i in indices), True)


ONE_GPU = Demand(1)
FOUR = node(4, free=[80, 80, 80, 40])


def inp(
    state: NodeState,
    *chosen: int,
    demand: Demand = ONE_GPU,
    loads: int = 0,
    hidden: Sequence[int] = (),
) -> ScoreInput:
    return ScoreInput(
        state, demand, take(state, *chosen), loads, frozenset(state.gpus[i].uuid for i in hidden)
    )


@pytest.mark.parametrize(
    ("s", "binpack"),
    [
        pytest.param(inp(FOUR, 0), 3.75, id="one-of-four-taken"),
        pytest.param(inp(FOUR, 0, 1, 2, 3), 10.0, id="all-taken"),
        pytest.param(inp(node(2), 0), 5.0, id="half-taken"),
        pytest.param(inp(FOUR, 0, hidden=[1]), 6.25, id="reserved-gpu-is-not-free"),
        pytest.param(
            inp(node([gpu(0), gpu(1, holder="p"), gpu(2, healthy=False), gpu(3, free=None)]), 0),
            10.0,
            id="held-unhealthy-unknown-are-not-free",
        ),
        pytest.param(inp(node(1, free=0, total=0), 0), 10.0, id="no-memory-at-all"),
    ],
)
def test_vram_binpack_and_spread(s: ScoreInput, binpack: float) -> None:
    assert vram_binpack(s) == pytest.approx(binpack)
    assert vram_spread(s) == pytest.approx(MAX_SCORE - binpack if s.node.gpus[0].total_bytes else 0)


@pytest.mark.parametrize(
    ("loads", "value"),
    [
        pytest.param(0, 10.0, id="none"),
        pytest.param(1, 5.0, id="one"),
        pytest.param(3, 1.25, id="three"),
        pytest.param(5000, 0.0, id="thousands-no-overflow"),
        pytest.param(-2, 10.0, id="negative-reads-as-none"),
    ],
)
def test_in_flight_penalty(loads: int, value: float) -> None:
    assert in_flight_penalty(inp(FOUR, 0, loads=loads)) == value


@pytest.mark.parametrize(
    ("models", "model_id", "value"),
    [
        pytest.param(["llama"], "llama", 10.0, id="cached"),
        pytest.param(["mistral"], "llama", 0.0, id="other-model-cached"),
        pytest.param([], "llama", 0.0, id="nothing-cached"),
        pytest.param(["llama"], "", 0.0, id="pod-names-no-model"),
    ],
)
def test_cache_affinity(models: list[str], model_id: str, value: float) -> None:
    state = node(1, models=models)
    assert cache_affinity(inp(state, 0, demand=Demand(1, model_id=model_id))) == value


ISLANDS = node(5, nvlink=[[0, 1], [2, 3]])


@pytest.mark.parametrize(
    ("chosen", "value"),
    [
        pytest.param((4,), 10.0, id="one-gpu"),
        pytest.param((0, 1), 10.0, id="linked-pair"),
        pytest.param((1, 2), 0.0, id="unlinked-pair"),
        pytest.param((0, 1, 2), 10 / 3, id="one-linked-pair-of-three"),
        pytest.param((0, 1, 2, 3), 10 / 3, id="two-linked-pairs-of-six"),
    ],
)
def test_nvlink_quality(chosen: tuple[int, ...], value: float) -> None:
    assert nvlink_quality(inp(ISLANDS, *chosen, demand=Demand(len(chosen)))) == pytest.approx(value)


def test_registry_names_document_every_policy() -> None:
    assert set(POLICIES) == {
        "vram-binpack",
        "vram-spread",
        "in-flight-penalty",
        "cache-affinity",
        "nvlink-quality",
    }
    for name, policy in POLICIES.items():
        assert policy.name == name
        assert policy.description.strip()
        assert policy.fn.__doc__ == policy.description
    assert set(PROFILES) == {"binpack", "spread"}
    assert DEFAULT_PROFILE in PROFILES


EMPTY = node(4, name="empty")
FULLER = node(4, name="fuller", free=[80, 5, 5, 5])
CACHED = node(4, name="cached", models=["llama"])


@pytest.mark.parametrize(
    ("profile", "better", "worse", "loads"),
    [
        pytest.param("binpack", FULLER, EMPTY, (0, 0), id="binpack-prefers-fuller"),
        pytest.param("spread", EMPTY, FULLER, (0, 0), id="spread-prefers-emptier"),
        pytest.param("binpack", CACHED, EMPTY, (0, 0), id="binpack-prefers-cached"),
        pytest.param("spread", CACHED, EMPTY, (0, 0), id="spread-prefers-cached"),
        pytest.param("binpack", EMPTY, FULLER, (0, 2), id="binpack-avoids-loads-in-flight"),
        pytest.param("spread", FULLER, EMPTY, (0, 3), id="spread-avoids-loads-in-flight"),
    ],
)
def test_profile_orderings(
    profile: str, better: NodeState, worse: NodeState, loads: tuple[int, int]
) -> None:
    demand = Demand(1, model_id="llama")
    high = score(inp(better, 0, demand=demand, loads=loads[0]), PROFILES[profile])
    low = score(inp(worse, 0, demand=demand, loads=loads[1]), PROFILES[profile])
    assert 0.0 <= low < high <= MAX_SCORE


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        # 2*binpack(10) + 3*penalty(10) + 3*cache(10) + 2*nvlink(10), over 10.
        pytest.param("binpack", 10.0, id="binpack-best-case"),
        # 2*spread(0) + 30 + 30 + 20, over 10.
        pytest.param("spread", 8.0, id="spread-on-a-full-node"),
    ],
)
def test_profile_weighted_mean(profile: str, expected: float) -> None:
    state = node(2, models=["llama"])
    s = inp(state, 0, 1, demand=Demand(2, model_id="llama"))
    assert score(s, PROFILES[profile]) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("weights", "fragment"),
    [
        pytest.param((("fastest", 1.0),), "unknown policies ['fastest']", id="unknown-policy"),
        pytest.param((("vram-binpack", -1.0),), "weights must be finite", id="negative"),
        pytest.param((("vram-binpack", 0.0),), "positive sum", id="zero-sum"),
        pytest.param((("vram-binpack", math.nan),), "finite", id="nan"),
        pytest.param((("vram-binpack", math.inf),), "finite", id="infinite"),
    ],
)
def test_profile_validation(weights: tuple[tuple[str, float], ...], fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)) as info:
        Profile("mine", weights)
    assert "profile 'mine'" in str(info.value)


def test_single_policy_profile_equals_the_policy() -> None:
    s = inp(FOUR, 0)
    assert score(s, Profile("only", (("vram-spread", 1.0),))) == vram_spread(s)


def test_loads_in_flight_counts_active_unfinished_reservations() -> None:
    def r(node_name: str, state: ReservationState, expires: float | None) -> Reservation:
        return reservation("p", (), node=node_name, state=state, expires_at=expires)

    reservations = [
        r("n1", ReservationState.ASSUMED, NOW + 10),
        r("n1", ReservationState.BOUND, None),
        r("n1", ReservationState.LOADING, None),
        r("n1", ReservationState.READY, None),
        r("n1", ReservationState.ASSUMED, NOW - 1),
        r("n2", ReservationState.LOADING, None),
    ]
    assert loads_in_flight("n1", reservations, NOW) == 3
    assert loads_in_flight("n3", reservations, NOW) == 0
