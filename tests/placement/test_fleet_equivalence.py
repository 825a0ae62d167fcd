"""The fleet's fast path equals the reference, ``fit()`` and ``decide()``, on random fleets.

``placement.reference`` is the readable definition of placement; ``placement.fleet`` is what
the extender runs. This test is what holds the one to the other.

Same GPUs in the same order, same reasons, same resolvable flags, same scores bit for bit, same
chosen node; also after rows are replaced, renewed and removed in any order, and for requests
that name nodes in any order, or nodes the fleet does not hold; with cold and warm loads in
flight against the load budget, and with demand waiting that the choice keeps room for. The
lean forms (no reasons, only the chosen fit) choose the same node, and the reject counts by
class agree with the reasons ``fit()`` words. And every fit is safe whatever set of GPUs the kubelet hands out.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from placement.deviceplugin import mask_of, possible_allocations
from placement.fit import effective_nvlink, fit, hidden_gpus, pending_counts, product_key
from placement.fleet import (
    REASON_NO_REPORT,
    REJECT_CLASSES,
    Fleet,
    FleetDecision,
    Query,
    decide_fleet,
    evaluate,
    score_nodes,
    verdict,
)
from placement.fleet.evaluation import CODE_OK, evaluate_rows, leanable
from placement.fleet.rejects import reasons_of
from placement.fleet.store import names_hash
from placement.model import Decision, NodeState, NvlinkMode, Reject
from placement.reference import decide
from placement.topology import node_layout
from tests.placement.conftest import Scenario

SLOW = settings(deadline=None, max_examples=300)

# How each of fit()'s reasons reads, by reject class: an oracle written from the reason texts,
# independent of the result codes the fleet counts from.
CLASS_OF_REASON = (
    ("node reports no GPUs", "no-gpus"),
    ("no GPU of product", "gpu-product"),
    ("GPU(s) with at least", "gpu-too-small"),
    ("on one NVLink island; the largest island", "nvlink-island-too-small"),
    ("GPUs on one NVLink island; the device plugin may", "nvlink-split"),
    ("on every unallocated GPU", "unallocated-gpu-unfit"),
    ("node agent reports an error", "agent-error"),
    ("no node agent heartbeat", "no-lease"),
    ("node agent heartbeat is", "lease-expired"),
    ("GPU report is", "report-stale"),
    ("free now", "gpus-busy"),
    ("load budget", "load-budget"),
    (REASON_NO_REPORT, "no-report"),
)


def class_of(reason: str) -> str:
    return next(c for needle, c in CLASS_OF_REASON if needle in reason)


def assert_scores_agree(fleet: Fleet, names: list[str], sc: Scenario, expected: Decision) -> None:
    """``score_nodes`` gives each named node ``decide()``'s score, NaN where it does not fit."""
    values = score_nodes(fleet, query(sc, names))
    scores = dict(expected.scores)
    assert len(values) == len(names)
    for name, value in zip(names, values.tolist(), strict=True):
        if name in scores:
            assert value == scores[name]
        else:
            assert math.isnan(value)


def assert_lean_forms_agree(got: FleetDecision, expected: Decision, lean: FleetDecision) -> None:
    """``reasons=False, all_fits=False`` keeps the choice and the counts, and leaves out only
    what it says it leaves out."""
    counts: dict[str, int] = {}
    for r in expected.rejects:
        counts[class_of(r.reason)] = counts.get(class_of(r.reason), 0) + 1
    assert dict(got.reject_counts) == dict(lean.reject_counts) == counts
    assert set(counts) <= REJECT_CLASSES
    assert lean.chosen == expected.chosen
    if expected.chosen is None:
        assert lean.decision() == expected  # nothing fits: the reasons are the answer
        return
    name = expected.chosen.node
    assert lean.fits == {name: expected.chosen.gpu_uuids}
    assert lean.scores == {name: dict(expected.scores)[name]}
    assert lean.rejects == {}
    assert lean.reasons is not bool(expected.rejects)
    assert lean.all_fits is (len(expected.fits) == 1)
    if not (lean.reasons and lean.all_fits):
        with pytest.raises(ValueError, match="reasons=False or all_fits=False"):
            lean.decision()


def query(sc: Scenario, names: Sequence[str]) -> Query:
    """The fleet's question for the drawn scenario over ``names``."""
    return Query(
        names,
        sc.demand,
        sc.reservations,
        now=sc.now,
        settings=sc.settings,
        pod_uid=sc.pod_uid,
        waiting=sc.waiting,
    )


def reference(sc: Scenario, nodes: list[NodeState]) -> Decision:
    """``decide()``'s answer for the drawn scenario over ``nodes``."""
    return decide(
        nodes,
        sc.demand,
        sc.reservations,
        now=sc.now,
        settings=sc.settings,
        pod_uid=sc.pod_uid,
        waiting=sc.waiting,
    )


def assert_same_as_fit(fleet: Fleet, names: list[str], sc: Scenario) -> None:
    fits, rejects = evaluate(fleet, query(sc, names))
    lean_fits, lean_rejects = evaluate(fleet, query(sc, names), reasons=False)
    assert lean_fits == fits
    assert lean_rejects == ({} if fits else rejects)
    expected_fits: dict[str, tuple[str, ...]] = {}
    expected_rejects: dict[str, Reject] = {}
    for name in names:
        if name not in fleet:
            expected_rejects[name] = Reject(name, REASON_NO_REPORT, True)
            continue
        result = fit(
            fleet.node(name),
            sc.demand,
            sc.reservations,
            now=sc.now,
            settings=sc.settings,
            pod_uid=sc.pod_uid,
        )
        if isinstance(result, Reject):
            expected_rejects[name] = result
        else:
            expected_fits[name] = result.gpu_uuids
    assert fits == expected_fits
    assert rejects == expected_rejects
    assert list(fits) == list(expected_fits)  # request order
    assert list(rejects) == list(expected_rejects)

    answer = verdict(fleet, query(sc, names))
    assert answer.fits == fits
    assert answer.failed == {n: r.reason for n, r in rejects.items() if r.resolvable}
    assert answer.unresolvable == {n: r.reason for n, r in rejects.items() if not r.resolvable}


@SLOW
@given(data=st.data())
def test_decide_fleet_equals_decide(
    scenarios: st.SearchStrategy[Scenario], data: st.DataObject
) -> None:
    sc = data.draw(scenarios)
    fleet = Fleet(sc.nodes, capacity=1, width=1)  # grows as nodes arrive
    names = [n.name for n in sc.nodes]
    expected = reference(sc, sc.nodes)
    got = decide_fleet(fleet, query(sc, names))
    assert got.decision() == expected
    lean = decide_fleet(fleet, query(sc, names), reasons=False, all_fits=False)
    assert_lean_forms_agree(got, expected, lean)
    every = fleet.every_name()  # the fleet's own list, as extender.ahead asks
    assert decide_fleet(fleet, query(sc, every), reasons=False, all_fits=False).chosen == (
        expected.chosen
    )
    assert_scores_agree(fleet, names, sc, expected)
    assert_same_as_fit(fleet, names, sc)


@SLOW
@given(data=st.data())
def test_evaluate_equals_fit_after_updates(
    scenarios: st.SearchStrategy[Scenario],
    fleets: st.SearchStrategy[list[NodeState]],
    data: st.DataObject,
) -> None:
    sc = data.draw(scenarios)
    earlier = data.draw(fleets)  # older reports, some for the same node names
    fleet = Fleet(earlier, capacity=2, width=2)
    for node in data.draw(st.permutations(sc.nodes)):
        fleet.replace(node)
    current = {n.name: n for n in sc.nodes} | {
        n.name: n for n in earlier if n.name not in {m.name for m in sc.nodes}
    }
    for name in data.draw(st.lists(st.sampled_from(sorted(current)), unique=True, max_size=3)):
        if data.draw(st.booleans()):
            fleet.remove(name)
            del current[name]
        else:
            renewed = data.draw(st.none() | st.sampled_from([sc.now, sc.now - 60.0]))
            fleet.renew(name, renewed, 30.0)
            current[name] = dataclasses.replace(
                current[name], lease_renewed_at=renewed, lease_duration_s=30.0
            )
    assert sorted(fleet.names()) == sorted(current)
    for name, node in current.items():
        assert fleet.node(name) == node
    names = data.draw(st.permutations([*current, "node-unknown"]))
    names = names[: data.draw(st.integers(0, len(names)))]
    assert_same_as_fit(fleet, names, sc)
    got = decide_fleet(fleet, query(sc, [n for n in names if n in fleet]))
    expected = reference(sc, [fleet.node(n) for n in names if n in fleet])
    assert got.decision() == expected
    lean = decide_fleet(fleet, query(sc, names), reasons=False, all_fits=False)
    assert_scores_agree(fleet, names, sc, expected)
    missing = [n for n in names if n not in fleet]
    counts: dict[str, int] = {"no-report": len(missing)} if missing else {}
    for r in expected.rejects:
        counts[class_of(r.reason)] = counts.get(class_of(r.reason), 0) + 1
    assert lean.chosen == expected.chosen
    assert dict(lean.reject_counts) == counts
    if expected.chosen is None:
        # Request order; the fleet's own when the request names every node (the shortcut).
        whole = len(names) == len(fleet) > 1 and set(names) == set(fleet.names())
        order = fleet.every_name() if whole else names
        assert list(lean.rejects) == [n for n in order if n in lean.rejects]
        assert {n: r for n, r in lean.rejects.items() if n in fleet} == {
            r.node: r for r in expected.rejects
        }
        assert {n for n, r in lean.rejects.items() if r.reason == REASON_NO_REPORT} >= set(missing)


@SLOW
@given(data=st.data())
def test_every_fit_is_safe_whatever_the_kubelet_hands_out(
    scenarios: st.SearchStrategy[Scenario], data: st.DataObject
) -> None:
    """The safety invariant, from the node's own fields: every set the device plugin may give
    from the unallocated GPUs fits the pod, enough stay for the pods still waiting, the
    prediction is one of those sets, and a pod that requires one NVLink island (strictly) gets
    one whatever the plugin gives."""
    sc = data.draw(scenarios)
    k, vram = sc.demand.gpus, sc.demand.vram_per_gpu
    wanted = {product_key(p) for p in sc.demand.products}
    others = [r for r in sc.reservations if r.pod_uid != sc.pod_uid]
    for node in sc.nodes:
        result = fit(node, sc.demand, others, now=sc.now, settings=sc.settings, pod_uid=sc.pod_uid)
        if isinstance(result, Reject) or k <= 0:
            continue
        gpus = sorted(node.gpus, key=lambda g: g.index)
        free = [
            p
            for p, g in enumerate(gpus)
            if g.healthy and not g.mig_enabled and g.holder_pod_uid in (None, sc.pod_uid)
        ]
        layout = node_layout(node)
        possible = possible_allocations(mask_of(free), k, layout)
        assert possible
        for allocation in possible:
            for p in allocation:
                g = gpus[p]
                assert g.free_bytes is not None and g.free_bytes >= vram
                assert not wanted or product_key(g.product) in wanted
        waiting = pending_counts(node, others, sc.now)
        assert len(free) - sum(waiting) >= k
        hidden = hidden_gpus(node, others, sc.now)
        available = [p for p in free if gpus[p].uuid not in hidden]
        predicted = frozenset(p for p, g in enumerate(gpus) if g.uuid in result.gpu_uuids)
        assert predicted in possible_allocations(mask_of(available), k, layout)
        strict = not sc.settings.nvlink_best_effort
        if effective_nvlink(sc.demand, sc.settings) is NvlinkMode.REQUIRED and strict:
            assert all(any(s <= set(i) for i in layout.islands) for s in possible)


@SLOW
@given(data=st.data())
def test_lean_evaluation_equals_the_full_one(
    scenarios: st.SearchStrategy[Scenario],
    fleets: st.SearchStrategy[list[NodeState]],
    data: st.DataObject,
) -> None:
    """The lean path (per-row tables kept as reports arrive) gives the full path's codes, free
    GPUs and picks, also after rows are replaced and removed; it is taken exactly where
    ``leanable`` says, and words no reasons."""
    sc = data.draw(scenarios)
    if data.draw(st.booleans()):  # a pod of any product, as most are: the lean path's case
        sc = dataclasses.replace(sc, demand=dataclasses.replace(sc.demand, products=frozenset()))
    fleet = Fleet(data.draw(fleets), capacity=1, width=1)
    for node in data.draw(st.permutations(sc.nodes)):
        fleet.replace(node)
    for name in data.draw(st.lists(st.sampled_from(sorted(fleet.names())), max_size=3)):
        fleet.remove(name)
    names = data.draw(st.permutations(fleet.names()))
    ask = query(sc, names)
    full = evaluate_rows(fleet, ask)
    lean = evaluate_rows(fleet, ask, lean=True)
    assert lean.lean is (sc.demand.gpus > 0 and leanable(fleet, ask))
    assert not full.lean
    np.testing.assert_array_equal(lean.code, full.code)
    np.testing.assert_array_equal(lean.chosen, full.chosen)
    np.testing.assert_array_equal(lean.free_now, full.free_now)
    ok = full.code == CODE_OK
    np.testing.assert_array_equal(lean.same_island[ok], full.same_island[ok])
    if sc.demand.gpus == 1:
        np.testing.assert_array_equal(lean.slot[ok], full.slot[ok])
    if lean.lean and (lean.code[lean.rows] != CODE_OK).any():
        with pytest.raises(ValueError, match="lean evaluation words no reasons"):
            reasons_of(fleet, names, lean, sc.demand)


@SLOW
@given(data=st.data())
def test_a_request_that_only_hashes_like_every_node_gets_the_same_choice(
    scenarios: st.SearchStrategy[Scenario], data: st.DataObject
) -> None:
    """The whole-fleet shortcut decides over every node when the set of names hashes like the
    fleet's; were that a collision (some nodes left out, unknown ones named), the chosen node
    is still checked against the request, and the choice is ``decide()``'s over the named
    nodes."""
    sc = data.draw(scenarios)
    fleet = Fleet(sc.nodes, capacity=1, width=1)
    held = sorted(fleet.names())
    named = data.draw(st.lists(st.sampled_from(held), unique=True, max_size=len(held)))
    names = data.draw(
        st.permutations([*named] + [f"unknown-{i}" for i in range(len(held) - len(named))])
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Fleet, "every_hash", lambda self: names_hash(names))
        lean = decide_fleet(fleet, query(sc, names), reasons=False, all_fits=False)
    expected = reference(sc, [fleet.node(n) for n in names if n in fleet])
    assert lean.chosen == expected.chosen
