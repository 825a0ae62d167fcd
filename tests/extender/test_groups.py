"""Multi-node groups through the extender's verbs: the first member's filter reserves every
member, later members are sent to their reserved node, a group that cannot fit whole reserves
nothing and every member says why, reservations are renewed while members are pending and end
with their pods; a broken plan is decided again, whole.

The pod and Node watches are played by hand: each pod event goes to the state and to the group
table, as ``extender.server`` wires them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from extender.app import create_app
from extender.bind import Binder
from extender.config import Settings
from extender.groups import (
    TOPOLOGY_UNKNOWN,
    GroupSettings,
    GroupTable,
    NodeLabels,
    read_node,
)
from extender.metrics import ExtenderMetrics
from extender.state import ClusterState
from placement.membership import LWS_GROUP_INDEX, LWS_NAME, LWS_SIZE, LWS_WORKER_INDEX
from placement.model import ReservationState
from tests.extender.conftest import (
    NOW,
    Clock,
    FakePodAPI,
    gpu_node,
    lease_object,
    lease_of,
    pod_object,
    pod_of,
    report_object,
    report_of,
    synced_state,
)

ZONE = "topology.kubernetes.io/zone"


def member(
    lws: str, worker: int, *, size: int = 2, group: int = 0, gpus: int = 8, uid: str = ""
) -> dict[str, Any]:
    """A LeaderWorkerSet pod as LWS makes it: labels, size annotation, names."""
    name = f"{lws}-{group}" if worker == 0 else f"{lws}-{group}-{worker}"
    pod = pod_object(name, gpus=gpus, uid=uid or f"uid-{name}")
    pod["metadata"]["labels"] = {
        LWS_NAME: lws,
        LWS_GROUP_INDEX: str(group),
        LWS_WORKER_INDEX: str(worker),
    }
    pod["metadata"]["annotations"][LWS_SIZE] = str(size)
    return pod


@dataclass
class World:
    state: ClusterState
    table: GroupTable
    api: FakePodAPI
    clock: Clock
    client: Any
    nodes: list[str] = field(default_factory=list)

    def add(self, *pods: dict[str, Any]) -> None:
        _, apply = self.table.following(lambda _p, _t: None, self.state.apply_pod)
        for raw in pods:
            self.api.add(raw)
            apply("ADDED", pod_of(raw))

    def delete(self, raw: dict[str, Any]) -> None:
        _, apply = self.table.following(lambda _p, _t: None, self.state.apply_pod)
        apply("DELETED", pod_of(raw))

    def filter(self, raw: dict[str, Any], names: list[str] | None = None) -> dict[str, Any]:
        resp = self.client.post(
            "/scheduler/filter", json={"Pod": raw, "NodeNames": names or self.nodes}
        )
        assert resp.status_code == 200
        body: dict[str, Any] = resp.get_json()
        return body

    def passed(self, raw: dict[str, Any]) -> list[str]:
        names: list[str] = self.filter(raw)["NodeNames"]
        return names

    def bind(self, raw: dict[str, Any], node: str) -> str:
        meta = raw["metadata"]
        resp = self.client.post(
            "/scheduler/bind",
            json={
                "PodName": meta["name"],
                "PodNamespace": meta["namespace"],
                "PodUID": meta["uid"],
                "Node": node,
            },
        )
        error: str = resp.get_json()["Error"]
        bound = self.api.pods[f"{meta['namespace']}/{meta['name']}"]
        self.add(bound)  # the watch sees the binding and the annotation
        return error

    def tick(self, seconds: float) -> None:
        """Move the clock; every agent reports and renews its Lease meanwhile."""
        self.clock.now += seconds
        for name in self.nodes:
            self.state.apply_lease("MODIFIED", lease_of(lease_object(name, self.clock.now)))
            report = gpu_node(name, observed_at=self.clock.now)
            self.state.apply_report("MODIFIED", report_of(report_object(report)))

    def reserved(self) -> dict[str, str]:
        """Pod UID -> node of every active reservation."""
        now = self.clock()
        return {r.pod_uid: r.node for r in self.state.fleet.claims if r.active(now)}


def world(
    nodes: int = 3, *, busy: tuple[int, ...] = (), settings: GroupSettings | None = None
) -> World:
    gpus = [gpu_node(f"n{i}", held={0: "other"} if i in busy else None) for i in range(nodes)]
    state = synced_state(gpus)
    table = GroupTable(state, settings or GroupSettings(topology_key=""))
    api, clock = FakePodAPI(), Clock()
    config = Settings()
    binder = Binder(state, api, config, clock=clock)
    app = create_app(
        config, state, binder, ExtenderMetrics(CollectorRegistry()), clock=clock, groups=table
    )
    return World(state, table, api, clock, app.test_client(), [g.name for g in gpus])


def test_first_member_reserves_the_whole_group_and_later_members_follow() -> None:
    w = world()
    leader, worker = member("llama", 0), member("llama", 1)
    w.add(leader, worker)
    (first,) = w.passed(worker)
    reserved = w.reserved()
    assert set(reserved) == {"uid-llama-0", "uid-llama-0-1"}
    assert reserved["uid-llama-0-1"] == first
    assert reserved["uid-llama-0"] != first  # 8 GPUs each: two nodes
    assert w.passed(leader) == [reserved["uid-llama-0"]]
    assert w.bind(worker, first) == ""
    assert w.bind(leader, reserved["uid-llama-0"]) == ""
    states = {r.pod_uid: r.state for r in w.state.fleet.claims}
    assert states == {
        "uid-llama-0": ReservationState.BOUND,
        "uid-llama-0-1": ReservationState.BOUND,
    }


def test_a_group_that_does_not_fit_whole_reserves_nothing_and_every_member_says_why() -> None:
    w = world(2, busy=(1,))
    leader, worker = member("llama", 0), member("llama", 1)
    w.add(leader, worker)
    for pod in (leader, worker):
        body = w.filter(pod)
        assert body["NodeNames"] == []
        reasons = set(body["FailedNodes"].values())
        assert reasons == {
            "vramfit: this pod's group of 2 pods (16 GPUs) does not fit whole on one pool: "
            "at most 1 of 2 fit together now; nothing is reserved until all do"
        }
        assert set(body["FailedNodes"]) == {"n0", "n1"}
    assert w.reserved() == {}


def test_a_single_pod_still_takes_the_node_a_group_could_not_use() -> None:
    w = world(2, busy=(1,))
    w.add(member("llama", 0), member("llama", 1))
    assert w.filter(member("llama", 0))["NodeNames"] == []
    lone = pod_object("lone", gpus=8, uid="uid-lone")
    w.add(lone)
    assert w.passed(lone) == ["n0"]


def test_an_incomplete_group_waits_until_every_member_exists() -> None:
    w = world()
    leader = member("llama", 0, size=3)
    w.add(leader)
    body = w.filter(leader)
    assert body["NodeNames"] == []
    assert set(body["FailedNodes"].values()) == {
        "vramfit: waiting for this pod's group: 1 of 3 pods exist; nothing is reserved until all do"
    }
    assert w.reserved() == {}
    w.add(member("llama", 1, size=3), member("llama", 2, size=3))
    assert len(w.passed(leader)) == 1
    assert len(set(w.reserved().values())) == 3


def test_two_groups_never_split_the_capacity_between_them() -> None:
    w = world(3)
    a = [member("a", 0), member("a", 1)]
    b = [member("b", 0), member("b", 1)]
    w.add(*a, *b)
    assert len(w.passed(a[0])) == 1
    assert w.filter(b[0])["NodeNames"] == []
    assert w.filter(b[1])["NodeNames"] == []
    assert set(w.reserved()) == {"uid-a-0", "uid-a-0-1"}
    assert len(w.passed(a[1])) == 1


def test_a_broken_plan_is_decided_again_whole() -> None:
    w = world(3)
    leader, worker = member("llama", 0), member("llama", 1)
    w.add(leader, worker)
    w.passed(leader)
    w.state.release("uid-llama-0-1")  # e.g. its bind failed
    assert "uid-llama-0-1" not in w.reserved()
    (node,) = w.passed(worker)
    reserved = w.reserved()
    assert set(reserved) == {"uid-llama-0", "uid-llama-0-1"}
    assert reserved["uid-llama-0-1"] == node


def test_a_reserved_node_kube_scheduler_did_not_offer_moves_the_group() -> None:
    w = world(4)
    leader, worker = member("llama", 0), member("llama", 1)
    w.add(leader, worker)
    w.passed(leader)
    taken = w.reserved()["uid-llama-0-1"]
    others = [n for n in w.nodes if n != taken]
    body = w.filter(worker, others)
    assert len(body["NodeNames"]) == 1 and body["NodeNames"][0] in others
    reserved = w.reserved()
    assert set(reserved) == {"uid-llama-0", "uid-llama-0-1"}
    assert taken not in reserved.values()


def test_reservations_are_renewed_while_members_are_pending_and_bounded() -> None:
    hold = GroupSettings(hold_s=100.0, max_hold_s=250.0, topology_key="")
    w = world(settings=hold)
    leader, worker = member("llama", 0), member("llama", 1)
    w.add(leader, worker)
    w.passed(leader)
    for _ in range(2):
        w.tick(90)
        w.passed(worker)  # a member's filter: the group is still pending
        assert len(w.reserved()) == 2
    expiry = {r.expires_at for r in w.state.fleet.claims}
    assert expiry == {NOW + 250.0}  # never longer than max_hold_s after the decision
    w.tick(NOW + 251 - w.clock.now)
    assert w.reserved() == {}


def test_reservations_end_when_the_group_is_deleted() -> None:
    w = world()
    leader, worker = member("llama", 0), member("llama", 1)
    w.add(leader, worker)
    w.passed(leader)
    w.delete(worker)
    assert set(w.reserved()) == {"uid-llama-0"}
    body = w.filter(leader)  # the group is not whole any more: the rest is released
    assert body["NodeNames"] == []
    assert w.reserved() == {}
    w.delete(leader)
    assert w.table.sizes() == {"groups": 0, "members": 0, "plans": 0, "nodes": 0}


def test_an_unreadable_group_size_is_an_invalid_pod() -> None:
    w = world()
    pod = member("llama", 0)
    pod["metadata"]["annotations"][LWS_SIZE] = "many"
    body = w.filter(pod)
    assert body["NodeNames"] == []
    assert set(body["FailedAndUnresolvableNodes"].values()) == {
        "annotation leaderworkerset.sigs.k8s.io/size is 'many', not a whole number of pods"
    }


def test_members_without_gpus_complete_the_group_and_pass_through() -> None:
    w = world()
    router = member("llama", 0, gpus=0)
    worker = member("llama", 1)
    w.add(router, worker)
    assert w.passed(router) == w.nodes
    assert len(w.passed(worker)) == 1
    assert set(w.reserved()) == {"uid-llama-0-1"}


def test_one_topology_domain_once_nodes_are_listed() -> None:
    zoned = GroupSettings(topology_key=ZONE)
    w = world(4, busy=(0,), settings=zoned)
    leader, worker = member("llama", 0), member("llama", 1)
    w.add(leader, worker)
    body = w.filter(leader)
    assert body["NodeNames"] == []
    assert set(body["FailedNodes"].values()) == {TOPOLOGY_UNKNOWN}
    zones = {"n0": "a", "n1": "a", "n2": "b", "n3": "b"}
    w.table.replace_nodes(NodeLabels(n, ((ZONE, z),)) for n, z in zones.items())
    w.passed(leader)
    assert set(w.reserved().values()) == {"n2", "n3"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param({"metadata": {}}, None, id="no-name"),
        pytest.param(
            {"metadata": {"name": "n1", "labels": {ZONE: "a", "kubernetes.io/os": "linux"}}},
            NodeLabels("n1", ((ZONE, "a"),)),
            id="topology-labels-only",
        ),
        pytest.param({"metadata": {"name": "n1"}}, NodeLabels("n1", ()), id="no-labels"),
    ],
)
def test_read_node(raw: dict[str, Any], expected: NodeLabels | None) -> None:
    assert read_node(raw) == expected


def test_a_terminating_member_does_not_complete_its_group() -> None:
    w = world()
    leader = member("llama", 0)
    old = pod_object("llama-0-1", gpus=8, uid="uid-old", deleting=True)
    old["metadata"]["labels"] = member("llama", 1)["metadata"]["labels"]
    old["metadata"]["annotations"] |= {LWS_SIZE: "2"}
    w.add(leader, old)
    assert w.table.sizes()["members"] == 1
    assert w.filter(leader)["NodeNames"] == []
    assert w.reserved() == {}
