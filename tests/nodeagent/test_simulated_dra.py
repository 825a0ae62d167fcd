"""The simulated NVIDIA DRA driver's pure parts (its slice, the chart's DeviceClass, a pod's
claims) and the kubelet stand-in giving a pod the GPUs its claims were allocated."""

from __future__ import annotations

from typing import Any

import pytest

from nodeagent.pods import PodInfo, trim_pod
from nodeagent.simulated.backend import SimulatedBackend
from nodeagent.simulated.dra import (
    Allocation,
    binary_si,
    claim_names,
    claim_needs,
    device_class,
    nvml_facts,
    resource_slice,
)
from nodeagent.simulated.kubelet import SimulatedKubelet
from nodeagent.simulated.spec import parse_spec
from placement.dra import read_slice
from placement.dra_selectors import read_selectors

GIB = 1024**3
SPEC = parse_spec(
    {
        "nodes": [
            {"name": "n1", "product": "NVIDIA-H100-80GB-HBM3", "gpus": 4, "memoryPerGpu": "80Gi"},
            {"name": "n2", "product": "NVIDIA-A100-SXM4-40GB", "gpus": 2, "memoryPerGpu": "40Gi"},
        ]
    }
)


def test_the_slice_names_and_attributes_gpus_as_nvidias_driver_does() -> None:
    raw = resource_slice(SPEC[0], node_uid="uid-n1")
    assert raw["metadata"]["ownerReferences"][0] == {
        "apiVersion": "v1",
        "kind": "Node",
        "name": "n1",
        "uid": "uid-n1",
    }
    spec = raw["spec"]
    assert spec["driver"] == "gpu.nvidia.com" and spec["nodeName"] == "n1"
    assert spec["pool"] == {"name": "n1", "generation": 1, "resourceSliceCount": 1}
    assert [d["name"] for d in spec["devices"]] == ["gpu-0", "gpu-1", "gpu-2", "gpu-3"]
    gpu = spec["devices"][2]
    assert gpu["attributes"]["uuid"] == {"string": SPEC[0].gpu_uuid(2)}
    assert gpu["attributes"]["productName"] == {"string": "NVIDIA H100 80GB HBM3"}
    assert gpu["attributes"]["type"] == {"string": "gpu"}
    assert gpu["attributes"]["architecture"] == {"string": "Hopper"}
    assert gpu["attributes"]["cudaComputeCapability"] == {"version": "9.0.0"}
    assert gpu["capacity"] == {"memory": {"value": "80Gi"}}
    read = read_slice(raw)
    assert read is not None and all(d.is_gpu for d in read.devices)
    assert [d.uuid for d in read.devices] == [SPEC[0].gpu_uuid(i) for i in range(4)]


def test_the_chart_device_class_selects_the_slice_gpus() -> None:
    cls = device_class()
    assert cls["metadata"]["name"] == "gpu.nvidia.com"
    assert cls["spec"]["extendedResourceName"] == "nvidia.com/gpu"
    (selector,) = cls["spec"]["selectors"]
    selectors = read_selectors((selector["cel"]["expression"],))
    assert not selectors.unread
    read = read_slice(resource_slice(SPEC[1]))
    assert read is not None and all(selectors.test(d.facts) for d in read.devices)


@pytest.mark.parametrize(
    ("product", "expected"),
    [
        pytest.param("NVIDIA-A100-SXM4-40GB", "NVIDIA A100-SXM4-40GB", id="known-gfd-label"),
        pytest.param("NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3", id="nvml-name"),
        pytest.param("NVIDIA-B300", "NVIDIA B300", id="unknown-dashes-to-spaces"),
    ],
)
def test_product_names_are_nvmls(product: str, expected: str) -> None:
    assert nvml_facts(product)[0] == expected


@pytest.mark.parametrize(
    ("n", "text"),
    [(80 * GIB, "80Gi"), (1536 * 1024**2, "1536Mi"), (12345, "12345"), (0, "0")],
    ids=["gi", "mi", "bytes", "zero"],
)
def test_binary_si(n: int, text: str) -> None:
    assert binary_si(n) == text


def raw_pod(uid: str, *, claims: list[dict[str, str]], statuses: list[dict[str, str]]) -> PodInfo:
    info = trim_pod(
        {
            "metadata": {
                "uid": uid,
                "name": uid,
                "namespace": "ml",
                "annotations": {
                    "vramfit.io/vram-per-gpu": "70Gi",
                    "vramfit.io/model-size": "140Gi",
                },
            },
            "spec": {
                "nodeName": "n1",
                "resourceClaims": claims,
                "containers": [{"name": "c", "resources": {"claims": [{"name": "gpus"}]}}],
            },
            "status": {"phase": "Pending", "resourceClaimStatuses": statuses},
        }
    )
    assert info is not None
    return info


def test_claim_names_come_from_the_spec_and_the_status() -> None:
    pod = raw_pod(
        "p",
        claims=[
            {"name": "gpus", "resourceClaimTemplateName": "two-gpus"},
            {"name": "nic", "resourceClaimName": "shared-nic"},
        ],
        statuses=[{"name": "gpus", "resourceClaimName": "p-gpus-abcde"}],
    )
    assert claim_names(pod.raw) == ("p-gpus-abcde", "shared-nic")


def test_claim_needs_reads_the_pods_annotations_for_the_claimed_gpus() -> None:
    pod = raw_pod("p", claims=[], statuses=[])
    needs = claim_needs(pod.raw, 2, 80 * GIB)
    assert (needs.gpus, needs.bytes_per_gpu, needs.model_bytes) == (2, 70 * GIB, 140 * GIB)


def test_the_kubelet_gives_a_claim_pod_its_allocated_gpus_once_allocated() -> None:
    pod = raw_pod(
        "p",
        claims=[{"name": "gpus", "resourceClaimTemplateName": "two-gpus"}],
        statuses=[{"name": "gpus", "resourceClaimName": "p-gpus-abcde"}],
    )
    pods = {"p": pod}
    answers: list[Allocation] = [
        Allocation(waiting=True),
        Allocation((SPEC[0].gpu_uuid(3), SPEC[0].gpu_uuid(1))),
    ]
    asked: list[Any] = []

    def claims(p: PodInfo) -> Allocation | None:
        asked.append(p.uid)
        return answers[min(len(asked) - 1, len(answers) - 1)]

    k = SimulatedKubelet(SPEC[0], lambda: pods, None, claims=claims)
    k.tick(0.0)
    assert not k.loads()  # not allocated yet: the pod waits, nothing is refused
    k.tick(1.0)
    (load,) = k.loads()
    assert load.gpu_uuids == (SPEC[0].gpu_uuid(1), SPEC[0].gpu_uuid(3))
    assert load.bytes_per_gpu == 70 * GIB


def test_a_pod_without_claims_gets_gpus_by_the_device_plugin_rule() -> None:
    info = trim_pod(
        {
            "metadata": {"uid": "d", "name": "d", "namespace": "ml"},
            "spec": {
                "nodeName": "n1",
                "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
            },
            "status": {"phase": "Pending"},
        }
    )
    assert info is not None
    k = SimulatedKubelet(SPEC[0], lambda: {"d": info}, None, claims=lambda _p: None)
    k.tick(0.0)
    (load,) = k.loads()
    assert len(load.gpu_uuids) == 1


def test_the_simulated_reading_names_each_gpu_as_the_dra_driver_does() -> None:
    uuids = SimulatedBackend(SPEC[0]).read(0.0).device_uuids()
    assert uuids["gpu-2"] == SPEC[0].gpu_uuid(2)
