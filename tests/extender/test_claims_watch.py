"""Pods that claim GPUs through DRA, end to end through the app: filter reads the claims the
view holds (a template's claim through the pod's status), keeps to the GPUs the selectors
accept, waits for a claim not seen yet, and leaves what it cannot read to the DRA plugin;
bind re-checks on the GPUs the DRA plugin allocated and writes them; an allocation reconciles
the reservation; the pod watch counts claimed GPUs."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from extender.app import create_app
from extender.bind import Binder
from extender.claims_watch import CLAIMS, DraView, reconcile_reservation
from extender.config import Settings
from extender.metrics import ExtenderMetrics
from extender.objects import read_pod
from extender.state import ClusterState
from placement.annotation import decode_reservation
from placement.dra import read_claim, read_slice
from placement.model import Allocator, NodeState
from tests.extender.conftest import (
    NOW,
    Clock,
    Extender,
    FakePodAPI,
    mixed_pool,
    pod_object,
    synced_state,
)

D = "gpu.nvidia.com"
NVML = {"h100": "NVIDIA H100 80GB HBM3", "a100": "NVIDIA A100-SXM4-40GB"}


def slice_of(node: NodeState) -> dict[str, Any]:
    """The NVIDIA driver's slice for a test node (its GPUs by the same UUIDs)."""
    return {
        "metadata": {"name": f"{node.name}-{D}"},
        "spec": {
            "driver": D,
            "nodeName": node.name,
            "pool": {"name": node.name, "generation": 1, "resourceSliceCount": 1},
            "devices": [
                {
                    "name": f"gpu-{g.index}",
                    "attributes": {
                        "type": {"string": "gpu"},
                        "uuid": {"string": g.uuid},
                        "productName": {"string": NVML[node.name.split("-")[0]]},
                    },
                    "capacity": {"memory": {"value": str(g.total_bytes)}},
                }
                for g in node.gpus
            ],
        },
    }


def claim_object(
    name: str,
    *,
    count: int = 2,
    selectors: tuple[str, ...] = (),
    allocated: tuple[tuple[str, int], ...] = (),
    pod_uid: str = "",
    mode: str = "",
) -> dict[str, Any]:
    exactly: dict[str, Any] = {"deviceClassName": D, "count": count}
    if mode:
        exactly["allocationMode"] = mode
    if selectors:
        exactly["selectors"] = [{"cel": {"expression": s}} for s in selectors]
    status: dict[str, Any] = {}
    if allocated:
        results = [
            {"request": "gpus", "driver": D, "pool": node, "device": f"gpu-{i}"}
            for node, i in allocated
        ]
        status["allocation"] = {"devices": {"results": results}}
        status["reservedFor"] = [{"resource": "pods", "name": "p", "uid": pod_uid}]
    return {
        "metadata": {"name": name, "namespace": "serving", "uid": f"claim-{name}"},
        "spec": {"devices": {"requests": [{"name": "gpus", "exactly": exactly}]}},
        "status": status,
    }


def dra_pod(name: str, claim: str = "", *, uid: str = "", template: str = "t") -> dict[str, Any]:
    """A pod whose GPUs come from a claim made from template ``template`` (named ``claim`` in
    its status once made)."""
    pod = pod_object(name, gpus=0, uid=uid or None, annotations={"vramfit.io/vram-per-gpu": "70Gi"})
    pod["spec"]["resourceClaims"] = [{"name": "gpus", "resourceClaimTemplateName": template}]
    pod["spec"]["containers"][0]["resources"] = {"claims": [{"name": "gpus"}]}
    if claim:
        pod["status"]["resourceClaimStatuses"] = [{"name": "gpus", "resourceClaimName": claim}]
    return pod


def dra_extender(claims: list[dict[str, Any]]) -> tuple[Extender, DraView]:
    nodes = mixed_pool()
    state: ClusterState = synced_state(nodes)
    clock = Clock()
    dra = DraView(
        on_allocated=lambda uid, node, gpus: reconcile_reservation(state, uid, node, gpus, NOW)
    )
    dra.replace_slices(s for s in (read_slice(slice_of(n)) for n in nodes) if s is not None)
    dra.replace_claims(c for c in map(read_claim, claims) if c is not None)
    dra.mark_synced(CLAIMS)
    settings = Settings()
    api = FakePodAPI()
    metrics = ExtenderMetrics(CollectorRegistry())
    binder = Binder(state, api, settings, clock=clock, dra=dra)
    app = create_app(settings, state, binder, metrics, clock=clock, dra=dra)
    return Extender(app, app.test_client(), state, api, metrics, clock, settings), dra


NAMES = ["h100-0", "h100-1", "a100-0", "a100-1"]


def filter_(ext: Extender, pod: dict[str, Any]) -> dict[str, Any]:
    body = orjson.dumps({"Pod": pod, "NodeNames": NAMES})
    resp = ext.client.post("/scheduler/filter", data=body, content_type="application/json")
    assert resp.status_code == 200
    answer: dict[str, Any] = resp.get_json()
    return answer


def test_a_claim_pod_is_placed_by_free_vram_on_an_80gb_gpu() -> None:
    ext, _ = dra_extender([claim_object("p-gpus")])
    pod = dra_pod("p", "p-gpus")
    answer = filter_(ext, pod)
    assert answer["NodeNames"] == ["h100-0"]
    (r,) = list(ext.state.fleet.claims)
    assert r.node == "h100-0" and len(r.gpu_uuids) == 2


def test_nothing_fits_says_why_per_node() -> None:
    ext, _ = dra_extender([claim_object("p-gpus", count=9)])
    answer = filter_(ext, dra_pod("p", "p-gpus"))
    assert not answer["NodeNames"]
    assert "needs 9 GPU(s) with at least 70 GiB" in answer["FailedAndUnresolvableNodes"]["a100-0"]


def test_a_claim_not_seen_yet_fails_every_node_for_now() -> None:
    ext, _ = dra_extender([])
    answer = filter_(ext, dra_pod("p", "p-gpus"))
    assert not answer["NodeNames"] and not answer.get("FailedAndUnresolvableNodes")
    assert set(answer["FailedNodes"]) == set(NAMES)
    assert "not in vramfit's view yet" in answer["FailedNodes"]["h100-0"]
    # A template's claim not made yet is the same.
    assert set(filter_(ext, dra_pod("q"))["FailedNodes"]) == set(NAMES)


@pytest.mark.parametrize(
    ("selector", "vram", "passed", "refused"),
    [
        pytest.param(
            f"device.attributes['{D}'].productName.lowerAscii().matches('a100')",
            "30Gi",
            ["a100-0"],
            "h100-0",
            id="product-keeps-to-a100s",
        ),
        pytest.param(
            f"device.capacity['{D}'].memory.compareTo(quantity('80Gi')) >= 0",
            "30Gi",
            ["h100-0"],
            "a100-0",
            id="memory-keeps-to-80gb",
        ),
    ],
)
def test_selectors_keep_the_pod_to_the_gpus_they_accept(
    selector: str, vram: str, passed: list[str], refused: str
) -> None:
    ext, _ = dra_extender([claim_object("p-gpus", selectors=(selector,))])
    pod = dra_pod("p", "p-gpus")
    pod["metadata"]["annotations"]["vramfit.io/vram-per-gpu"] = vram
    pod["metadata"]["annotations"]["vramfit.io/policy"] = "spread"
    assert filter_(ext, pod)["NodeNames"] == passed
    # The refused node says so when nothing else is named.
    body = orjson.dumps({"Pod": pod, "NodeNames": [refused]})
    resp = ext.client.post("/scheduler/filter", data=body, content_type="application/json")
    reason = resp.get_json()["FailedAndUnresolvableNodes"][refused]
    assert "ResourceClaim selectors accept" in reason


def test_all_of_a_nodes_gpus_is_left_to_the_dra_plugin() -> None:
    ext, _ = dra_extender([claim_object("p-gpus", mode="All")])
    assert filter_(ext, dra_pod("p", "p-gpus"))["NodeNames"] == NAMES
    assert not list(ext.state.fleet.claims)


def test_a_pod_without_claims_or_gpus_passes_untouched() -> None:
    ext, _ = dra_extender([])
    assert filter_(ext, pod_object("cpu", gpus=0))["NodeNames"] == NAMES


def test_bind_takes_the_gpus_the_dra_plugin_allocated_and_writes_them() -> None:
    uid = "00000000-0000-4000-8000-0000000000aa"
    ext, dra = dra_extender([claim_object("p-gpus")])
    pod = dra_pod("p", "p-gpus", uid=uid)
    ext.api.add(pod)
    assert filter_(ext, pod)["NodeNames"] == ["h100-0"]
    # PreBind: the DRA plugin wrote its own choice to the claim before the binding.
    allocated = claim_object("p-gpus", allocated=(("h100-0", 5), ("h100-0", 6)), pod_uid=uid)
    claim = read_claim(allocated)
    assert claim is not None
    dra.apply_claim("MODIFIED", claim)
    binding = {"PodName": "p", "PodNamespace": "serving", "PodUID": uid, "Node": "h100-0"}
    resp = ext.client.post(
        "/scheduler/bind", data=orjson.dumps(binding), content_type="application/json"
    )
    assert resp.get_json() == {"Error": ""}
    written = ext.api.pods["serving/p"]["metadata"]["annotations"]["vramfit.io/reservation"]
    r = decode_reservation(written, pod_uid=uid, pod_key="serving/p")
    assert r.gpu_uuids == ("GPU-h100-0-5", "GPU-h100-0-6")


def test_an_allocation_reconciles_the_assumed_reservation() -> None:
    uid = "00000000-0000-4000-8000-0000000000bb"
    ext, dra = dra_extender([claim_object("p-gpus")])
    assert filter_(ext, dra_pod("p", "p-gpus", uid=uid))["NodeNames"] == ["h100-0"]
    claim = read_claim(
        claim_object("p-gpus", allocated=(("h100-0", 7), ("h100-0", 3)), pod_uid=uid)
    )
    assert claim is not None
    dra.apply_claim("MODIFIED", claim)
    r = ext.state.fleet.claims.get(uid)
    assert r is not None and r.gpu_uuids == ("GPU-h100-0-3", "GPU-h100-0-7")


def test_the_pod_watch_counts_claimed_gpus_and_keeps_their_reservation() -> None:
    _, dra = dra_extender([claim_object("p-gpus", count=3)])
    pod = dra_pod("p", "p-gpus")
    pod["metadata"]["annotations"]["vramfit.io/reservation"] = orjson.dumps(
        {
            "v": 1,
            "node": "h100-0",
            "gpus": ["GPU-h100-0-0", "GPU-h100-0-1", "GPU-h100-0-2"],
            "bytesPerGpu": 1,
            "model": "",
            "at": "2027-01-15T08:00:00Z",
        }
    ).decode()
    info = read_pod(pod, now=NOW, claimed=dra.claimed_count)
    assert info is not None and info.demand is not None
    assert (info.demand.gpus, info.demand.allocator) == (3, Allocator.DRA)
    assert info.annotation is not None
    # Without the view, a pod that names claims still keeps its reservation (uncapped) ...
    unknown = read_pod(pod, now=NOW, claimed=lambda _raw: 0)
    assert unknown is not None and unknown.annotation is not None and unknown.demand is None
    # ... and one that names none is not believed.
    plain = read_pod(pod_object("x", gpus=0) | {"metadata": pod["metadata"]}, now=NOW)
    assert plain is not None and plain.annotation is None
