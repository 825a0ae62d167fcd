"""``decide()``, the reference: every node fitted and scored, the best chosen, ties by name."""

from __future__ import annotations

import pytest

from placement.lifecycle import assume
from placement.model import (
    GIB,
    Demand,
    Fit,
    NodeState,
    Reject,
    Reservation,
    ReservationState,
)
from placement.policies import PROFILES, Profile, UnknownProfileError, resolve_profile
from placement.reference import decide
from tests.builders import NOW, node, reservation

A = node(4, name="a")
B = node(4, name="b")
FULL_C = node(4, name="c", free=[80, 10, 10, 10])
CACHED_D = node(4, name="d", models=["llama"])
DOWN_E = node(2, name="e", lease=None)


@pytest.mark.parametrize(
    ("nodes", "demand", "reservations", "pod_uid", "chosen"),
    [
        pytest.param([B, A], Demand(1), [], "", "a", id="tie-goes-to-first-name"),
        pytest.param([A, B, FULL_C], Demand(1), [], "", "c", id="binpack-takes-fuller"),
        pytest.param(
            [A, B, FULL_C], Demand(1, policy="spread"), [], "", "a", id="pod-asks-for-spread"
        ),
        pytest.param(
            [A, FULL_C, CACHED_D], Demand(1, model_id="llama"), [], "", "d", id="cache-wins"
        ),
        pytest.param(
            [A, B],
            Demand(1),
            [reservation("x", [0], node="a", state=ReservationState.LOADING)],
            "",
            "b",
            id="load-in-flight-pushes-away",
        ),
        pytest.param(
            [A, B],
            Demand(1),
            [reservation("me", [0], node="a", state=ReservationState.LOADING)],
            "me",
            "a",
            id="own-load-does-not-count",
        ),
        pytest.param(
            # b's ready (not in flight) reservation is not on the node yet: b is fuller.
            [A, B],
            Demand(1),
            [reservation("x", [0, 1], node="b", state=ReservationState.READY)],
            "",
            "b",
            id="binpack-counts-reserved-gpus-as-taken",
        ),
        pytest.param([DOWN_E, A], Demand(4), [], "", "a", id="rejected-node-never-chosen"),
        pytest.param([DOWN_E], Demand(1), [], "", None, id="nothing-fits"),
        pytest.param([], Demand(1), [], "", None, id="no-nodes"),
    ],
)
def test_decide_chooses(
    nodes: list[NodeState],
    demand: Demand,
    reservations: list[Reservation],
    pod_uid: str,
    chosen: str | None,
) -> None:
    decision = decide(nodes, demand, reservations, now=NOW, pod_uid=pod_uid)
    assert (decision.chosen.node if decision.chosen else None) == chosen
    fitted = [f.node for f in decision.fits]
    rejected = [r.node for r in decision.rejects]
    assert fitted == [n.name for n in nodes if n.name in fitted]
    assert rejected == [n.name for n in nodes if n.name in rejected]
    assert sorted(fitted + rejected) == sorted(n.name for n in nodes)
    assert [n for n, _ in decision.scores] == [f.node for f in decision.fits]
    assert all(0.0 <= s <= 10.0 for _, s in decision.scores)
    if decision.chosen is not None:
        best = max(s for _, s in decision.scores)
        assert dict(decision.scores)[decision.chosen.node] == best
        assert decision.chosen in decision.fits


def test_decide_reports_every_reject_and_score() -> None:
    decision = decide([A, DOWN_E, FULL_C, B], Demand(2, vram_per_gpu=40 * GIB), [], now=NOW)
    assert decision.rejects == (
        Reject("e", "no node agent heartbeat (Lease) seen for this node", resolvable=True),
        Reject(
            "c",
            "needs 40 GiB free on every unallocated GPU (the kubelet may hand out any): "
            "GPU 1 has 10 GiB free, 70 GiB used by no pod; GPU 2 has 10 GiB free, 70 GiB used "
            "by no pod; GPU 3 has 10 GiB free, 70 GiB used by no pod",
            True,
        ),
    )
    assert decision.fits == (
        Fit("a", ("a/GPU-0", "a/GPU-1"), True),
        Fit("b", ("b/GPU-0", "b/GPU-1"), True),
    )
    # binpack (2*5 + 3*10 + 3*0 + 2*10) / 10: half the VRAM left, no load, no cache, linked.
    assert decision.scores == (("a", 6.0), ("b", 6.0))
    assert decision.chosen == decision.fits[0]


def test_explicit_profile_overrides_the_pods() -> None:
    spread = decide(
        [A, FULL_C], Demand(1, policy="binpack"), [], now=NOW, profile=PROFILES["spread"]
    )
    binpack = decide([A, FULL_C], Demand(1, policy="binpack"), [], now=NOW)
    assert spread.chosen is not None and spread.chosen.node == "a"
    assert binpack.chosen is not None and binpack.chosen.node == "c"


@pytest.mark.parametrize(
    ("policy", "default", "expected"),
    [
        pytest.param("", "binpack", "binpack", id="default"),
        pytest.param("", "spread", "spread", id="other-default"),
        pytest.param("spread", "binpack", "spread", id="pod-wins"),
    ],
)
def test_resolve_profile(policy: str, default: str, expected: str) -> None:
    assert resolve_profile(Demand(1, policy=policy), default) == PROFILES[expected]


def test_unknown_profile_is_an_error() -> None:
    with pytest.raises(UnknownProfileError, match="unknown placement policy 'fastest'; known: "):
        decide([A], Demand(1, policy="fastest"), [], now=NOW)


def test_custom_profile() -> None:
    only_cache = Profile("cache", (("cache-affinity", 1.0),))
    decision = decide([A, CACHED_D], Demand(1, model_id="llama"), [], now=NOW, profile=only_cache)
    assert decision.scores == (("a", 0.0), ("d", 10.0))
    assert decision.chosen is not None and decision.chosen.node == "d"


def test_assume_records_the_choice() -> None:
    chosen = Fit("a", ("a/GPU-2", "a/GPU-3"), True)
    demand = Demand(2, vram_per_gpu=40 * GIB, model_id="llama")
    r = assume(chosen, demand, pod_uid="uid-1", pod_key="ns/p", now=NOW, ttl_s=30)
    assert r == Reservation(
        pod_uid="uid-1",
        pod_key="ns/p",
        node="a",
        gpu_uuids=("a/GPU-2", "a/GPU-3"),
        bytes_per_gpu=40 * GIB,
        state=ReservationState.ASSUMED,
        created_at=NOW,
        model_id="llama",
        expires_at=NOW + 30,
        load_bytes=80 * GIB,  # no model size: its memory
    )
    assert r.active(NOW + 29.9) and not r.active(NOW + 30)
    assert r.in_flight()
    # The next pod does not see the assumed GPUs.
    after = decide([A], Demand(4), [r], now=NOW + 1)
    assert after.rejects == (Reject("a", "needs 4 free GPU(s); 2 free now (2 reserved)", True),)
