"""The plan as autoscaler configuration: Karpenter NodePools and cluster-autoscaler node groups
from the kwok pools, checked as data and applied to the real API server (NodePools against
Karpenter's own CRDs)."""

from __future__ import annotations

import contextlib
import io
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.harness import ControlPlane
from controlplane.karpenterbin import locate
from planner.cli import EXIT_OK, main
from planner.inputs.catalog import load_catalog
from planner.reports.autoscalers import node_group, node_pool, peak_nodes
from planner.reports.document import Report

FIXTURES = Path(__file__).parent / "fixtures"
PLAN = ["--from", str(FIXTURES / "needs_70g.yaml"), "--catalog", str(FIXTURES / "kwok_pools.yaml")]


def _render(fmt: str) -> list[dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main([*PLAN, "-o", fmt]) == EXIT_OK
    return [d for d in yaml.safe_load_all(out.getvalue()) if d]


@pytest.fixture(scope="module")
def node_pools() -> list[dict[str, Any]]:
    return _render("karpenter")


@pytest.fixture(scope="module")
def ca_config_map() -> dict[str, Any]:
    (config_map,) = _render("cluster-autoscaler")
    return config_map


def test_only_the_80g_pool_gets_a_node_pool_limited_to_the_peak(
    node_pools: list[dict[str, Any]],
) -> None:
    (pool,) = node_pools  # the 40 GB pool can never hold a 70 GiB shard: no NodePool for it
    assert pool["metadata"]["name"] == "vramfit-kwok-a100-80g"
    spec = pool["spec"]
    # 4 replicas of 2 GPUs at peak fit one 8-GPU node.
    assert spec["limits"] == {"nvidia.com/gpu": "8"}
    labels = spec["template"]["metadata"]["labels"]
    assert labels["nvidia.com/gpu.memory"] == "81920"
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"
    assert not any(k.startswith("node.kubernetes.io/") for k in labels)
    template = spec["template"]["spec"]
    assert template["nodeClassRef"] == {
        "group": "karpenter.kwok.sh",
        "kind": "KWOKNodeClass",
        "name": "default",
    }
    assert template["requirements"][0]["values"] == ["gpu-a100-80g-8x"]
    assert template["taints"] == [
        {"key": "nvidia.com/gpu", "effect": "NoSchedule", "value": "present"}
    ]


def test_cluster_autoscaler_node_groups(ca_config_map: dict[str, Any]) -> None:
    (group,) = yaml.safe_load(ca_config_map["data"]["node-groups.yaml"])
    assert (group["name"], group["minSize"], group["maxSize"]) == ("kwok-a100-80g", 1, 1)
    assert ca_config_map["data"]["nodes-flags"] == "--nodes=1:1:kwok-a100-80g\n"
    tags = group["tags"]
    assert tags["k8s.io/cluster-autoscaler/node-template/label/nvidia.com/gpu.memory"] == "81920"
    assert tags["k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu"] == "8"
    assert (
        tags["k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu"] == "present:NoSchedule"
    )


def _report(**scenarios: dict[str, int]) -> Report:
    found = {
        name: {"pools": [{"name": p, "nodes": n} for p, n in pools.items()]}
        for name, pools in scenarios.items()
    }
    return {"scenarios": found}  # type: ignore[typeddict-item]


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        pytest.param(
            _report(min={"a": 1}, peak={"a": 3, "b": 1}), ({"a": 3, "b": 1}, "peak"), id="peak"
        ),
        pytest.param(
            _report(min={"a": 1}, rollout={"a": 2, "b": 1}),
            ({"a": 2, "b": 1}, "the most of min, rollout"),
            id="no-peak-the-most",
        ),
    ],
)
def test_peak_nodes(report: Report, expected: tuple[dict[str, int], str]) -> None:
    assert peak_nodes(report) == expected


@pytest.mark.parametrize(
    ("pool_name", "cloud_kind"),
    [
        pytest.param("aws-p5.48xlarge", "EC2NodeClass", id="aws"),
        pytest.param("azure-ND96isr_H100_v5", "AKSNodeClass", id="azure"),
    ],
)
def test_shipped_pools_render_with_their_cloud_node_class(pool_name: str, cloud_kind: str) -> None:
    pool = load_catalog(None).pool(pool_name)
    rendered = node_pool(pool, 2, "peak")
    assert rendered["spec"]["template"]["spec"]["nodeClassRef"]["kind"] == cloud_kind
    assert rendered["metadata"]["name"] == rendered["metadata"]["name"].lower()
    assert rendered["spec"]["limits"]["nvidia.com/gpu"] == str(2 * pool.gpus)
    assert node_group(pool, 0, 2)["maxSize"] == 2


# --- applied to the real API server --------------------------------------------------------


@pytest.fixture(scope="module")
def karpenter_crds(control_plane: ControlPlane) -> Iterator[Path]:
    crds = locate().crds
    control_plane.kubectl("apply", "--server-side", "-f", str(crds))
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(crds))
    yield crds


@pytest.mark.integration
def test_node_pools_are_accepted_by_karpenters_crds(
    control_plane: ControlPlane, karpenter_crds: Path, node_pools: list[dict[str, Any]]
) -> None:
    suffix = secrets.token_hex(3)
    for pool in node_pools:
        pool["metadata"]["name"] += f"-{suffix}"
    text = yaml.safe_dump_all(node_pools)
    applied = control_plane.kubectl("apply", "--server-side", "-f", "-", input_text=text)
    assert applied.stdout.count("serverside-applied") == len(node_pools)
    control_plane.kubectl("delete", "-f", "-", input_text=text)


@pytest.mark.integration
def test_cluster_autoscaler_config_map_is_accepted(
    control_plane: ControlPlane, ca_config_map: dict[str, Any]
) -> None:
    ca_config_map["metadata"]["name"] += f"-{secrets.token_hex(3)}"
    text = yaml.safe_dump(ca_config_map)
    applied = control_plane.kubectl("apply", "--server-side", "-f", "-", input_text=text)
    assert "serverside-applied" in applied.stdout
    control_plane.kubectl("delete", "-f", "-", input_text=text)
