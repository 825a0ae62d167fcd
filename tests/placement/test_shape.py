"""The GPU node shape: one NVLink rule (the cases the three old parsers disagreed on are named
in the ids: the planner's catalog, the simulated agent's node spec and the simulator's
scenario), and the GPU Feature Discovery labels a shape implies."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from placement.fields import FieldError, Fields, InputError, Problem
from placement.shape import (
    NodeShape,
    NvLink,
    compute_capability,
    gfd_product,
    parse_nvlink,
    read_nvlink,
)

GIB = 1024**3


@pytest.mark.parametrize(
    ("raw", "gpus", "islands", "mode"),
    [
        pytest.param("all", 4, ((0, 1, 2, 3),), "all", id="all"),
        pytest.param(True, 4, ((0, 1, 2, 3),), "all", id="true-is-all-scenario-rejected-it"),
        pytest.param("none", 3, ((0,), (1,), (2,)), "none", id="none-singles-agent-kept-none"),
        pytest.param(False, 2, ((0,), (1,)), "none", id="false-is-none-scenario-rejected-it"),
        pytest.param(None, 2, ((0,), (1,)), "none", id="absent-is-none"),
        pytest.param("all", 1, ((0,),), "all", id="all-on-one-gpu-one-island-agent-gave-none"),
        pytest.param(
            {"islands": [[0, 1], [2, 3]]}, 4, ((0, 1), (2, 3)), "islands", id="islands-mapping"
        ),
        pytest.param(
            [[2, 3], [1, 0]],
            4,
            ((0, 1), (2, 3)),
            "islands",
            id="bare-list-catalog-rejected-it-sorted",
        ),
        pytest.param(
            {"islands": [[0, 1]]},
            4,
            ((0, 1), (2,), (3,)),
            "islands",
            id="unlisted-gpus-single-islands-scenario-rejected-them",
        ),
        pytest.param(
            {"islands": [[0, 1, 2, 3]]},
            4,
            ((0, 1, 2, 3),),
            "islands",
            id="one-listed-island-of-all-is-not-nvswitch",
        ),
        pytest.param([[1]], 2, ((0,), (1,)), "none", id="islands-of-one-only"),
        pytest.param([], 2, ((0,), (1,)), "none", id="empty-list-no-island"),
    ],
)
def test_parse_nvlink(raw: Any, gpus: int, islands: tuple[tuple[int, ...], ...], mode: str) -> None:
    problems: list[Problem] = []
    nv = parse_nvlink(raw, gpus, "pools[0].nvlink", problems)
    assert problems == []
    assert (nv.islands, nv.mode) == (islands, mode)


@pytest.mark.parametrize(
    ("raw", "gpus", "problems"),
    [
        pytest.param(
            [[0, 0, 1]],
            4,
            ["n.nvlink[0]: GPU 0 is listed twice in this island"],
            id="repeat-in-one-island-catalog-accepted-it",
        ),
        pytest.param(
            {"islands": [[0, 1], [1, 2]]},
            4,
            ["n.nvlink.islands[1]: GPU 1 is listed again (in island 0)"],
            id="repeat-across-islands",
        ),
        pytest.param(
            [[], [0, 1]],
            2,
            ["n.nvlink[0]: an island lists no GPU"],
            id="empty-island-catalog-and-agent-accepted-it",
        ),
        pytest.param(
            [[0, 4]], 4, ["n.nvlink[0]: 4 is not a GPU index 0..3"], id="index-out-of-range"
        ),
        pytest.param([[-1]], 4, ["n.nvlink[0]: -1 is not a GPU index 0..3"], id="negative-index"),
        pytest.param(
            [[True, 1]], 4, ["n.nvlink[0]: True is not a GPU index 0..3"], id="boolean-index"
        ),
        pytest.param(
            [[0, 9], [0]],
            2,
            [
                "n.nvlink[0]: 9 is not a GPU index 0..1",
                "n.nvlink[1]: GPU 0 is listed again (in island 0)",
            ],
            id="every-problem-reported",
        ),
        pytest.param(
            "some",
            4,
            [
                "n.nvlink: expected all, none or islands such as {islands: [[0,1],[2,3]]}, got 'some'"
            ],
            id="unknown-word",
        ),
        pytest.param(
            "All",
            4,
            ["n.nvlink: expected all, none or islands such as {islands: [[0,1],[2,3]]}, got 'All'"],
            id="words-are-exact",
        ),
        pytest.param(
            {"islands": [[0, 1]], "extra": 1},
            4,
            [
                "n.nvlink: expected all, none or islands such as {islands: [[0,1],[2,3]]}, "
                "got {'extra': 1, 'islands': [[...]]}"
            ],
            id="mapping-with-other-keys",
        ),
        pytest.param(
            [0, 1],
            4,
            [
                "n.nvlink: expected all, none or islands such as {islands: [[0,1],[2,3]]}, got [0, 1]"
            ],
            id="flat-list",
        ),
    ],
)
def test_parse_nvlink_rejects(raw: Any, gpus: int, problems: list[str]) -> None:
    found: list[Problem] = []
    nv = parse_nvlink(raw, gpus, "n.nvlink", found)
    assert [str(p) for p in found] == problems
    assert nv == NvLink.none(gpus)


def test_parse_nvlink_raises_without_a_problem_list() -> None:
    with pytest.raises(FieldError) as one:
        parse_nvlink([[5]], 2, "nvlink")
    assert one.value.detail == "5 is not a GPU index 0..1"
    with pytest.raises(InputError) as several:
        parse_nvlink([[5], [6]], 2, "nvlink")
    assert len(several.value.problems) == 2


def test_parse_nvlink_with_no_gpus_reads_nothing_and_reports_nothing() -> None:
    found: list[Problem] = []
    assert parse_nvlink([[0, 1]], 0, "nvlink", found) == NvLink(())
    assert found == []


@pytest.mark.parametrize(
    ("raw", "default", "expected"),
    [
        pytest.param({}, None, NvLink.none(2), id="absent-none"),
        pytest.param({}, NvLink.all(2), NvLink.all(2), id="absent-default"),
        pytest.param({"nvlink": None}, NvLink.all(2), NvLink.all(2), id="null-default"),
        pytest.param({"nvlink": "none"}, NvLink.all(2), NvLink.none(2), id="present-wins"),
    ],
)
def test_read_nvlink(raw: dict[str, Any], default: NvLink | None, expected: NvLink) -> None:
    f = Fields(raw, "pools[1]")
    assert read_nvlink(f, "nvlink", 2, default) == expected
    assert f.problems == []


def test_read_nvlink_problem_has_the_full_path() -> None:
    f = Fields({"nvlink": [[2]]}, "pools[1]")
    read_nvlink(f, "nvlink", 2)
    assert [str(p) for p in f.problems] == ["pools[1].nvlink[0]: 2 is not a GPU index 0..1"]


@given(
    st.integers(1, 16),
    st.lists(st.lists(st.integers(-2, 18), max_size=6), max_size=6),
)
def test_islands_are_a_partition_or_there_are_problems(gpus: int, raw: list[list[int]]) -> None:
    found: list[Problem] = []
    nv = parse_nvlink(raw, gpus, "nvlink", found)
    assert sorted(g for island in nv.islands for g in island) == list(range(gpus))
    assert list(nv.islands) == sorted(nv.islands)
    flat = [g for island in raw for g in island]
    valid = all(0 <= g < gpus for g in flat) and len(set(flat)) == len(flat)
    assert (found == []) == (valid and all(raw))
    NodeShape("X", gpus, GIB, nv)  # always a consistent shape


@pytest.mark.parametrize(
    ("islands", "gpus", "expected"),
    [
        pytest.param(((3, 2),), 4, ((0,), (1,), (2, 3)), id="filled-and-sorted"),
        pytest.param((), 2, ((0,), (1,)), id="nothing-linked"),
    ],
)
def test_nvlink_of(islands: tuple[tuple[int, ...], ...], gpus: int, expected: Any) -> None:
    assert NvLink.of(islands, gpus).islands == expected


@pytest.mark.parametrize(
    ("islands", "gpus"),
    [
        pytest.param(((0, 0),), 2, id="repeat"),
        pytest.param(((2,),), 2, id="out-of-range"),
    ],
)
def test_nvlink_of_rejects(islands: tuple[tuple[int, ...], ...], gpus: int) -> None:
    with pytest.raises(ValueError, match="bad GPU index"):
        NvLink.of(islands, gpus)


def test_nvlink_views() -> None:
    nv = NvLink.of(((0, 1, 2), (4, 5)), 8)
    assert (nv.mode, nv.largest, nv.linked) == ("islands", 3, ((0, 1, 2), (4, 5)))
    assert NvLink.none(4).largest == 1
    assert NvLink.none(4).linked == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"gpus": 0, "nvlink": NvLink(())}, "at least one GPU", id="no-gpu"),
        pytest.param({"vram_per_gpu": -1}, "must not be negative", id="negative-vram"),
        pytest.param(
            {"nvlink": NvLink.all(4)}, "must list each of 8 GPUs once", id="islands-short"
        ),
        pytest.param({"remote_bytes_per_s": 0.0}, "above zero", id="zero-bandwidth"),
    ],
)
def test_node_shape_rejects(kwargs: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "product": "NVIDIA-H100-80GB-HBM3",
        "gpus": 8,
        "vram_per_gpu": 80 * GIB,
        "nvlink": NvLink.all(8),
    }
    with pytest.raises(ValueError, match=message):
        NodeShape(**(base | kwargs))


@pytest.mark.parametrize(
    ("shape", "labels"),
    [
        pytest.param(
            NodeShape("NVIDIA-H100-80GB-HBM3", 8, 80 * GIB, NvLink.all(8), 2.0 * GIB),
            {
                "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
                "nvidia.com/gpu.count": "8",
                "nvidia.com/gpu.memory": "81920",
                "nvidia.com/gpu.compute.major": "9",
                "nvidia.com/gpu.compute.minor": "0",
                "nvidia.com/gpu.family": "hopper",
            },
            id="h100",
        ),
        pytest.param(
            NodeShape("NVIDIA A100-SXM4-40GB", 4, 40 * GIB, NvLink.none(4)),
            {
                "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB",
                "nvidia.com/gpu.count": "4",
                "nvidia.com/gpu.memory": "40960",
                "nvidia.com/gpu.compute.major": "8",
                "nvidia.com/gpu.compute.minor": "0",
                "nvidia.com/gpu.family": "ampere",
            },
            id="nvml-name-cleaned",
        ),
        pytest.param(
            NodeShape("NVIDIA L40S", 1, 48 * GIB, NvLink.none(1)),
            {
                "nvidia.com/gpu.product": "NVIDIA-L40S",
                "nvidia.com/gpu.count": "1",
                "nvidia.com/gpu.memory": "49152",
                "nvidia.com/gpu.compute.major": "8",
                "nvidia.com/gpu.compute.minor": "9",
                "nvidia.com/gpu.family": "ada-lovelace",
            },
            id="ada",
        ),
        pytest.param(
            NodeShape("Acme Tensor 9000", 2, 0, NvLink.none(2)),
            {"nvidia.com/gpu.product": "Acme-Tensor-9000", "nvidia.com/gpu.count": "2"},
            id="unknown-product-and-zero-memory-left-out",
        ),
    ],
)
def test_gfd_labels(shape: NodeShape, labels: dict[str, str]) -> None:
    assert shape.gfd_labels() == labels


@pytest.mark.parametrize(
    ("name", "label"),
    [
        pytest.param("NVIDIA H100 80GB HBM3", "NVIDIA-H100-80GB-HBM3", id="spaces"),
        pytest.param("NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-80GB-HBM3", id="already-a-label"),
        pytest.param("Tesla V100-SXM2-16GB (rev. a)", "Tesla-V100-SXM2-16GB-rev.-a", id="kept-set"),
        pytest.param("NVIDIA  A10", "NVIDIA--A10", id="each-space"),
    ],
)
def test_gfd_product(name: str, label: str) -> None:
    assert gfd_product(name) == label


@pytest.mark.parametrize(
    ("product", "capability"),
    [
        pytest.param("NVIDIA-A10G", (8, 6), id="a10g"),
        pytest.param("NVIDIA-A100-SXM4-80GB", (8, 0), id="a100-not-a10"),
        pytest.param("NVIDIA GH200 480GB", (9, 0), id="gh200"),
        pytest.param("NVIDIA-B200", (10, 0), id="b200"),
        pytest.param("Tesla-T4", (7, 5), id="t4"),
        pytest.param("NVIDIA-H100X", None, id="no-partial-match"),
    ],
)
def test_compute_capability(product: str, capability: tuple[int, int] | None) -> None:
    assert compute_capability(product) == capability
