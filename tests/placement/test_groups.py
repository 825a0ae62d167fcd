"""A group placed whole or not at all: table cases of ``decide_group``, and the invariants no
sequence of groups may break (every group reserved whole or not at all, every member's node one
that ``fit()`` accepts with everything reserved before it, one pool and domain per group)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from placement.fit import fit
from placement.fleet import Fleet
from placement.groups import (
    GroupPlan,
    GroupQuery,
    GroupRefusal,
    Member,
    Pool,
    decide_group,
    pool_of,
)
from placement.model import GIB, Demand, Fit, NodeState, Reservation
from tests.builders import NOW, node, reservation

A100 = "NVIDIA-A100-SXM4-80GB"
H100 = "NVIDIA-H100-80GB-HBM3"


def members(*gpus: int, vram: float = 70) -> list[Member]:
    return [
        Member(f"m{i}", f"serving/m{i}", Demand(gpus=g, vram_per_gpu=int(vram * GIB)), rank=i)
        for i, g in enumerate(gpus)
    ]


def decide(
    nodes: list[NodeState],
    group: list[Member],
    *,
    reserved: Sequence[Reservation] = (),
    fixed: Mapping[str, str] | None = None,
    domains: Mapping[str, str] | None = None,
    names: Sequence[str] | None = None,
) -> GroupPlan | GroupRefusal:
    fleet = Fleet(nodes)
    return decide_group(
        fleet,
        GroupQuery(
            names=[n.name for n in nodes] if names is None else names,
            members=group,
            reservations=list(reserved),
            now=NOW,
            fixed=fixed or {},
            domains=domains or {},
        ),
    )


def nodes_of(result: GroupPlan | GroupRefusal) -> dict[str, str] | str:
    """Member UID -> node of a plan, or the refusal's reason."""
    if isinstance(result, GroupRefusal):
        return result.reason
    return {m.uid: f.node for m, f in result.placements}


def refusal(size: int, gpus: int, fitted: int, *, domains: bool = False) -> str:
    where = "one pool and topology domain" if domains else "one pool"
    return (
        f"vramfit: this pod's group of {size} pods ({gpus} GPUs) does not fit whole on {where}: "
        f"at most {fitted} of {size} fit together now; nothing is reserved until all do"
    )


CASES = [
    pytest.param(
        [node(name="n1"), node(name="n2")],
        members(8, 8),
        {},
        {"m0": "n1", "m1": "n2"},
        id="two-whole-nodes",
    ),
    pytest.param(
        [node(name="n1"), node(name="n2", held=[0])],
        members(8, 8),
        {},
        refusal(2, 16, 1),
        id="second-node-busy-nothing-reserved",
    ),
    pytest.param(
        [node(name="n1"), node(name="n2", product=A100)],
        members(8, 8),
        {},
        refusal(2, 16, 1),
        id="one-pool-only",
    ),
    pytest.param(
        [node(name="h1"), node(name="a1", product=A100), node(name="a2", product=A100)],
        members(8, 8),
        {},
        {"m0": "a1", "m1": "a2"},
        id="the-pool-that-takes-all",
    ),
    pytest.param(
        [node(name="n1"), node(name="n2", held=[0]), node(name="n3"), node(name="n4")],
        members(8, 8),
        {"domains": {"n1": "a", "n2": "a", "n3": "b", "n4": "b"}},
        {"m0": "n3", "m1": "n4"},
        id="one-domain",
    ),
    pytest.param(
        [node(name="n1"), node(name="n2")],
        members(8, 8),
        {"domains": {"n1": "a", "n2": "b"}},
        refusal(2, 16, 1, domains=True),
        id="domains-split-the-pool",
    ),
    pytest.param(
        [node(name="n1"), node(name="n2")],
        members(4, 4),
        {},
        {"m0": "n1", "m1": "n2"},
        id="loads-in-flight-spread-small-members",
    ),
    pytest.param(
        [node(name="n1"), node(name="n2", held=[0, 1, 2, 3, 4])],
        members(4, 4),
        {},
        {"m0": "n1", "m1": "n1"},
        id="small-members-share-a-node",
    ),
    pytest.param(
        [node(name="n1", held=[0, 1, 2, 3, 4, 5, 6, 7]), node(name="n2"), node(name="n3")],
        members(8),
        {"fixed": {"m9": "n1"}, "domains": {"n1": "b", "n2": "a", "n3": "b"}},
        {"m0": "n3"},
        id="bound-member-fixes-the-domain",
    ),
    pytest.param(
        [node(name="n1"), node(name="n2")],
        members(8, 8),
        {"reserved": [reservation("other", range(8), node="n2")]},
        refusal(2, 16, 1),
        id="others-reservations-count",
    ),
    pytest.param(
        [node(name="n1"), node(name="n2")],
        members(8, 8),
        {"names": ["n1", "ghost", "n2"]},
        {"m0": "n1", "m1": "n2"},
        id="unknown-names-ignored",
    ),
    pytest.param(
        [node(name="n1"), node(name="n2")],
        members(8, 8, 8),
        {},
        refusal(3, 24, 2),
        id="three-members-two-nodes",
    ),
]


@pytest.mark.parametrize(("nodes", "group", "extra", "expected"), CASES)
def test_decide_group(
    nodes: list[NodeState],
    group: list[Member],
    extra: dict[str, object],
    expected: dict[str, str] | str,
) -> None:
    assert nodes_of(decide(nodes, group, **extra)) == expected  # type: ignore[arg-type]


def test_refusal_is_unresolvable_when_a_member_never_fits() -> None:
    result = decide([node(name="n1"), node(name="n2")], members(8, 8, vram=100))
    assert isinstance(result, GroupRefusal)
    assert not result.resolvable
    busy = decide([node(name="n1"), node(name="n2", held=[0])], members(8, 8))
    assert isinstance(busy, GroupRefusal) and busy.resolvable


def test_plan_reservations_expire_together() -> None:
    plan = decide([node(name="n1"), node(name="n2")], members(8, 8))
    assert isinstance(plan, GroupPlan)
    made = plan.reservations(now=NOW, expires_at=NOW + 300)
    assert [(r.pod_uid, r.node, r.expires_at) for r in made] == [
        ("m0", "n1", NOW + 300),
        ("m1", "n2", NOW + 300),
    ]
    assert all(len(r.gpu_uuids) == 8 for r in made)
    assert plan.pool == Pool((H100,), 8)


# ----- invariants over random fleets and sequences of groups --------------------------------


@st.composite
def pools(draw: st.DrawFn) -> tuple[list[NodeState], dict[str, str]]:
    count = draw(st.integers(1, 6))
    nodes, domains = [], {}
    for i in range(count):
        name = f"n{i}"
        gpus = draw(st.sampled_from([4, 8]))
        held = draw(st.lists(st.integers(0, gpus - 1), unique=True, max_size=gpus))
        nodes.append(node(gpus, name=name, product=draw(st.sampled_from([H100, A100])), held=held))
        zone = draw(st.sampled_from(["", "a", "b"]))
        if zone:
            domains[name] = zone
    return nodes, domains


@st.composite
def groups(draw: st.DrawFn) -> list[list[Member]]:
    out = []
    for g in range(draw(st.integers(1, 4))):
        sizes = draw(st.lists(st.sampled_from([1, 2, 4, 8]), min_size=2, max_size=3))
        out.append(
            [
                Member(f"g{g}-m{i}", f"ns/g{g}-m{i}", Demand(gpus=s, vram_per_gpu=40 * GIB), i)
                for i, s in enumerate(sizes)
            ]
        )
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet=pools(), wanted=groups())
def test_groups_are_reserved_whole_and_fit(
    fleet: tuple[list[NodeState], dict[str, str]], wanted: list[list[Member]]
) -> None:
    nodes, domains = fleet
    by_name = {n.name: n for n in nodes}
    store = Fleet(nodes)
    reserved: list[Reservation] = []
    for group in wanted:
        result = decide_group(
            store,
            GroupQuery([n.name for n in nodes], group, list(reserved), NOW, domains=domains),
        )
        if isinstance(result, GroupRefusal):
            assert result.fitted < len(group)
            continue
        made = result.reservations(now=NOW, expires_at=NOW + 60)
        # Whole: every member, once.
        assert sorted(r.pod_uid for r in made) == sorted(m.uid for m in group)
        # One pool and one domain.
        assert {pool_of(store, r.node, domains) for r in made} == {result.pool}
        # Every member's node takes it, by the reference rules, with everything reserved
        # before it and the rest of its own group counted.
        for m, placed in result.placements:
            others = [r for r in made if r.pod_uid != m.uid]
            verdict = fit(
                by_name[placed.node], m.demand, [*reserved, *others], now=NOW, pod_uid=m.uid
            )
            assert isinstance(verdict, Fit), verdict
        reserved.extend(made)
    # No group ever holds part of its members.
    for group in wanted:
        uids = {m.uid for m in group}
        assert len([r for r in reserved if r.pod_uid in uids]) in (0, len(group))
