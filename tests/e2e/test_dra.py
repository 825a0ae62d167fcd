"""End to end with DRA: GPUs claimed through ResourceClaimTemplates, allocated by the real
kube-scheduler's DRA plugin from ResourceSlices the simulated agents publish as NVIDIA's DRA
driver does, with and without vramfit.

A pool of its own: 2 nodes of 8x H100 80 GB and 2 of 8x A100 40 GB that run NVIDIA's DRA
driver instead of its device plugin (the agents' ``--dra-driver``; the Nodes advertise no
``nvidia.com/gpu``), and the chart's DeviceClass ``gpu.nvidia.com``. A burst is a KServe
predictor Deployment whose pods claim 2 GPUs each as KServe's managed DRA makes them: a
ResourceClaimTemplate ``<name>-managed-dra`` with one request ``device`` of class
``gpu.nvidia.com``, the pod claim ``managed-device``, and ``vramfit.io/vram-per-gpu: 70Gi``.
The resourceclaim controller makes each pod's claim; the kubelet stand-ins give each pod the
GPUs its claim was allocated. What counts is what the agents report the GPUs hold.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from controlplane.harness import ControlPlane, SchedulerProcess
from controlplane.nodes import GpuNode, create_nodes
from controlplane.pytest_plugin import wait_for
from nodeagent.simulated.dra import device_class
from placement.dra import API, GPU_CLASS, read_claim
from tests.e2e.bursts import Burst, Cluster, double_booked, holders
from tests.e2e.kserve import predictor_deployment, predictor_name
from tests.e2e.world import (
    A100,
    GPU_PRESENT,
    H100,
    Extender,
    Pool,
    api_clients,
    node_spec,
    reports,
)

pytestmark = pytest.mark.integration

GROUP, VERSION = API.split("/")
TEMPLATE_CLAIM = "managed-device"
PAIRS_PER_H100_NODE = 4  # pods of 2 GPUs an 8-GPU node holds


def _resource(custom: k8s.CustomObjectsApi, plural: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = custom.list_cluster_custom_object(GROUP, VERSION, plural)["items"]
    return items


@pytest.fixture(scope="module")
def dra_pool(deployed: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    """Two H100 and two A100 nodes whose agents play NVIDIA's DRA driver."""
    suffix = os.urandom(2).hex()
    h100 = [f"e2e-dra-h100-{suffix}-{i}" for i in range(2)]
    a100 = [f"e2e-dra-a100-{suffix}-{i}" for i in range(2)]
    spec = Path(tmp_path_factory.mktemp("dra-pool")) / "nodes.yaml"
    nodes = [node_spec(n, H100) for n in h100] + [node_spec(n, A100) for n in a100]
    spec.write_text(yaml.safe_dump({"nodes": nodes}))
    pool = Pool(deployed, spec, h100, a100, cached_on="", agent_args=("--dra-driver",))
    with api_clients(deployed) as (core, custom):
        # As NVIDIA's chart installs it (cluster-scoped, as the admin).
        custom.create_cluster_custom_object(GROUP, VERSION, "deviceclasses", device_class())
        # No nvidia.com/gpu on the Nodes: the DRA driver, not the device plugin, serves them.
        create_nodes(core, [GpuNode(n, gpus=0, labels=GPU_PRESENT) for n in pool.nodes])
        try:
            pool.start_agents(core)
            wait_for(
                "every node's ResourceSlice",
                lambda: (
                    {s["spec"]["nodeName"] for s in _resource(custom, "resourceslices")}
                    >= set(pool.nodes)
                ),
            )
            yield pool
        finally:
            pool.stop(core)
            custom.delete_cluster_custom_object(GROUP, VERSION, "deviceclasses", GPU_CLASS)
            for s in _resource(custom, "resourceslices"):
                if s["spec"].get("nodeName") in pool.nodes:
                    with contextlib.suppress(k8s.ApiException):
                        custom.delete_cluster_custom_object(
                            GROUP, VERSION, "resourceslices", s["metadata"]["name"]
                        )


@pytest.fixture
def dra_cluster(
    dra_pool: Pool, extender: Extender, vramfit_scheduler: SchedulerProcess, deployed: ControlPlane
) -> Iterator[Cluster]:
    with api_clients(deployed) as (core, custom):
        c = Cluster(dra_pool, extender, core, custom)
        wait_for("the DRA pool to be idle", functools.partial(_idle, c), timeout=90)
        yield c


def _idle(cluster: Cluster) -> bool:
    own = {n: s for n, s in reports(cluster.custom).items() if n in cluster.pool.nodes}
    return all(not pods for pods in holders(own).values())


def claim_template(isvc: str, gpus: int) -> dict[str, Any]:
    """What KServe's managed DRA makes for an LLMInferenceService (``managed_dra.go``)."""
    return {
        "apiVersion": API,
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": f"{isvc}-managed-dra"},
        "spec": {
            "spec": {
                "devices": {
                    "requests": [
                        {"name": "device", "exactly": {"deviceClassName": GPU_CLASS, "count": gpus}}
                    ]
                }
            }
        },
    }


def dra_deployment(isvc: str, scheduler: str) -> dict[str, Any]:
    """The predictor Deployment, its GPUs claimed through the template instead of
    ``nvidia.com/gpu``."""
    deployment = predictor_deployment(isvc, 0, scheduler=scheduler)
    spec = deployment["spec"]["template"]["spec"]
    spec["resourceClaims"] = [
        {"name": TEMPLATE_CLAIM, "resourceClaimTemplateName": f"{isvc}-managed-dra"}
    ]
    container = spec["containers"][0]
    for kind in ("limits", "requests"):
        container["resources"][kind].pop("nvidia.com/gpu")
    container["resources"]["claims"] = [{"name": TEMPLATE_CLAIM}]
    return deployment


def dra_burst(
    cluster: Cluster, namespace: str, isvc: str, replicas: int, *, expected: int, scheduler: str
) -> Burst:
    cluster.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "resourceclaimtemplates", claim_template(isvc, 2)
    )
    cluster.apps.create_namespaced_deployment(namespace, dra_deployment(isvc, scheduler))
    return Burst(cluster, namespace, isvc, replicas, expected)


def allocations(cluster: Cluster, namespace: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Pod UID -> (pool, devices) of each allocated claim in the namespace."""
    raw = cluster.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "resourceclaims")
    out = {}
    for item in raw["items"]:
        claim = read_claim(item)
        if claim is None or not claim.allocated:
            continue
        (pool,) = {a.pool for a in claim.allocated}
        for uid in claim.reserved_for:
            out[uid] = (pool, tuple(sorted(a.device for a in claim.allocated)))
    return out


def held_devices(cluster: Cluster) -> dict[str, set[str]]:
    """Pod UID -> the devices (``gpu-<index>``) its agent reports it holding, by GPU index."""
    found: dict[str, set[str]] = {}
    for node, status in reports(cluster.custom).items():
        if node not in cluster.pool.nodes:
            continue
        for gpu in status.get("gpus", []):
            if gpu.get("holderPodUID"):
                found.setdefault(gpu["holderPodUID"], set()).add(f"gpu-{gpu['index']}")
    return found


def test_dra_burst_with_vramfit_never_overcommits_and_keeps_70gib_on_80gb(
    dra_cluster: Cluster, namespace: str
) -> None:
    pool = dra_cluster.pool
    fits = len(pool.h100) * PAIRS_PER_H100_NODE
    burst = dra_burst(dra_cluster, namespace, "dra", fits + 2, expected=fits, scheduler="vramfit")
    with burst.watching(interval=0.25):
        burst.scale()
        burst.wait_whole(180)
    assert not burst.worst, f"GPUs double-booked on the way: {sorted(burst.worst)}"
    bound = burst.bound()
    placed = {p["spec"]["nodeName"] for p in bound}
    assert placed == set(pool.h100), f"70 GiB pods off the 80 GB GPUs: {placed}"
    assert not double_booked(burst.pods(), reports(dra_cluster.custom))
    # Each pod holds exactly the devices the DRA plugin allocated to its claim, on its node.
    claims = allocations(dra_cluster, namespace)
    held = wait_for(
        "every pod holding its claim's GPUs",
        lambda: h if len(h := held_devices(dra_cluster)) >= fits else None,
        timeout=60,
    )
    for pod in bound:
        uid = pod["metadata"]["uid"]
        assert claims[uid][0] == pod["spec"]["nodeName"]
        assert set(claims[uid][1]) == held[uid]
        assert "vramfit.io/reservation" in pod["metadata"]["annotations"]
    # The two left over wait: no A100 can ever hold them, the H100s are full.
    pending = [p for p in burst.live() if not p["spec"].get("nodeName")]
    assert len(pending) == 2
    message = wait_for(
        "a FailedScheduling event",
        lambda: dra_cluster.events(namespace, pending[0]["metadata"]["name"]),
    )
    assert "at least 70 GiB" in message or "cannot allocate all claims" in message, message


def test_the_same_dra_burst_without_vramfit_puts_70gib_on_40gb_gpus(
    dra_cluster: Cluster, namespace: str
) -> None:
    """What the DRA plugin alone does: it never allocates a device twice, but knows nothing of
    memory, so a burst larger than the H100s hold spills 70 GiB pods onto 40 GB A100s."""
    pool = dra_cluster.pool
    count = len(pool.h100) * PAIRS_PER_H100_NODE + 2  # 20 GPUs, 16 of them H100s
    burst = dra_burst(
        dra_cluster, namespace, "plain", count, expected=count, scheduler="default-scheduler"
    )
    with burst.watching(interval=0.25):
        burst.scale()
        burst.wait_whole(180)
    bound = burst.bound()
    on_small = [p for p in bound if p["spec"]["nodeName"] in pool.a100]
    assert len(on_small) >= 2, "20 GPUs on 16 H100s: some pods must land on A100s"
    twice = double_booked(burst.pods(), reports(dra_cluster.custom))
    held_twice = [t for t in twice if "held by" in t]
    assert not held_twice, f"the DRA plugin allocated a GPU twice: {held_twice}"
    too_small = [t for t in twice if "needs more than" in t]
    assert len(too_small) >= 2 * len(on_small), twice  # each of their GPUs is too small
    dra_cluster.apps.delete_namespaced_deployment(predictor_name("plain"), namespace)
