"""The vectorized fleet evaluation equals ``fit()`` and ``decide()`` on random fleets.

Same GPUs in the same order, same reasons, same resolvable flags, same scores bit for bit, same
chosen node; also after rows are replaced, renewed and removed in any order, and for requests
that name nodes in any order, or nodes the fleet does not hold.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from hypothesis import given, settings
from hypothesis import strategies as st

from placement.decide import decide
from placement.fit import fit
from placement.fleet import REASON_NO_REPORT, Fleet, decide_fleet, evaluate, verdict
from placement.model import Demand, FitSettings, NodeState, Reject, Reservation

SLOW = settings(deadline=None, max_examples=300)


class Scenario(Protocol):
    """What the ``scenarios`` fixture draws (tests/placement/conftest.py)."""

    nodes: list[NodeState]
    demand: Demand
    reservations: list[Reservation]
    now: float
    settings: FitSettings
    pod_uid: str


def assert_same_as_fit(fleet: Fleet, names: list[str], sc: Scenario) -> None:
    fits, rejects = evaluate(
        fleet,
        names,
        sc.demand,
        sc.reservations,
        now=sc.now,
        settings=sc.settings,
        pod_uid=sc.pod_uid,
    )
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

    answer = verdict(
        fleet,
        names,
        sc.demand,
        sc.reservations,
        now=sc.now,
        settings=sc.settings,
        pod_uid=sc.pod_uid,
    )
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
    expected = decide(
        sc.nodes, sc.demand, sc.reservations, now=sc.now, settings=sc.settings, pod_uid=sc.pod_uid
    )
    got = decide_fleet(
        fleet,
        names,
        sc.demand,
        sc.reservations,
        now=sc.now,
        settings=sc.settings,
        pod_uid=sc.pod_uid,
    )
    assert got.decision() == expected
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
    got = decide_fleet(
        fleet,
        [n for n in names if n in fleet],
        sc.demand,
        sc.reservations,
        now=sc.now,
        settings=sc.settings,
        pod_uid=sc.pod_uid,
    )
    expected = decide(
        [fleet.node(n) for n in names if n in fleet],
        sc.demand,
        sc.reservations,
        now=sc.now,
        settings=sc.settings,
        pod_uid=sc.pod_uid,
    )
    assert got.decision() == expected
