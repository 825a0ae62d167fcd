"""Nominating ahead of kube-scheduler's cycle: which pods are taken, the room held for the
nomination, what happens when the API server refuses it, and that the filter then places the
pod on the nominated node."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from extender.ahead import MAX_QUEUED, AheadNominator, Candidate, Outcome, candidate
from extender.app import create_app
from extender.bind import Binder
from extender.config import Settings
from extender.decisions import Mode, filter_nodes, read_demand
from extender.kubeapi import KubeError
from extender.metrics import ExtenderMetrics
from extender.objects import read_pod, read_reports
from extender.state import ClusterState, PendingPod
from placement.model import GIB, Demand, FitSettings, Reservation, ReservationState
from tests.extender.conftest import (
    NOW,
    FakePodAPI,
    gpu_node,
    pod_object,
    report_object,
    synced_state,
)


def plain(**kw: Any) -> dict[str, Any]:
    return pod_object("chat", uid="u1", **kw)


def with_(pod: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split(".")
    target = pod
    for p in parents:
        target = target.setdefault(p, {})
    target[last] = value
    return pod


def cand(event: str, raw: dict[str, Any]) -> Candidate | None:
    """What the nominator takes from a pod event, the pod read as the pod watch reads it."""
    info = read_pod(raw, now=NOW)
    if info is None:  # no identity: the pod watch drops the event before anything sees it
        return None
    return candidate(event, info, raw, scheduler_name="vramfit", policy="binpack")


def offer(n: AheadNominator, event: str, raw: dict[str, Any]) -> None:
    info = read_pod(raw, now=NOW)
    assert info is not None
    n.offer(event, info, raw)


CANDIDATES: dict[str, tuple[str, Callable[[], dict[str, Any]], bool]] = {
    "a new GPU pod of the profile": ("ADDED", plain, True),
    "the same pod, modified": ("MODIFIED", plain, True),
    "a deleted pod": ("DELETED", plain, False),
    "another scheduler's pod": (
        "ADDED",
        lambda: with_(plain(), "spec.schedulerName", "default-scheduler"),
        False,
    ),
    "a bound pod": ("MODIFIED", lambda: plain(node_name="n0"), False),
    "a pod nominated already": (
        "MODIFIED",
        lambda: with_(plain(), "status.nominatedNodeName", "n0"),
        False,
    ),
    "a terminating pod": ("MODIFIED", lambda: plain(deleting=True), False),
    "a running pod": ("MODIFIED", lambda: plain(phase="Running"), False),
    "a pod without GPUs": ("ADDED", lambda: plain(gpus=0, vram=None), False),
    "a pod whose VRAM annotation cannot be read": ("ADDED", lambda: plain(vram="lots"), False),
    "a pod that claims its GPUs through DRA": (
        "ADDED",
        lambda: with_(plain(), "spec.resourceClaims", [{"name": "gpu", "resourceClaimName": "c"}]),
        False,
    ),
    "a member of a multi-node group": (
        "ADDED",
        lambda: with_(
            plain(),
            "metadata.labels",
            {
                "leaderworkerset.sigs.k8s.io/name": "llama",
                "leaderworkerset.sigs.k8s.io/group-index": "0",
                "leaderworkerset.sigs.k8s.io/worker-index": "0",
                "leaderworkerset.sigs.k8s.io/group-key": "k",
                "leaderworkerset.sigs.k8s.io/size": "2",
            },
        ),
        False,
    ),
    "a pod without a UID": ("ADDED", lambda: with_(plain(), "metadata.uid", None), False),
    "a pod without a resourceVersion": (
        "ADDED",
        lambda: with_(plain(), "metadata.resourceVersion", ""),
        False,
    ),
    "a pod whose spec is not an object": ("ADDED", lambda: with_(plain(), "spec", []), False),
}


@pytest.mark.parametrize("case", CANDIDATES, ids=list(CANDIDATES))
def test_which_pods_are_nominated_ahead(case: str) -> None:
    event, make, wanted = CANDIDATES[case]
    c = cand(event, make())
    assert (c is not None) is wanted
    if c is not None:
        assert (c.uid, c.key, c.resource_version) == ("u1", "serving/chat", "100")
        assert c.demand == Demand(gpus=1, vram_per_gpu=70 * GIB)


@dataclass
class FakeNominateAPI:
    """The pods' status endpoint: records nominations and withdrawals, or answers every call
    with the HTTP status ``fail`` (0: the API server is not reached)."""

    fail: int | None = None
    nominated: list[tuple[str, str, str]] = field(default_factory=list)
    withdrawn: list[tuple[str, str]] = field(default_factory=list)

    def _refuse(self, what: str) -> None:
        if self.fail is not None:
            raise KubeError(what, self.fail, "refused" if self.fail else "ConnectionRefusedError")

    def nominate_pod(self, namespace: str, name: str, node: str, resource_version: str) -> None:
        self._refuse(f"nominate pod {namespace}/{name}")
        self.nominated.append((f"{namespace}/{name}", node, resource_version))

    def withdraw_nomination(self, namespace: str, name: str, node: str) -> None:
        self._refuse(f"withdraw pod {namespace}/{name}")
        self.withdrawn.append((f"{namespace}/{name}", node))


def world(free: tuple[float, ...] = (80, 80)) -> ClusterState:
    """Nodes n0, n1, ... of 8 H100s with ``free`` GiB free on every GPU of each."""
    return synced_state([gpu_node(f"n{i}", free_gib=f) for i, f in enumerate(free)])


def nominator(state: ClusterState, api: FakeNominateAPI) -> AheadNominator:
    return AheadNominator(
        state,
        api,
        scheduler_name="vramfit",
        policy="binpack",
        fit=FitSettings(),
        clock=lambda: NOW,
    )


def decide(state: ClusterState, pod: dict[str, Any], names: tuple[str, ...]) -> str | None:
    demand = read_demand(pod, "binpack")
    assert demand is not None
    with state.locked_view(NOW) as view:
        out = filter_nodes(
            demand,
            pod["metadata"]["uid"],
            names,
            view,
            now=NOW,
            mode=Mode.DECIDE,
            policy="binpack",
            settings=FitSettings(),
        )
    return out.chosen.node if out.chosen is not None else None


def test_a_nomination_holds_the_room_the_filter_would_take() -> None:
    state, api = world(), FakeNominateAPI()
    pod = pod_object("big", uid="u1", gpus=8)
    expected = decide(state, pod, ("n0", "n1"))
    c = cand("ADDED", pod)
    assert c is not None
    assert nominator(state, api).nominate(c) is Outcome.NOMINATED
    assert api.nominated == [("serving/big", expected, "100")]
    # Every other decision counts the room: a second 8-GPU pod goes to the other node.
    other = "n1" if expected == "n0" else "n0"
    assert decide(state, pod_object("next", uid="u2", gpus=8), ("n0", "n1")) == other
    # The nomination's pod event keeps the room; the filter then places the pod there.
    event = copy.deepcopy(pod)
    state.apply_pod("MODIFIED", read_info(with_(event, "status.nominatedNodeName", expected)))
    assert decide(state, pod, (str(expected),)) == expected
    held = room(state, "u1")
    assert held is not None and (held.node, held.state) == (expected, ReservationState.ASSUMED)


def room(state: ClusterState, uid: str) -> Reservation | None:
    with state.locked_view(NOW) as view:
        return view.fleet.claims.get(uid)


def read_info(raw: dict[str, Any]) -> Any:
    info = read_pod(raw, now=NOW)
    assert info is not None
    return info


def test_no_fit_holds_nothing_and_sets_nothing() -> None:
    state, api = world(free=(10, 10)), FakeNominateAPI()
    c = cand("ADDED", plain())
    assert c is not None
    assert nominator(state, api).nominate(c) is Outcome.NO_FIT
    assert api.nominated == [] and room(state, "u1") is None


def test_a_pod_the_scheduler_filtered_first_is_left_to_it() -> None:
    state, api = world(), FakeNominateAPI()
    c = cand("ADDED", plain())
    assert c is not None
    state.remember(PendingPod(c.uid, c.key, c.resource_version, c.demand, NOW))
    assert nominator(state, api).nominate(c) is Outcome.SCHEDULER_FIRST
    assert api.nominated == [] and room(state, "u1") is None


REFUSALS = {
    "the pod changed meanwhile": (409, Outcome.CONFLICT),
    "the pod is gone": (404, Outcome.CONFLICT),
    "the API server fails": (500, Outcome.FAILED),
    "the API server is unreachable": (0, Outcome.FAILED),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_a_nomination_refused_drops_its_room(case: str) -> None:
    status, outcome = REFUSALS[case]
    state = world()
    api = FakeNominateAPI(fail=status)
    c = cand("ADDED", plain())
    assert c is not None
    assert nominator(state, api).nominate(c) is outcome
    assert room(state, "u1") is None


def test_the_queue_takes_each_pod_once_and_stays_bounded() -> None:
    state, api = world(), FakeNominateAPI()
    n = nominator(state, api)
    offer(n, "ADDED", plain())
    offer(n, "MODIFIED", plain())
    assert n.queued() == 1
    # A pod that stops qualifying (bound, nominated, deleted) leaves the queue.
    offer(n, "MODIFIED", plain(node_name="n0"))
    assert n.queued() == 0
    for i in range(MAX_QUEUED + 5):
        offer(n, "ADDED", pod_object(f"p{i}", uid=f"q{i}"))
    assert n.queued() == MAX_QUEUED
    stop = threading.Event()
    n2 = nominator(world(), api)
    offer(n2, "ADDED", plain())
    worker = threading.Thread(target=n2.run, args=(stop,))
    worker.start()
    for _ in range(200):
        if api.nominated:
            break
        threading.Event().wait(0.01)
    offer(n2, "MODIFIED", plain())  # tried already: not queued again
    assert n2.queued() == 0
    stop.set()
    worker.join(5)
    assert not worker.is_alive()
    assert [key for key, _node, _rv in api.nominated] == ["serving/chat"]


def nominated_ahead(state: ClusterState, api: FakeNominateAPI, pod: dict[str, Any]) -> str:
    """Nominate ``pod`` ahead and deliver the pod event of its nomination; the node."""
    c = cand("ADDED", pod)
    assert c is not None
    assert nominator(state, api).nominate(c) is Outcome.NOMINATED
    node = api.nominated[-1][1]
    state.apply_pod(
        "MODIFIED", read_info(with_(copy.deepcopy(pod), "status.nominatedNodeName", node))
    )
    return node


def test_a_withdrawn_nomination_holds_no_room_until_it_names_another_node() -> None:
    state, api = world(), FakeNominateAPI()
    pod = pod_object("big", uid="u1", gpus=8)
    node = nominated_ahead(state, api, pod)
    assert state.withdraw_ahead("u1") == node
    assert room(state, "u1") is None
    assert state.withdraw_ahead("u1") is None  # only once
    # Events still naming the withdrawn node (the withdrawal is on its way) hold nothing...
    stale = with_(copy.deepcopy(pod), "status.nominatedNodeName", node)
    state.apply_pod("MODIFIED", read_info(stale))
    assert room(state, "u1") is None
    # ...while a nomination kube-scheduler sets after a preemption holds its room as ever.
    other = "n1" if node == "n0" else "n0"
    state.apply_pod(
        "MODIFIED", read_info(with_(copy.deepcopy(pod), "status.nominatedNodeName", other))
    )
    held = room(state, "u1")
    assert held is not None and held.node == other


def test_a_preemption_nomination_is_never_withdrawn() -> None:
    state = world()
    pod = with_(pod_object("hi", uid="u1", gpus=8), "status.nominatedNodeName", "n0")
    state.apply_pod("ADDED", read_info(pod))
    assert state.withdraw_ahead("u1") is None
    assert room(state, "u1") is not None


def filter_app(state: ClusterState, ahead: AheadNominator) -> FlaskClient:
    settings = Settings()
    metrics = ExtenderMetrics(CollectorRegistry())
    binder = Binder(state, FakePodAPI(), settings, clock=lambda: NOW)
    return create_app(
        settings, state, binder, metrics, clock=lambda: NOW, ahead=ahead
    ).test_client()


def test_the_filter_refusing_the_nominated_node_withdraws_the_nomination() -> None:
    state, api = world(), FakeNominateAPI()
    pod = pod_object("big", uid="u1", gpus=8)
    node = nominated_ahead(state, api, pod)
    ahead = nominator(state, api)
    client = filter_app(state, ahead)
    # The node fills up (another scheduler's pods, as its agent reports) before the pod's turn.
    report = read_reports([report_object(gpu_node(node, free_gib=10))])
    state.replace_reports(
        [*read_reports([report_object(gpu_node(n)) for n in ("n0", "n1") if n != node]), *report]
    )
    stale = with_(copy.deepcopy(pod), "status.nominatedNodeName", node)
    body = {"Pod": stale, "Nodes": None, "NodeNames": [node]}
    resp = client.post("/scheduler/filter", data=orjson.dumps(body))
    assert resp.status_code == 200 and resp.get_json()["NodeNames"] == []
    assert room(state, "u1") is None
    stop = threading.Event()
    stop_soon = threading.Timer(0.3, stop.set)
    stop_soon.start()
    ahead.run(stop)
    assert api.withdrawn == [("serving/big", node)]


def test_the_filter_placing_the_pod_ends_the_nomination_with_its_own_reservation() -> None:
    state, api = world(), FakeNominateAPI()
    pod = pod_object("big", uid="u1", gpus=8)
    node = nominated_ahead(state, api, pod)
    client = filter_app(state, nominator(state, api))
    stale = with_(copy.deepcopy(pod), "status.nominatedNodeName", node)
    resp = client.post(
        "/scheduler/filter", data=orjson.dumps({"Pod": stale, "Nodes": None, "NodeNames": [node]})
    )
    assert resp.get_json()["NodeNames"] == [node]
    held = room(state, "u1")
    assert held is not None and held.node == node and held.expires_at is not None
    assert state.withdraw_ahead("u1") is None


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
FIELDS = [
    "metadata",
    "metadata.uid",
    "metadata.labels",
    "metadata.annotations",
    "metadata.deletionTimestamp",
    "spec",
    "spec.schedulerName",
    "spec.nodeName",
    "spec.containers",
    "spec.resourceClaims",
    "status",
    "status.phase",
    "status.nominatedNodeName",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(FIELDS), JSON), max_size=4),
    st.sampled_from(["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]),
)
def test_no_pod_event_makes_the_watch_thread_raise(
    changes: list[tuple[str, Any]], event: str
) -> None:
    # The pod watch calls offer() on every event; an exception there would restart the watch.
    pod = plain()
    for path, value in changes:
        try:
            with_(pod, path, value)
        except (AttributeError, TypeError):
            continue  # a parent replaced by a non-object: the pod keeps that shape
    # candidate() itself reads every shape without raising (offer() also catches, as a last
    # resort, and logs); what it takes is a pod it can place.
    c = cand(event, pod)
    assert c is None or (c.demand.gpus > 0 and event in ("ADDED", "MODIFIED"))
    info = read_pod(pod, now=NOW)
    if info is not None:  # without an identity the pod watch drops the event itself
        n = nominator(STATE, FakeNominateAPI())
        n.offer(event, info, pod)
        assert n.queued() == (c is not None)


STATE = world()
