"""The simulated kubelet without an API server: GPU assignment (the device plugin's rule, not
vramfit's reservation), load growth, release."""

from __future__ import annotations

import json
import random

import pytest

from nodeagent.pods import PodInfo, trim_pod
from nodeagent.simulated.backend import SimulatedBackend
from nodeagent.simulated.kubelet import SimulatedKubelet
from nodeagent.simulated.spec import parse_spec

GIB = 1024**3
SPEC = parse_spec(
    {
        "nodes": [
            {
                "name": "n1",
                "product": "H100",
                "gpus": 4,
                "memoryPerGpu": "80Gi",
                "nvlink": {"islands": [[0, 1], [2, 3]]},
                "cachedModels": [{"id": "cached/model", "size": "100Gi"}],
                "localDiskBandwidth": "10Gi",
                "remoteBandwidth": "1Gi",
            }
        ]
    }
)[0]


def pod(uid: str, gpus: int, **annotations: str) -> PodInfo:
    info = trim_pod(
        {
            "metadata": {"uid": uid, "name": uid, "namespace": "ml", "annotations": annotations},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]},
            "status": {"phase": "Pending"},
        }
    )  # fmt: skip
    assert info is not None
    return info


def test_remote_load_grows_memory_then_completes() -> None:
    pods = {"a": pod("a", 2, **{"vramfit.io/model-size": "100Gi"})}
    k = SimulatedKubelet(SPEC, lambda: pods, None)
    k.tick(0.0)
    use = k.gpu_use(50.0)
    assert {u.pod_uid for u in use.values()} == {"a"} and len(use) == 2
    assert all(u.used_bytes == 25 * GIB for u in use.values())  # half of 50 GiB per GPU
    assert all(u.used_bytes == 50 * GIB for u in k.gpu_use(100.0).values())
    assert all(ld.done for ld in k.loads())


def test_cached_weights_load_from_local_disk() -> None:
    pods = {
        "a": pod("a", 2, **{"vramfit.io/model": "cached/model", "vramfit.io/model-size": "100Gi"})
    }
    k = SimulatedKubelet(SPEC, lambda: pods, None)
    k.tick(0.0)
    k.tick(10.0)
    assert all(ld.done for ld in k.loads())


def reserving(*indices: int) -> str:
    return json.dumps(
        {
            "v": 1,
            "node": "n1",
            "gpus": [SPEC.gpu_uuid(i) for i in indices],
            "bytesPerGpu": 1,
            "model": "",
            "at": "2025-01-01T00:00:00Z",
        }
    )


@pytest.mark.parametrize("seed", range(6))
def test_the_device_plugin_rule_picks_and_the_reservation_is_not_read(seed: int) -> None:
    # vramfit reserved GPUs 1 and 2 (across the two NVLink pairs); the plugin keeps a pair.
    pods = {"a": pod("a", 2, **{"vramfit.io/reservation": reserving(1, 2)})}
    k = SimulatedKubelet(SPEC, lambda: pods, None, rng=random.Random(seed))
    k.tick(0.0)
    got = set(k.gpu_use(0.0))
    assert got in ({SPEC.gpu_uuid(0), SPEC.gpu_uuid(1)}, {SPEC.gpu_uuid(2), SPEC.gpu_uuid(3)})


def test_reservation_gpus_are_used_only_when_the_node_is_told_to_honour_them() -> None:
    pods = {"a": pod("a", 2, **{"vramfit.io/reservation": reserving(1, 2)})}
    k = SimulatedKubelet(SPEC, lambda: pods, None, honour_reservations=True)
    k.tick(0.0)
    assert set(k.gpu_use(0.0)) == {SPEC.gpu_uuid(1), SPEC.gpu_uuid(2)}


def test_deleted_pod_frees_gpus_and_too_big_pod_is_rejected() -> None:
    pods = {"a": pod("a", 3)}
    k = SimulatedKubelet(SPEC, lambda: pods, None)
    k.tick(0.0)
    pods["b"] = pod("b", 2)
    k.tick(1.0)
    assert {u.pod_uid for u in k.gpu_use(1.0).values()} == {"a"}  # b rejected: 1 GPU left
    del pods["a"]
    pods["c"] = pod("c", 4)
    k.tick(2.0)
    assert {u.pod_uid for u in k.gpu_use(2.0).values()} == {"c"}


@pytest.mark.parametrize(("elapsed", "used"), [(0.0, 0), (30.0, 15 * GIB), (120.0, 40 * GIB)])
def test_backend_reading_shows_the_load(elapsed: float, used: int) -> None:
    pods = {
        "a": pod("a", 1, **{"vramfit.io/vram-per-gpu": "40Gi", "vramfit.io/model-size": "80Gi"})
    }
    k = SimulatedKubelet(SPEC, lambda: pods, None)
    k.tick(0.0)
    r = SimulatedBackend(SPEC, k).read(elapsed)
    (g,) = [g for g in r.gpus if g.holder_pod_uid == "a"]
    assert g.used_bytes == used and g.free_bytes == 80 * GIB - used
    assert all(o.used_bytes == 0 for o in r.gpus if o is not g)
    assert r.gpus[0].nvlink_peers == frozenset({SPEC.gpu_uuid(1)})
    assert r.gpus[2].nvlink_peers == frozenset({SPEC.gpu_uuid(3)})
