"""The fleet's fast path equals ``fit()`` and ``decide()`` for pods that claim GPUs through DRA.

The same random fleets as ``test_fleet_equivalence``, with the demand's allocator set to DRA and
some nodes limited to a random subset of their GPUs (a claim's selectors): same fits, GPUs,
reasons, flags, scores and choice. And the DRA safety invariant from the node's own fields:
every set of eligible unallocated GPUs the DRA plugin may allocate fits the pod, and enough
of them are promised to no other pod.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Collection

from hypothesis import given, settings
from hypothesis import strategies as st

from placement.fit import effective_nvlink, fit, hidden_gpus, product_key
from placement.fleet import Fleet, Query, decide_fleet, evaluate
from placement.model import Allocator, NodeState, NvlinkMode, Reject
from placement.reference import decide
from placement.topology import node_layout
from tests.placement.conftest import Scenario

SLOW = settings(deadline=None, max_examples=150)


@st.composite
def eligible_maps(draw: st.DrawFn, nodes: list[NodeState]) -> dict[str, Collection[str]]:
    """For some nodes, the GPUs a claim's selectors accept there (possibly none, possibly
    a UUID the node does not have)."""
    out: dict[str, Collection[str]] = {}
    for node in nodes:
        if draw(st.booleans()):
            uuids = [g.uuid for g in node.gpus] + ["GPU-elsewhere"]
            out[node.name] = frozenset(draw(st.lists(st.sampled_from(uuids), unique=True)))
    return out


def dra(sc: Scenario) -> Scenario:
    return dataclasses.replace(sc, demand=dataclasses.replace(sc.demand, allocator=Allocator.DRA))


@SLOW
@given(data=st.data())
def test_fleet_equals_fit_for_dra_claims(
    scenarios: st.SearchStrategy[Scenario], data: st.DataObject
) -> None:
    sc = data.draw(scenarios)
    if data.draw(st.booleans()):
        sc = dra(sc)
    eligible = data.draw(eligible_maps(sc.nodes))
    fleet = Fleet(sc.nodes, capacity=1, width=1)
    names = [n.name for n in sc.nodes]
    q = Query(
        names,
        sc.demand,
        sc.reservations,
        now=sc.now,
        settings=sc.settings,
        pod_uid=sc.pod_uid,
        eligible=eligible,
    )
    expected = decide(
        sc.nodes,
        sc.demand,
        sc.reservations,
        now=sc.now,
        settings=sc.settings,
        pod_uid=sc.pod_uid,
        eligible=eligible,
    )
    assert decide_fleet(fleet, q).decision() == expected
    fits, rejects = evaluate(fleet, q)
    for node in sc.nodes:
        result = fit(
            node,
            sc.demand,
            sc.reservations,
            now=sc.now,
            settings=sc.settings,
            pod_uid=sc.pod_uid,
            eligible=eligible.get(node.name),
        )
        if isinstance(result, Reject):
            assert rejects[node.name] == result
        else:
            assert fits[node.name] == result.gpu_uuids


@SLOW
@given(data=st.data())
def test_every_dra_fit_is_safe_whatever_the_dra_plugin_allocates(
    scenarios: st.SearchStrategy[Scenario], data: st.DataObject
) -> None:
    """Every set of ``k`` eligible unallocated GPUs (the DRA plugin may allocate any) has the
    pod's VRAM free on each GPU and the product it accepts; enough are promised to no waiting
    pod; the prediction is such a set; a pod that strictly requires one NVLink island
    gets one whatever the plugin takes."""
    sc = dra(data.draw(scenarios))
    eligible = data.draw(eligible_maps(sc.nodes))
    k, vram = sc.demand.gpus, sc.demand.vram_per_gpu
    wanted = {product_key(p) for p in sc.demand.products}
    others = [r for r in sc.reservations if r.pod_uid != sc.pod_uid]
    for node in sc.nodes:
        allowed = eligible.get(node.name)
        result = fit(
            node,
            sc.demand,
            others,
            now=sc.now,
            settings=sc.settings,
            pod_uid=sc.pod_uid,
            eligible=allowed,
        )
        if isinstance(result, Reject) or k <= 0:
            continue
        gpus = sorted(node.gpus, key=lambda g: g.index)
        free = [
            p
            for p, g in enumerate(gpus)
            if g.healthy
            and not g.mig_enabled
            and g.holder_pod_uid in (None, sc.pod_uid)
            and (allowed is None or g.uuid in allowed)
        ]
        hidden = hidden_gpus(node, others, sc.now)
        assert len([p for p in free if gpus[p].uuid not in hidden]) >= k
        for p in free:
            g = gpus[p]
            assert g.free_bytes is not None and g.free_bytes >= vram
            assert not wanted or product_key(g.product) in wanted
        predicted = [p for p, g in enumerate(gpus) if g.uuid in result.gpu_uuids]
        assert predicted == [p for p in free if gpus[p].uuid not in hidden][:k]
        strict = not sc.settings.nvlink_best_effort
        if effective_nvlink(sc.demand, sc.settings) is NvlinkMode.REQUIRED and strict:
            islands = node_layout(node).islands
            for chosen in itertools.combinations(free, k):
                assert any(set(chosen) <= set(i) for i in islands)
