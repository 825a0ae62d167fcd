"""A pod's GPU demand from its raw JSON: requests, init containers, annotations, bad input."""

from __future__ import annotations

from typing import Any

import pytest

from placement.demand import DemandError, demand_from_pod, gpu_count, pod_key
from placement.model import GIB, Demand, NvlinkMode


def container(gpus: object = None, *, kind: str = "limits", **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "c", **extra}
    if gpus is not None:
        c["resources"] = {kind: {"nvidia.com/gpu": gpus, "cpu": "4"}}
    return c


def pod(
    *containers: dict[str, Any],
    init: tuple[dict[str, Any], ...] = (),
    annotations: dict[str, object] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": list(containers)}
    if init:
        spec["initContainers"] = list(init)
    meta: dict[str, Any] = {"name": "llm-0", "namespace": "serving"}
    if annotations is not None:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": spec}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(pod(container()), None, id="no-gpu-request"),
        pytest.param(pod(container("0")), None, id="zero-gpus"),
        pytest.param({"metadata": {"name": "x"}}, None, id="no-spec"),
        pytest.param(pod(container(1)), Demand(1), id="limit-int"),
        pytest.param(pod(container("2")), Demand(2), id="limit-string"),
        pytest.param(pod(container("2", kind="requests")), Demand(2), id="request-only"),
        pytest.param(
            pod({"name": "c", "resources": {"limits": {"nvidia.com/gpu": "2"}, "requests": {}}}),
            Demand(2),
            id="empty-requests",
        ),
        pytest.param(
            pod(
                {
                    "name": "c",
                    "resources": {
                        "limits": {"nvidia.com/gpu": "4"},
                        "requests": {"nvidia.com/gpu": 4},
                    },
                }
            ),
            Demand(4),
            id="limit-equals-request",
        ),
        pytest.param(pod(container("1"), container("2")), Demand(3), id="containers-add-up"),
        pytest.param(
            pod(container("1"), init=(container("4"),)), Demand(4), id="init-larger-than-sum"
        ),
        pytest.param(
            pod(container("2"), init=(container("1"),)), Demand(2), id="init-smaller-than-sum"
        ),
        pytest.param(
            pod(container("2"), init=(container("1", restartPolicy="Always"),)),
            Demand(3),
            id="sidecar-runs-beside-containers",
        ),
        pytest.param(
            pod(
                container("1"),
                init=(container("2", restartPolicy="Always"), container("3")),
            ),
            Demand(5),
            id="init-after-sidecar-runs-beside-it",
        ),
        pytest.param(
            pod(
                container("1"),
                init=(container("3"), container("2", restartPolicy="Always")),
            ),
            Demand(3),
            id="init-before-sidecar-runs-alone",
        ),
        pytest.param(
            pod(
                container("1"),
                annotations={
                    "vramfit.io/vram-per-gpu": "70Gi",
                    "vramfit.io/model": " meta-llama/Llama-3.1-70B-Instruct ",
                    "vramfit.io/model-size": "141Gi",
                    "vramfit.io/nvlink": "Required",
                    "vramfit.io/gpu-product": "NVIDIA-H100-80GB-HBM3, NVIDIA H200 ,",
                    "vramfit.io/policy": "spread",
                    "example.com/other": "ignored",
                },
            ),
            Demand(
                gpus=1,
                vram_per_gpu=70 * GIB,
                model_id="meta-llama/Llama-3.1-70B-Instruct",
                model_bytes=141 * GIB,
                nvlink=NvlinkMode.REQUIRED,
                products=frozenset({"NVIDIA-H100-80GB-HBM3", "NVIDIA H200"}),
                policy="spread",
            ),
            id="every-annotation",
        ),
        pytest.param(
            pod(container("2"), annotations={"vramfit.io/nvlink": "true"}),
            Demand(2, nvlink=NvlinkMode.REQUIRED),
            id="nvlink-true",
        ),
        pytest.param(
            pod(container("2"), annotations={"vramfit.io/nvlink": "false"}),
            Demand(2, nvlink=NvlinkMode.NONE),
            id="nvlink-false",
        ),
        pytest.param(
            pod(container("2"), annotations={"vramfit.io/nvlink": "none"}),
            Demand(2, nvlink=NvlinkMode.NONE),
            id="nvlink-none",
        ),
        pytest.param(
            pod(container("2"), annotations={"vramfit.io/nvlink": "preferred"}),
            Demand(2),
            id="nvlink-preferred",
        ),
        pytest.param(
            pod(container("1"), annotations={"vramfit.io/gpu-product": " , "}),
            Demand(1),
            id="blank-product-list",
        ),
        pytest.param(
            {"metadata": {"annotations": None}, "spec": {"containers": [container("1")]}},
            Demand(1),
            id="null-annotations",
        ),
        pytest.param(
            pod(container("1"), annotations={"vramfit.io/reservation": "{}"}),
            Demand(1),
            id="reservation-annotation-is-not-demand",
        ),
    ],
)
def test_demand_from_pod(raw: dict[str, Any], expected: Demand | None) -> None:
    assert demand_from_pod(raw) == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        pytest.param(
            pod(container("1"), annotations={"vramfit.io/vram-per-gpu": "seventy"}),
            "annotation vramfit.io/vram-per-gpu: 'seventy' is not a valid quantity",
            id="bad-vram-quantity",
        ),
        pytest.param(
            pod(container("1"), annotations={"vramfit.io/vram-per-gpu": "-1Gi"}),
            "annotation vramfit.io/vram-per-gpu: '-1Gi' is not a valid quantity",
            id="negative-vram",
        ),
        pytest.param(
            pod(container("1"), annotations={"vramfit.io/model-size": "big"}),
            "annotation vramfit.io/model-size: 'big' is not a valid quantity",
            id="bad-model-size",
        ),
        pytest.param(
            pod(container("1"), annotations={"vramfit.io/vram-per-gpu": 70}),
            "annotation vramfit.io/vram-per-gpu: expected a string, got int",
            id="annotation-not-a-string",
        ),
        pytest.param(
            pod(container("1"), annotations={"vramfit.io/model": ["a"]}),
            "annotation vramfit.io/model: expected a string, got list",
            id="model-not-a-string",
        ),
        pytest.param(
            pod(container("2"), annotations={"vramfit.io/nvlink": "maybe"}),
            "annotation vramfit.io/nvlink: 'maybe' is not one of required, preferred, none",
            id="bad-nvlink",
        ),
        pytest.param(
            pod(container("1"), annotations={"vramfit.io/policy": "fastest"}),
            "annotation vramfit.io/policy: 'fastest' is not one of binpack, spread",
            id="unknown-policy",
        ),
        pytest.param(
            pod(container("1.5")),
            "spec.containers[0].resources.limits[nvidia.com/gpu]: '1.5' is not a valid quantity"
            " (must be a whole number)",
            id="fractional-gpus",
        ),
        pytest.param(
            pod(container("1"), container("lots")),
            "spec.containers[1].resources.limits[nvidia.com/gpu]: 'lots'",
            id="bad-gpu-quantity-second-container",
        ),
        pytest.param(
            pod(container("1"), init=(container("x"),)),
            "spec.initContainers[0].resources.limits[nvidia.com/gpu]: 'x'",
            id="bad-init-gpu-quantity",
        ),
        pytest.param(
            pod(
                {
                    "name": "c",
                    "resources": {
                        "limits": {"nvidia.com/gpu": "2"},
                        "requests": {"nvidia.com/gpu": "1"},
                    },
                }
            ),
            "spec.containers[0].resources: nvidia.com/gpu request 1 differs from its limit 2",
            id="request-differs-from-limit",
        ),
        pytest.param(
            {"metadata": {}, "spec": "x"}, "spec: expected an object, got str", id="spec-type"
        ),
        pytest.param(
            {"spec": {"containers": {"name": "c"}}},
            "spec.containers: expected a list, got dict",
            id="containers-type",
        ),
        pytest.param(
            {"spec": {"containers": ["c"]}},
            "spec.containers[0]: expected an object, got str",
            id="container-type",
        ),
        pytest.param(
            {"spec": {"containers": [{"resources": []}]}},
            "spec.containers[0].resources: expected an object, got list",
            id="resources-type",
        ),
        pytest.param(
            {"spec": {"containers": [{"resources": {"limits": "1"}}]}},
            "spec.containers[0].resources.limits: expected an object, got str",
            id="limits-type",
        ),
        pytest.param(
            {"spec": {"initContainers": "x"}},
            "spec.initContainers: expected a list, got str",
            id="init-containers-type",
        ),
        pytest.param(
            {"metadata": "x", "spec": {}}, "metadata: expected an object, got str", id="meta-type"
        ),
        pytest.param(
            {"metadata": {"annotations": ["a"]}, "spec": {}},
            "metadata.annotations: expected an object, got list",
            id="annotations-type",
        ),
        pytest.param("not a pod", "expected a Pod object, got str", id="pod-type"),
    ],
)
def test_demand_errors_name_the_field(raw: Any, fragment: str) -> None:
    with pytest.raises(DemandError) as info:
        demand_from_pod(raw)
    assert fragment in str(info.value)
    assert str(info.value).startswith("pod ")


def test_demand_error_names_the_pod() -> None:
    raw = pod(container("1"), annotations={"vramfit.io/vram-per-gpu": "x"})
    with pytest.raises(DemandError, match=r"^pod serving/llm-0: annotation "):
        demand_from_pod(raw)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        pytest.param({"metadata": {"name": "a", "namespace": "b"}}, "b/a", id="named"),
        pytest.param({"metadata": {"name": "a"}}, "default/a", id="default-namespace"),
        pytest.param({"metadata": {}}, "default/<unnamed>", id="unnamed"),
        pytest.param({}, "<pod without metadata>", id="no-metadata"),
        pytest.param("x", "<pod without metadata>", id="not-a-mapping"),
    ],
)
def test_pod_key(raw: object, key: str) -> None:
    assert pod_key(raw) == key


def test_gpu_count_of_a_plain_pod() -> None:
    assert gpu_count(pod(container("3"), container())) == 3


@pytest.mark.parametrize(
    ("gpus", "vram", "model", "fragment"),
    [
        pytest.param(-1, 0, 0, "gpus is -1", id="negative-gpus"),
        pytest.param(1, -5, 0, "vram_per_gpu is -5", id="negative-vram"),
        pytest.param(1, 0, -1, "model_bytes is -1", id="negative-model"),
        pytest.param(-1, -1, 0, "gpus is -1, vram_per_gpu is -1", id="all-at-once"),
    ],
)
def test_demand_rejects_negative_values(gpus: int, vram: int, model: int, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        Demand(gpus, vram_per_gpu=vram, model_bytes=model)
