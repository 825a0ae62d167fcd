"""The simulated node spec: what it accepts, and errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from nodeagent.simulated.spec import default_cluster, find_node, load_spec, parse_spec
from placement.fields import DocumentError, InputError

GIB = 1024**3
GOOD = {
    "name": "h100-0",
    "product": "NVIDIA-H100-80GB-HBM3",
    "gpus": 8,
    "memoryPerGpu": "80Gi",
    "nvlink": "all",
    "cachedModels": [{"id": "meta-llama/Llama-3.1-70B-Instruct", "size": "141Gi"}],
    "localDiskBandwidth": "2Gi",
    "remoteBandwidth": "500Mi",
}


def test_full_node_is_read() -> None:
    (n,) = parse_spec({"nodes": [GOOD]})
    assert (n.name, n.shape.gpus, n.shape.vram_per_gpu) == ("h100-0", 8, 80 * GIB)
    assert n.shape.islands == (tuple(range(8)),)
    assert n.cached_models[0].bytes == 141 * GIB
    assert (n.local_disk_bandwidth, n.remote_bandwidth) == (2 * GIB, 500 * 1024**2)
    assert n.gpu_uuid(0).startswith("GPU-") and n.gpu_uuid(0) != n.gpu_uuid(1)
    assert n.shape.gfd_labels()["nvidia.com/gpu.memory"] == str(80 * 1024)


def test_bandwidths_default_when_not_given() -> None:
    (n,) = parse_spec({"nodes": [{**GOOD, "localDiskBandwidth": None, "remoteBandwidth": None}]})
    assert (n.local_disk_bandwidth, n.remote_bandwidth) == (2 * GIB, 500 * 1024**2)


def test_name_prefix_and_islands() -> None:
    nodes = parse_spec(
        {
            "nodes": [
                {
                    "namePrefix": "a100-",
                    "count": 3,
                    "product": "A100",
                    "gpus": 8,
                    "memoryPerGpu": "40Gi",
                    "nvlink": {"islands": [[0, 1, 2, 3], [4, 5, 6, 7]]},
                }
            ]
        }
    )
    assert [n.name for n in nodes] == ["a100-0", "a100-1", "a100-2"]
    assert nodes[0].shape.islands == ((0, 1, 2, 3), (4, 5, 6, 7))
    assert nodes[0].gpu_uuid(0) != nodes[1].gpu_uuid(0)


def test_default_cluster() -> None:
    nodes = default_cluster()
    assert len(nodes) == 16
    assert {n.shape.product for n in nodes} == {"NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-40GB"}
    assert all(n.shape.gpus == 8 and n.shape.nvlink.mode == "all" for n in nodes)


# The islands rule the three readers of ``nvlink`` used to disagree on; the core's one rule.
ISLAND_CASES = {
    "unlisted-gpus-are-islands-of-one": (
        [[0, 1], [4, 5]],
        ((0, 1), (2,), (3,), (4, 5), (6,), (7,)),
    ),
    "bare-list": ([[0, 1, 2, 3], [4, 5, 6, 7]], ((0, 1, 2, 3), (4, 5, 6, 7))),
    "unsorted-islands-come-back-sorted": (
        [[5, 4], [1, 0]],
        ((0, 1), (2,), (3,), (4, 5), (6,), (7,)),
    ),
}


@pytest.mark.parametrize(("nvlink", "islands"), ISLAND_CASES.values(), ids=ISLAND_CASES.keys())
def test_islands_follow_the_core_rule(nvlink: Any, islands: tuple[tuple[int, ...], ...]) -> None:
    (n,) = parse_spec({"nodes": [{**GOOD, "nvlink": nvlink}]})
    assert n.shape.islands == islands


def bad(**changes: Any) -> dict[str, Any]:
    node = dict(GOOD)
    for k, v in changes.items():
        if v is None:
            node.pop(k)
        else:
            node[k] = v
    return {"nodes": [node]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param({"node": []}, "nodes: missing (required)", id="no-nodes"),
        pytest.param(
            bad(memoryPerGpu="eighty"), "nodes[0].memoryPerGpu: 'eighty'", id="bad-quantity"
        ),
        pytest.param(bad(memoryPerGpu=None), "nodes[0].memoryPerGpu: missing", id="missing-memory"),
        pytest.param(
            bad(memoryPerGpu="0"),
            "nodes[0].memoryPerGpu: expected a size above zero",
            id="zero-memory",
        ),
        pytest.param(bad(gpus=0), "nodes[0].gpus: expected a whole number >= 1", id="zero-gpus"),
        pytest.param(bad(gpus="8"), "nodes[0].gpus: expected a whole number", id="gpus-string"),
        pytest.param(bad(product=None), "nodes[0].product", id="missing-product"),
        pytest.param(
            bad(nvlink="some"), "nodes[0].nvlink: expected all, none or islands", id="bad-nvlink"
        ),
        pytest.param(
            bad(nvlink={"islands": [[0, 9]]}),
            "nodes[0].nvlink.islands[0]: 9",
            id="island-out-of-range",
        ),
        pytest.param(
            bad(nvlink={"islands": [[0, 1], [1, 2]]}),
            "nodes[0].nvlink.islands[1]: GPU 1 is listed again (in island 0)",
            id="island-overlap",
        ),
        pytest.param(
            bad(cachedModels=[{"size": "1Gi"}]), "nodes[0].cachedModels[0]", id="cached-without-id"
        ),
        pytest.param(
            bad(cachedModels=[{"id": "m", "size": "x"}]),
            "nodes[0].cachedModels[0].size",
            id="cached-bad-size",
        ),
        pytest.param(
            bad(remoteBandwidth="fast"), "nodes[0].remoteBandwidth: 'fast'", id="bad-bandwidth"
        ),
        pytest.param(
            bad(localDiskBandwidth="0"),
            "nodes[0].localDiskBandwidth: expected a size above zero",
            id="zero-bandwidth",
        ),
        pytest.param(bad(memPerGpu="80Gi"), "nodes[0].memPerGpu: unknown field", id="typo"),
        pytest.param(
            bad(count=2),
            "nodes[0].count: only allowed with 'namePrefix'",
            id="count-without-prefix",
        ),
        pytest.param(bad(name=None), "exactly one of 'name' or 'namePrefix'", id="no-name"),
        pytest.param(
            {"nodes": [GOOD, GOOD]},
            "nodes: node name 'h100-0' appears more than once",
            id="duplicate",
        ),
        pytest.param({"nodes": ["h100-0"]}, "nodes[0]: expected a mapping", id="not-a-mapping"),
    ],
)
def test_malformed_spec_names_the_field(data: Any, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_spec(data, "cluster.yaml")
    assert message in str(err.value)
    assert err.value.source == "cluster.yaml"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InputError) as err:
        parse_spec(bad(gpus=-1, memoryPerGpu="x", remoteBandwidth="y"))
    assert len(err.value.problems) == 3


def test_load_spec_from_file(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump({"nodes": [GOOD]}))
    assert [n.name for n in load_spec(path)] == ["h100-0"]
    path.write_text("nodes: [")
    with pytest.raises(DocumentError, match=r"cluster\.yaml"):
        load_spec(path)
    with pytest.raises(DocumentError, match="file not found"):
        load_spec(tmp_path / "absent.yaml")


def test_find_node_lists_the_known_ones() -> None:
    with pytest.raises(InputError, match=r"no node named 'b200-0' \(nodes: h100-0"):
        find_node(default_cluster(), "b200-0", "built-in")
