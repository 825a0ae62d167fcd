"""Fake GPU Node objects and the simulated node spec that lists them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.nodes import (
    COUNT_LABEL,
    MEMORY_LABEL,
    MIB,
    PRODUCT_LABEL,
    GpuNode,
    NodeSpecError,
    node_manifest,
    validate_nodes,
)
from controlplane.nodespec import gpu_node, load_nodes
from placement.demand import GPU_RESOURCE
from placement.fields import DocumentError, InputError
from placement.shape import NodeShape, NvLink

GIB = 1024 * MIB
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _capability(major: str, minor: str, family: str) -> dict[str, str]:
    """The labels GFD derives from a known product's compute capability."""
    return {
        "nvidia.com/gpu.compute.major": major,
        "nvidia.com/gpu.compute.minor": minor,
        "nvidia.com/gpu.family": family,
    }


@pytest.mark.parametrize(
    ("node", "labels", "gpu_capacity"),
    [
        (
            GpuNode(
                "h100-0", gpus=8, product="NVIDIA-H100-80GB-HBM3", memory_per_gpu_bytes=80 * GIB
            ),
            {PRODUCT_LABEL: "NVIDIA-H100-80GB-HBM3", MEMORY_LABEL: "81920", COUNT_LABEL: "8"}
            | _capability("9", "0", "hopper"),
            "8",
        ),
        (
            GpuNode(
                "a100-3", gpus=4, product="NVIDIA-A100-SXM4-40GB", memory_per_gpu_bytes=40 * GIB
            ),
            {PRODUCT_LABEL: "NVIDIA-A100-SXM4-40GB", MEMORY_LABEL: "40960", COUNT_LABEL: "4"}
            | _capability("8", "0", "ampere"),
            "4",
        ),
        (
            GpuNode("l4-0", gpus=1, product="NVIDIA-L4", memory_per_gpu_bytes=23034 * MIB),
            {PRODUCT_LABEL: "NVIDIA-L4", MEMORY_LABEL: "23034", COUNT_LABEL: "1"}
            | _capability("8", "9", "ada-lovelace"),
            "1",
        ),
        (GpuNode("cpu-0", gpus=0), {}, None),
        (
            GpuNode("x-0", gpus=2, product="ACME-X1", memory_per_gpu_bytes=16 * GIB),
            {PRODUCT_LABEL: "ACME-X1", MEMORY_LABEL: "16384", COUNT_LABEL: "2"},
            "2",
        ),
    ],
    ids=["h100-node", "a100-node", "gfd-style-odd-memory", "cpu-only-node", "unknown-product"],
)
def test_node_manifest(node: GpuNode, labels: dict[str, str], gpu_capacity: str | None) -> None:
    manifest = node_manifest(node, NOW)
    metadata, status = manifest["metadata"], manifest["status"]
    assert metadata["name"] == node.name
    assert metadata["labels"] == {"kubernetes.io/hostname": node.name, **labels}
    assert status["capacity"].get(GPU_RESOURCE) == gpu_capacity
    assert status["allocatable"] == status["capacity"]
    assert status["capacity"]["pods"] == "110"
    (ready,) = status["conditions"]
    assert (ready["type"], ready["status"]) == ("Ready", "True")
    assert ready["lastHeartbeatTime"] == "2026-01-02T03:04:05Z"
    assert "taints" not in manifest["spec"]


def test_extra_labels_are_kept_but_cannot_hide_gpu_labels() -> None:
    node = GpuNode("n", gpus=2, labels={"pool": "a", PRODUCT_LABEL: "wrong"})
    labels = node_manifest(node, NOW)["metadata"]["labels"]
    assert labels["pool"] == "a"
    assert labels[PRODUCT_LABEL] == "NVIDIA-H100-80GB-HBM3"


@pytest.mark.parametrize(
    ("node", "fragment"),
    [
        (GpuNode("Bad_Name"), "not a DNS subdomain"),
        (GpuNode("n", gpus=-1), "gpus must not be negative"),
        (GpuNode("n", gpus=1, memory_per_gpu_bytes=100), "at least 1Mi"),
        (GpuNode("n", product="NVIDIA H100"), "is not a label value"),
        (GpuNode("n", product=""), "is not a label value"),
        (GpuNode("n", cpu="lots"), "cpu: 'lots' is not a valid quantity"),
        (GpuNode("n", pods=0), "pods must be positive"),
    ],
    ids=["name", "negative-gpus", "tiny-memory", "product-space", "empty-product", "cpu", "pods"],
)
def test_node_problems_name_the_field(node: GpuNode, fragment: str) -> None:
    with pytest.raises(NodeSpecError, match=fragment):
        validate_nodes([node])


def test_validate_nodes_reports_every_problem_at_once() -> None:
    with pytest.raises(NodeSpecError) as caught:
        validate_nodes([GpuNode("a"), GpuNode("a"), GpuNode("B", gpus=-2)])
    message = str(caught.value)
    assert "node 'a': defined more than once" in message
    assert "node 'B': name 'B' is not a DNS subdomain" in message
    assert "node 'B': gpus must not be negative" in message


def test_a_cpu_node_needs_no_gpu_fields() -> None:
    validate_nodes([GpuNode("cpu", gpus=0, product="", memory_per_gpu_bytes=0)])


@given(gpus=st.integers(0, 64), memory=st.integers(MIB, 256 * GIB))
def test_gpu_labels_agree_with_capacity(gpus: int, memory: int) -> None:
    manifest = node_manifest(GpuNode("n", gpus=gpus, memory_per_gpu_bytes=memory), NOW)
    labels: dict[str, str] = manifest["metadata"]["labels"]
    capacity: dict[str, Any] = manifest["status"]["capacity"]
    if gpus == 0:
        assert GPU_RESOURCE not in capacity
        assert not any(key.startswith("nvidia.com/") for key in labels)
        return
    assert labels[COUNT_LABEL] == capacity[GPU_RESOURCE] == str(gpus)
    mib = int(labels[MEMORY_LABEL])
    assert mib * MIB <= memory < (mib + 1) * MIB


# --- the simulated node spec ------------------------------------------------------------------


def test_the_default_cluster_is_eight_h100_and_eight_a100_nodes() -> None:
    specs, text = load_nodes(None)
    nodes = [gpu_node(spec) for spec in specs]
    by_product: dict[str, list[GpuNode]] = {}
    for node in nodes:
        by_product.setdefault(node.product, []).append(node)
    h100, a100 = by_product["NVIDIA-H100-80GB-HBM3"], by_product["NVIDIA-A100-SXM4-40GB"]
    assert [n.name for n in h100] == [f"h100-{i}" for i in range(8)]
    assert [n.name for n in a100] == [f"a100-{i}" for i in range(8)]
    assert {(n.gpus, n.memory_per_gpu_bytes) for n in h100} == {(8, 80 * GIB)}
    assert {(n.gpus, n.memory_per_gpu_bytes) for n in a100} == {(8, 40 * GIB)}
    assert "namePrefix: h100-" in text
    validate_nodes(nodes)


def test_fake_nodes_carry_the_labels_the_simulated_agent_reports() -> None:
    specs, _ = load_nodes(None)
    for spec in specs:
        labels = node_manifest(gpu_node(spec), NOW)["metadata"]["labels"]
        assert spec.shape.gfd_labels().items() <= labels.items()


def test_a_node_of_a_shape_shows_its_product_gpus_and_vram() -> None:
    shape = NodeShape("NVIDIA-L4", 2, 24 * GIB, NvLink.none(2))
    node = GpuNode.of("l4-0", shape, pods=50)
    assert node == GpuNode(
        "l4-0", gpus=2, product="NVIDIA-L4", memory_per_gpu_bytes=24 * GIB, pods=50
    )
    assert node.gfd_labels() == shape.gfd_labels()


def test_a_spec_file_is_read_and_handed_on_verbatim(tmp_path: Path) -> None:
    text = "nodes:\n- {name: solo, product: NVIDIA-L4, gpus: 1, memoryPerGpu: 24Gi}\n"
    path = tmp_path / "nodes.yaml"
    path.write_text(text)
    specs, handed_on = load_nodes(path)
    assert [gpu_node(s) for s in specs] == [
        GpuNode("solo", gpus=1, product="NVIDIA-L4", memory_per_gpu_bytes=24 * GIB)
    ]
    assert handed_on == text


@pytest.mark.parametrize(
    ("content", "error", "fragment"),
    [
        (None, DocumentError, "file not found"),
        ("nodes: [", DocumentError, "line"),
        (
            "nodes:\n- {name: a, product: P, gpus: two, memoryPerGpu: 1Gi}\n",
            InputError,
            "nodes[0].gpus",
        ),
    ],
    ids=["missing-file", "broken-yaml", "bad-field"],
)
def test_a_bad_spec_file_is_named_in_the_error(
    tmp_path: Path, content: str | None, error: type[InputError], fragment: str
) -> None:
    path = tmp_path / "nodes.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(error) as caught:
        load_nodes(path)
    assert caught.value.source == str(path)
    assert fragment in str(caught.value)
