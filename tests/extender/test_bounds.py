"""Everything a caller sends is bounded: names and UIDs at their Kubernetes sizes, the body at
what 10,000 node names need, and every table keyed by a caller's string."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from extender.config import MAX_BODY_BYTES, Settings
from extender.requeue import MAX_REFUSED, Requeuer
from extender.state import MAX_PENDING, MAX_RELEASED, PendingPod
from tests.extender.conftest import (
    NOW,
    build_extender,
    gpu_node,
    pod_object,
    report_object,
    report_of,
    synced_state,
)

MB = 1024 * 1024


def bind_body(**fields: str) -> dict[str, str]:
    return {"PodName": "p", "PodNamespace": "serving", "PodUID": "u-1", "Node": "n0"} | fields


def filter_body(pod: dict[str, Any], names: list[str]) -> dict[str, Any]:
    return {"Pod": pod, "NodeNames": names}


def renamed(**meta: str) -> dict[str, Any]:
    pod = pod_object("p", uid="u-1")
    pod["metadata"].update(meta)
    return pod


TOO_LONG = {
    # name: (verb, body, what the 400 names)
    "bind-node-1mb": ("bind", bind_body(Node="n" * MB), "Node: longer than 253"),
    "bind-pod-name": ("bind", bind_body(PodName="p" * 254), "PodName: longer than 253"),
    "bind-namespace": ("bind", bind_body(PodNamespace="s" * 64), "PodNamespace: longer than 63"),
    "bind-uid": ("bind", bind_body(PodUID="u" * 37), "PodUID: longer than 36"),
    "filter-node-name": (
        "filter",
        filter_body(pod_object("p", uid="u-1"), ["n0", "n" * 254]),
        "NodeNames[1]: longer than 253",
    ),
    "filter-pod-name": ("filter", filter_body(renamed(name="p" * 254), ["n0"]), "metadata.name"),
    "filter-namespace": (
        "filter",
        filter_body(renamed(namespace="s" * 64), ["n0"]),
        "Pod.metadata.namespace: longer than 63",
    ),
    "filter-uid": (
        "filter",
        filter_body(renamed(uid="u" * 37), ["n0"]),
        "Pod.metadata.uid: longer than 36",
    ),
}


@pytest.mark.parametrize(("verb", "body", "message"), TOO_LONG.values(), ids=TOO_LONG.keys())
def test_names_and_uids_are_capped_at_their_kubernetes_sizes(
    verb: str, body: dict[str, Any], message: str
) -> None:
    """Regression: names of any length were taken (20 binds to 1 MB node names held 36 MiB
    an hour later, in per-node locks)."""
    ext = build_extender(synced_state([gpu_node("n0")]), max_body_bytes=4 * MB)
    resp = ext.client.post(f"/scheduler/{verb}", data=orjson.dumps(body))
    assert resp.status_code == 400, resp.data[:200]
    assert message in resp.get_json()["error"]
    assert len(resp.data) < 1024
    assert ext.state.lock_count() == 0


def test_the_body_limit_fits_10000_node_names_and_not_much_more() -> None:
    """Regression: the limit was 16 MiB, a size no scheduler request needs."""
    assert Settings().max_body_bytes == MAX_BODY_BYTES < 5 * MB
    ext = build_extender(synced_state([gpu_node("n0")]), max_body_bytes=MAX_BODY_BYTES)
    names = [f"{i:05d}".ljust(253, "n") for i in range(10_000)]
    pod = pod_object("p", uid="u-1", gpus=0)
    pod["metadata"]["annotations"] = {"x": "v" * (1024 * 1024)}  # a pod of a MiB
    resp = ext.client.post("/scheduler/filter", data=orjson.dumps(filter_body(pod, names)))
    assert resp.status_code == 200 and len(resp.get_json()["NodeNames"]) == 10_000
    huge = orjson.dumps(filter_body(pod, names * 2))
    assert ext.client.post("/scheduler/filter", data=huge).status_code == 413


def test_pods_remembered_for_bind_are_bounded() -> None:
    state = synced_state([])
    for i in range(MAX_PENDING + 500):
        state.remember(PendingPod(f"u-{i}", f"ns/p-{i}", "1", None, NOW))
    sizes = state.table_sizes()
    assert sizes["pending"] == MAX_PENDING
    assert state.filtered(f"u-{MAX_PENDING + 499}", f"ns/p-{MAX_PENDING + 499}")
    assert not state.filtered("u-0", "ns/p-0")  # the oldest went first


def test_released_binds_are_bounded() -> None:
    state = synced_state([])
    for i in range(MAX_RELEASED + 500):
        state.release(f"u-{i}")
    assert state.table_sizes()["released"] == MAX_RELEASED


def test_refused_pods_are_bounded() -> None:
    q = Requeuer(lambda *_: None, clock=lambda: NOW)
    for i in range(MAX_REFUSED + 500):
        q.refused(f"u-{i}", "ns", f"p-{i}")
    assert q.waiting() == MAX_REFUSED


def test_the_lock_of_a_node_that_left_the_view_is_dropped() -> None:
    state = synced_state([gpu_node("n0"), gpu_node("n1")])
    state.node_lock("n0")
    state.node_lock("n1")
    state.apply_report("DELETED", report_of(report_object(gpu_node("n1"))))
    with state.locked_view(NOW + 60):
        pass
    assert state.lock_count() == 1 and state.knows_node("n0") and not state.knows_node("n1")
