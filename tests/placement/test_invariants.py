"""Properties of the placement rules that hold for every fleet, demand and set of reservations."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from placement.annotation import decode_reservation, encode_reservation
from placement.fit import effective_nvlink, fit, hidden_gpus, product_key
from placement.model import (
    CachedModel,
    Fit,
    GpuState,
    MigDevice,
    NodeState,
    NvlinkMode,
    PodMemory,
    Reject,
    Reservation,
    ReservationState,
)
from placement.nodegpustate import MAX_REPORT_BYTES, decode_status, encode_status
from placement.policies import MAX_SCORE, POLICIES, PROFILES, ScoreInput, score
from placement.reference import decide
from placement.topology import islands
from tests.placement.conftest import Scenario

SLOW = settings(deadline=None, max_examples=150)


@SLOW
@given(data=st.data())
def test_passed_and_failed_are_disjoint_and_cover_the_input(
    scenarios: st.SearchStrategy[Scenario], data: st.DataObject
) -> None:
    sc = data.draw(scenarios)
    decision = decide(
        sc.nodes, sc.demand, sc.reservations, now=sc.now, settings=sc.settings, pod_uid=sc.pod_uid
    )
    passed = [f.node for f in decision.fits]
    failed = [r.node for r in decision.rejects]
    assert set(passed).isdisjoint(failed)
    assert sorted(passed + failed) == sorted(n.name for n in sc.nodes)
    assert [n for n, _ in decision.scores] == passed
    assert (decision.chosen is None) == (not passed)
    if decision.chosen is not None:
        top = max(s for _, s in decision.scores)
        assert decision.chosen.node == min(n for n, s in decision.scores if s == top)


@SLOW
@given(data=st.data())
def test_scores_stay_in_0_to_10(
    scenarios: st.SearchStrategy[Scenario], data: st.DataObject
) -> None:
    sc = data.draw(scenarios)
    loads = data.draw(st.integers(0, 2000))
    for node in sc.nodes:
        result = fit(node, sc.demand, sc.reservations, now=sc.now, settings=sc.settings)
        if isinstance(result, Reject):
            continue
        hidden = frozenset(hidden_gpus(node, sc.reservations, sc.now))
        s = ScoreInput(node, sc.demand, result, loads, hidden)
        for policy in POLICIES.values():
            assert 0.0 <= policy.fn(s) <= MAX_SCORE, policy.name
        for profile in PROFILES.values():
            assert 0.0 <= score(s, profile) <= MAX_SCORE, profile.name


@SLOW
@given(data=st.data())
def test_adding_a_reservation_never_makes_a_node_fit(
    scenarios: st.SearchStrategy[Scenario], data: st.DataObject
) -> None:
    sc = data.draw(scenarios)
    node = data.draw(st.sampled_from(sc.nodes))
    extra = Reservation(
        pod_uid=data.draw(st.sampled_from(["pod-a", "pod-z", "me", ""])),
        pod_key="ns/extra",
        node=node.name,
        gpu_uuids=tuple(
            data.draw(st.lists(st.sampled_from([g.uuid for g in node.gpus] or ["GPU-x"])))
        ),
        bytes_per_gpu=0,
        state=data.draw(st.sampled_from(list(ReservationState))),
        created_at=sc.now,
        expires_at=data.draw(st.none() | st.floats(sc.now - 10, sc.now + 10)),
    )
    before = fit(
        node, sc.demand, sc.reservations, now=sc.now, settings=sc.settings, pod_uid=sc.pod_uid
    )
    after = fit(
        node,
        sc.demand,
        [*sc.reservations, extra],
        now=sc.now,
        settings=sc.settings,
        pod_uid=sc.pod_uid,
    )
    if isinstance(before, Reject):
        assert isinstance(after, Reject)
        # A node that could never fit still cannot, for the same reason.
        if not before.resolvable:
            assert after == before


@SLOW
@given(data=st.data())
def test_a_fit_takes_distinct_free_gpus_that_cover_the_demand(
    scenarios: st.SearchStrategy[Scenario], data: st.DataObject
) -> None:
    sc = data.draw(scenarios)
    demand = sc.demand
    wanted = {product_key(p) for p in demand.products}
    for node in sc.nodes:
        result = fit(
            node, demand, sc.reservations, now=sc.now, settings=sc.settings, pod_uid=sc.pod_uid
        )
        if not isinstance(result, Fit):
            continue
        assert result.node == node.name
        assert len(result.gpu_uuids) == max(demand.gpus, 0)
        assert len(set(result.gpu_uuids)) == len(result.gpu_uuids)
        others = [r for r in sc.reservations if r.pod_uid != sc.pod_uid]
        hidden = hidden_gpus(node, others, sc.now)
        chosen = [node.gpu(u) for u in result.gpu_uuids]
        for g in chosen:
            assert g is not None
            assert g.healthy
            assert g.holder_pod_uid in (None, sc.pod_uid)
            assert g.uuid not in hidden
            assert g.free_bytes is not None and g.free_bytes >= demand.vram_per_gpu
            assert not wanted or product_key(g.product) in wanted
        assert [g.index for g in chosen if g] == sorted(g.index for g in chosen if g)
        on_one_island = any(set(result.gpu_uuids) <= i for i in islands(node))
        assert result.same_island == (on_one_island or demand.gpus <= 1)
        if effective_nvlink(demand, sc.settings) is NvlinkMode.REQUIRED:
            assert result.same_island


# -- wire round trips -------------------------------------------------------------------------

MICROS = st.integers(0, 4_000_000_000 * 10**6).map(lambda us: us / 10**6)
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
SIZE = st.integers(0, MAX_REPORT_BYTES)


@st.composite
def mig_devices(draw: st.DrawFn) -> tuple[MigDevice, ...]:
    """0..3 MIG devices with distinct UUIDs; memory read, or none of it (total unread)."""
    uuids = draw(st.lists(TEXT.filter(bool), max_size=3, unique=True))
    devices = []
    for u in uuids:
        instance = st.none() | st.integers(0, 7)
        total = draw(st.none() | SIZE)
        read = total is not None
        devices.append(
            MigDevice(
                uuid=u,
                gpu_instance_id=draw(instance),
                compute_instance_id=draw(instance),
                total_bytes=total,
                free_bytes=draw(st.none() | SIZE) if read else None,
                used_bytes=draw(st.none() | SIZE) if read else None,
            )
        )
    return tuple(devices)


@st.composite
def reported_nodes(draw: st.DrawFn) -> NodeState:
    """Any node a report can carry: distinct UUIDs and indices, every optional field."""
    n = draw(st.integers(0, 6))
    uuids = draw(st.lists(TEXT.filter(bool), min_size=n, max_size=n, unique=True))
    indices = draw(st.lists(st.integers(0, 64), min_size=n, max_size=n, unique=True))
    gpus = tuple(
        GpuState(
            uuid=u,
            index=i,
            product=draw(TEXT),
            total_bytes=draw(SIZE),
            free_bytes=draw(st.none() | SIZE),
            used_bytes=draw(st.none() | SIZE),
            healthy=draw(st.booleans()),
            unhealthy_reason=draw(TEXT),
            mig_enabled=draw(st.booleans()),
            nvlink_peers=frozenset(draw(st.lists(st.sampled_from(uuids))))
            if uuids
            else frozenset(),
            holder_pod_uid=draw(st.none() | TEXT.filter(bool)),
            pod_memory=tuple(draw(st.lists(st.builds(PodMemory, TEXT, SIZE), max_size=3))),
            pci_bus_id=draw(TEXT),
            numa_node=draw(st.none() | st.integers(0, 7)),
            mig_devices=draw(mig_devices()),
        )
        for u, i in zip(uuids, indices, strict=True)
    )
    rate = st.none() | st.floats(0, 1e12, allow_nan=False)
    return NodeState(
        name=draw(TEXT.filter(bool)),
        gpus=gpus,
        observed_at=draw(MICROS),
        lease_renewed_at=draw(st.none() | MICROS),
        lease_duration_s=draw(st.floats(1, 600)),
        cached_models=tuple(draw(st.lists(st.builds(CachedModel, TEXT, SIZE), max_size=3))),
        local_disk_bytes_per_s=draw(rate),
        remote_bytes_per_s=draw(rate),
        agent_error=draw(TEXT),
    )


@settings(deadline=None)
@given(reported_nodes())
def test_report_round_trip(node: NodeState) -> None:
    wire = json.loads(json.dumps(encode_status(node)))
    back = decode_status(
        node.name,
        wire,
        lease_renewed_at=node.lease_renewed_at,
        lease_duration_s=node.lease_duration_s,
    )
    assert back == node


@st.composite
def reservations(draw: st.DrawFn) -> Reservation:
    return Reservation(
        pod_uid=draw(TEXT),
        pod_key=draw(TEXT),
        node=draw(TEXT.filter(bool)),
        gpu_uuids=tuple(draw(st.lists(TEXT.filter(bool), unique=True, max_size=8))),
        bytes_per_gpu=draw(st.integers(0, 2**63 - 1)),
        state=draw(st.sampled_from(list(ReservationState))),
        created_at=draw(MICROS),
        model_id=draw(TEXT),
    )


@settings(deadline=None)
@given(reservations())
def test_annotation_round_trip(r: Reservation) -> None:
    back = decode_reservation(
        encode_reservation(r), pod_uid=r.pod_uid, pod_key=r.pod_key, state=r.state
    )
    assert back == r
