"""The pool catalog: each pool is a core ``NodeShape`` (NVLink islands read by the core's one
parser, GPU Feature Discovery labels derived from it), and every problem of a catalog file is
named at its field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from placement.fields import InputError
from planner.inputs.catalog import load_catalog, parse_catalog


def pool(gpus: int = 4, product: str = "NVIDIA-H100-80GB-HBM3", **extra: Any) -> dict[str, Any]:
    return {
        "name": "p",
        "gpuProduct": product,
        "gpus": gpus,
        "memoryPerGpu": "80Gi",
        "cpu": 96,
        "memory": "512Gi",
        "price": {"perHour": 10.0, "source": "test", "asOf": "2026-01-01"},
        **extra,
    }


def islands_of(nvlink: object, gpus: int = 4) -> tuple[tuple[int, ...], ...]:
    (p,) = parse_catalog({"pools": [pool(gpus, nvlink=nvlink)]}, "test").pools
    return p.islands


# name: (nvlink field, islands). The planner's own parser used to read the first two rows of
# REJECTED as islands (a GPU twice in one island; an empty island) and refused the bare list.
ISLANDS = {
    "absent-is-none": (None, ((0,), (1,), (2,), (3,))),
    "none": ("none", ((0,), (1,), (2,), (3,))),
    "false": (False, ((0,), (1,), (2,), (3,))),
    "all": ("all", ((0, 1, 2, 3),)),
    "true": (True, ((0, 1, 2, 3),)),
    "two-pairs": ({"islands": [[0, 1], [2, 3]]}, ((0, 1), (2, 3))),
    "unlisted-gpus-are-islands-of-one": ({"islands": [[3, 1]]}, ((0,), (1, 3), (2,))),
    "bare-list": ([[0, 1], [2, 3]], ((0, 1), (2, 3))),
}


@pytest.mark.parametrize("case", list(ISLANDS), ids=list(ISLANDS))
def test_nvlink_islands(case: str) -> None:
    nvlink, islands = ISLANDS[case]
    assert islands_of(nvlink) == islands


# name: (nvlink field, the problem named)
REJECTED = {
    "gpu-twice-in-one-island": ({"islands": [[0, 0, 1]]}, "GPU 0 is listed twice in this island"),
    "empty-island": ({"islands": [[0, 1], []]}, "an island lists no GPU"),
    "gpu-in-two-islands": ({"islands": [[0, 1], [1, 2]]}, "GPU 1 is listed again (in island 0)"),
    "index-out-of-range": ({"islands": [[0, 4]]}, "4 is not a GPU index 0..3"),
    "not-a-form": ("some", "expected all, none or islands"),
}


@pytest.mark.parametrize("case", list(REJECTED), ids=list(REJECTED))
def test_bad_nvlink_islands_are_named(case: str) -> None:
    nvlink, message = REJECTED[case]
    with pytest.raises(InputError) as err:
        islands_of(nvlink)
    (problem,) = err.value.problems
    assert problem.where.startswith("pools[p].nvlink")
    assert message in problem.message


# name: (product, label, value); None: the label is absent
LABELS = {
    "product": ("NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"),
    "count": ("NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.count", "4"),
    "memory-in-mib": ("NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.memory", "81920"),
    "hopper-family": ("NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.family", "hopper"),
    "ada-compute-major": ("NVIDIA-L4", "nvidia.com/gpu.compute.major", "8"),
    "unknown-product-no-family": ("ACME-X1", "nvidia.com/gpu.family", None),
    "pool-name": ("NVIDIA-L4", "vramfit.io/pool", "p"),
    "instance-type": ("NVIDIA-L4", "node.kubernetes.io/instance-type", "p"),
}


@pytest.mark.parametrize("case", list(LABELS), ids=list(LABELS))
def test_pool_labels_follow_from_its_shape(case: str) -> None:
    product, label, value = LABELS[case]
    (p,) = parse_catalog({"pools": [pool(product=product)]}, "test").pools
    assert p.label(label) == value


def test_catalog_labels_win_over_derived_ones() -> None:
    raw = pool(labels={"nvidia.com/gpu.family": "custom"})
    (p,) = parse_catalog({"pools": [raw]}, "test").pools
    assert p.label("nvidia.com/gpu.family") == "custom"


# name: (file text, message)
BAD_FILES = {
    "not-yaml": ("pools: [unclosed\n", "not valid YAML at line 2, column 1"),
    "not-a-mapping": ("- a\n- b\n", "expected a mapping, got a list"),
    "no-pools": ("version: 1\n", "pools: missing or empty: list at least one pool"),
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_bad_catalog_files_name_the_file(case: str, tmp_path: Path) -> None:
    text, message = BAD_FILES[case]
    path = tmp_path / "pools.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_catalog(path)
    assert str(path) in err.value.source
    assert any(message in str(p) for p in err.value.problems), err.value.problems
