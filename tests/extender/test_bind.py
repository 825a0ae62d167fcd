"""Bind: re-check under the node lock, then one Binding that carries the reservation annotation,
with UID and resourceVersion preconditions; release on every failure, no lock outlives the
request, binds to one node do not wait for each other, and two binds of one pod do.

The API server here is ``FakePodAPI`` (so failures happen on demand); the same paths run
against the real API server in the end-to-end tests.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest

from extender.bind import Binder
from extender.config import Settings
from extender.decisions import Mode
from extender.state import PendingPod
from extender.wire import BindingArgs
from placement.annotation import decode_reservation
from placement.model import GIB, Demand
from tests.extender.conftest import (
    NOW,
    Clock,
    FakePodAPI,
    build_extender,
    gpu_node,
    pod_object,
    pod_of,
    report_object,
    report_of,
    synced_state,
)

NODES = ["n0", "n1"]


def setup(
    mode: Mode = Mode.DECIDE, *, filter_first: bool = True, **pod_kw: Any
) -> tuple[Any, dict[str, Any], BindingArgs]:
    ext = build_extender(synced_state([gpu_node("n0"), gpu_node("n1")]), mode=mode)
    pod = pod_object("p", uid="uid-p", gpus=2, **pod_kw)
    ext.api.add(pod)
    node = "n0"
    if filter_first:
        resp = ext.client.post("/scheduler/filter", json={"Pod": pod, "NodeNames": NODES})
        node = resp.get_json()["NodeNames"][0]
    return ext, pod, BindingArgs("p", "serving", "uid-p", node)


def bind(ext: Any, args: BindingArgs) -> str:
    resp = ext.client.post(
        "/scheduler/bind",
        json={
            "PodName": args.pod_name,
            "PodNamespace": args.pod_namespace,
            "PodUID": args.pod_uid,
            "Node": args.node,
        },
    )
    assert resp.status_code == 200
    error: str = resp.get_json()["Error"]
    return error


def held(ext: Any) -> dict[str, int]:
    return {k: v for k, v in ext.state.reservations_by_state(NOW).items() if v}


def assert_unlocked(ext: Any, node: str) -> None:
    lock = ext.state.node_lock(node)
    assert lock.acquire(blocking=False), "a node lock outlived its request"
    lock.release()


def test_happy_path_binds_with_the_annotation_in_one_write() -> None:
    ext, pod, args = setup()
    assert bind(ext, args) == ""
    assert ext.api.calls == ["bind p n0"]
    assert pod["spec"]["nodeName"] == "n0"
    r = decode_reservation(
        pod["metadata"]["annotations"]["vramfit.io/reservation"], pod_uid="x", pod_key="y"
    )
    assert r.node == "n0" and r.gpu_uuids == ("GPU-n0-0", "GPU-n0-1")
    assert held(ext) == {"bound": 1}
    assert_unlocked(ext, "n0")


def test_stale_resource_version_rereads_and_retries_once() -> None:
    ext, pod, args = setup()
    pod["metadata"]["resourceVersion"] = "150"  # a controller touched the pod since filter
    assert bind(ext, args) == ""
    assert ext.api.calls == ["bind p n0", "get p", "bind p n0"]
    assert "vramfit.io/reservation" in pod["metadata"]["annotations"]


def test_conflict_with_a_pod_bound_meanwhile_fails_and_releases() -> None:
    ext, pod, args = setup()
    pod["metadata"]["resourceVersion"] = "150"
    pod["spec"]["nodeName"] = "n1"
    error = bind(ext, args)
    assert "already bound to n1" in error
    assert held(ext) == {}
    assert_unlocked(ext, "n0")


def test_refused_binding_releases_and_writes_no_annotation() -> None:
    ext, pod, args = setup()
    ext.api.fail["bind"] = [500]
    error = bind(ext, args)
    assert "cannot bind pod serving/p to n0" in error and "HTTP 500" in error
    assert ext.api.calls == ["bind p n0"]
    assert held(ext) == {}
    assert "vramfit.io/reservation" not in pod["metadata"]["annotations"]
    # The annotation's own watch event must not bring the reservation back.
    ext.state.apply_pod("MODIFIED", pod_of(pod | {"metadata": pod["metadata"]}))
    assert held(ext) == {}
    assert_unlocked(ext, "n0")


def test_a_second_conflict_fails_and_releases() -> None:
    ext, pod, args = setup()
    ext.api.fail["bind"] = [409, 409]
    assert "cannot bind pod serving/p to n0" in bind(ext, args)
    assert ext.api.calls == ["bind p n0", "get p", "bind p n0", "get p"]
    assert held(ext) == {} and "nodeName" not in pod["spec"]
    assert "vramfit.io/reservation" not in pod["metadata"]["annotations"]


def test_binding_already_done_to_the_same_node_succeeds() -> None:
    ext, pod, args = setup()
    ext.api.fail["bind"] = [409]
    pod["spec"]["nodeName"] = "n0"
    assert bind(ext, args) == ""
    assert held(ext) == {"bound": 1}


def test_recheck_refuses_a_node_that_filled_up_since_filter() -> None:
    ext, _, args = setup()
    full = gpu_node("n0", held={i: f"intruder-{i}" for i in range(8)})
    ext.state.apply_report("MODIFIED", report_of(report_object(full)))
    error = bind(ext, args)
    assert "node n0 can no longer take pod serving/p" in error
    assert "8 held" in error
    assert ext.api.calls == []
    assert held(ext) == {}


def test_bind_after_a_filter_without_resource_version_reads_the_pod() -> None:
    ext, pod, args = setup(Mode.ALL_FEASIBLE, filter_first=False)
    del pod["metadata"]["resourceVersion"]
    ext.client.post("/scheduler/filter", json={"Pod": pod, "NodeNames": NODES})
    pod["metadata"]["resourceVersion"] = "100"
    assert bind(ext, args) == ""
    assert ext.api.calls == ["get p", "bind p n0"]
    assert "vramfit.io/reservation" in pod["metadata"]["annotations"]


def test_pod_gone_before_bind() -> None:
    ext, _, args = setup()
    ext.api.pods.clear()
    assert "cannot bind pod serving/p to n0" in bind(ext, args)
    assert held(ext) == {}


def test_pod_replaced_under_its_name_is_never_annotated() -> None:
    ext, pod, args = setup()
    pod["metadata"]["uid"] = "uid-new"  # deleted and created again since filter
    assert "was replaced while binding" in bind(ext, args)
    assert "nodeName" not in pod["spec"]
    assert "vramfit.io/reservation" not in pod["metadata"]["annotations"]


def test_uid_mismatch_is_refused() -> None:
    ext, _, args = setup()
    error = bind(ext, replace(args, pod_uid="someone-else"))
    assert "vramfit did not filter pod serving/p with UID someone-else" in error


def test_pod_without_gpu_demand_is_just_bound() -> None:
    ext = build_extender(synced_state([gpu_node("n0")]))
    web = pod_object("web", gpus=0, uid="w")
    ext.api.add(web)
    ext.client.post("/scheduler/filter", json={"Pod": web, "NodeNames": ["n0"]})
    assert bind(ext, BindingArgs("web", "serving", "w", "n0")) == ""
    assert ext.api.calls == ["bind web n0"]


def test_lock_wait_is_bounded() -> None:
    state = synced_state([gpu_node("n0")])
    api = FakePodAPI()
    api.add(pod_object("p", uid="uid-p"))
    binder = Binder(state, api, Settings(bind_lock_timeout_s=0.05), clock=Clock())
    state.remember(PendingPod("uid-p", "serving/p", "", None, NOW))
    lock = state.node_lock("n0")
    lock.acquire()
    try:
        out = binder.bind(BindingArgs("p", "serving", "uid-p", "n0"))
    finally:
        lock.release()
    assert out.code == "lock-timeout" and "did not finish within" in out.error


@pytest.mark.parametrize("failure", ["bind", "get"])
def test_no_lock_outlives_a_failed_request(failure: str) -> None:
    ext, _, args = setup()
    if failure == "get":  # bind reads the pod when filter saw no resourceVersion
        ext.state.remember(PendingPod("uid-p", "serving/p", "", None, NOW))
    ext.api.fail[failure] = [503, 503]
    assert bind(ext, args) != ""
    assert_unlocked(ext, "n0")


def test_a_pod_vramfit_did_not_filter_is_refused() -> None:
    """Regression: whoever reached the verb port could bind any pending pod, in any
    namespace, to any node name; bind now takes only pods this process filtered."""
    ext, pod, args = setup(filter_first=False)
    error = bind(ext, args)
    assert "vramfit did not filter pod serving/p" in error
    assert ext.api.calls == [] and "nodeName" not in pod["spec"]


def test_a_bind_naming_another_pod_than_the_filtered_one_is_refused() -> None:
    ext, _, args = setup()
    other = pod_object("q", uid="uid-q", namespace="kube-system")
    ext.api.add(other)
    error = bind(ext, replace(args, pod_name="q", pod_namespace="kube-system"))
    assert "vramfit did not filter pod kube-system/q" in error
    assert ext.api.calls == []


def test_a_node_outside_the_view_is_refused_before_any_lock() -> None:
    ext, _, args = setup()
    error = bind(ext, replace(args, node="x" * 253))
    assert "is not in vramfit's view" in error
    assert ext.api.calls == [] and held(ext) == {"assumed": 1}
    assert ext.state.lock_count() == 0


class HeldBindings(FakePodAPI):
    """Bindings of the pods in ``hold`` wait until ``go`` is set (an API server that is slow
    to answer them)."""

    def __init__(self, hold: set[str]) -> None:
        super().__init__()
        self.hold = hold
        self.go = threading.Event()
        self.waiting = threading.Event()

    def bind_pod(self, namespace: str, name: str, uid: str, node: str, **kw: Any) -> None:
        if name in self.hold:
            self.waiting.set()
            assert self.go.wait(10)
        super().bind_pod(namespace, name, uid, node, **kw)


def slow_binds(hold: set[str], *, timeout_s: float = 5.0) -> tuple[Binder, HeldBindings]:
    state = synced_state([gpu_node("n0")])
    api = HeldBindings(hold)
    for name in ("p", "q"):
        api.add(pod_object(name, uid=f"uid-{name}", gpus=1))
        demand = Demand(1, vram_per_gpu=20 * GIB)
        state.remember(PendingPod(f"uid-{name}", f"serving/{name}", "100", demand, NOW))
    return Binder(state, api, Settings(bind_lock_timeout_s=timeout_s), clock=Clock()), api


def test_binds_to_one_node_do_not_wait_for_each_other() -> None:
    binder, api = slow_binds({"p"})
    first = threading.Thread(target=binder.bind, args=(BindingArgs("p", "serving", "uid-p", "n0"),))
    first.start()
    try:
        assert api.waiting.wait(5)
        # p's Binding is on its way; q binds to the same node meanwhile.
        assert binder.bind(BindingArgs("q", "serving", "uid-q", "n0")).error == ""
    finally:
        api.go.set()
        first.join(10)
    assert api.pods["serving/p"]["spec"]["nodeName"] == "n0"
    assert api.pods["serving/q"]["spec"]["nodeName"] == "n0"
    p, q = (api.pods[f"serving/{n}"]["metadata"]["annotations"] for n in "pq")
    assert p["vramfit.io/reservation"] != q["vramfit.io/reservation"]  # different GPUs


def test_a_second_bind_of_one_pod_waits_for_the_first() -> None:
    binder, api = slow_binds({"p"}, timeout_s=0.05)
    args = BindingArgs("p", "serving", "uid-p", "n0")
    first = threading.Thread(target=binder.bind, args=(args,))
    first.start()
    try:
        assert api.waiting.wait(5)
        out = binder.bind(args)
    finally:
        api.go.set()
        first.join(10)
    assert out.code == "lock-timeout" and "another bind of pod serving/p" in out.error
    assert api.calls == ["bind p n0"]
