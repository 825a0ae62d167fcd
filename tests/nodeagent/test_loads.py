"""Simulated model loads: GPU choice (the device plugin's rule, the reservation unread unless
asked), bandwidth sharing, memory growth."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodeagent.simulated.loads import Load, Source, advance, choose_gpus, pod_needs, seconds_left
from placement.deviceplugin import mask_of, possible_allocations
from placement.shape import NvLink

GIB = 1024**3


def load(uid: str, total: int, source: Source = Source.REMOTE, per_gpu: int = 0) -> Load:
    return Load(uid, f"ns/{uid}", ("GPU-0",), per_gpu, "", total, source, 0.0)


def test_a_load_alone_takes_size_over_bandwidth() -> None:
    (a,) = advance([load("a", 100 * GIB)], 10.0, 2 * GIB, 1 * GIB)
    assert a.loaded_bytes == pytest.approx(10 * GIB) and not a.done
    assert seconds_left([load("a", 100 * GIB)], "a", 2 * GIB, 1 * GIB) == pytest.approx(100.0)


def test_overlapping_loads_share_the_bandwidth() -> None:
    loads = [load("a", 100 * GIB), load("b", 100 * GIB)]
    assert seconds_left(loads, "a", 0, 1 * GIB) == pytest.approx(200.0)


def test_local_loads_do_not_slow_remote_ones() -> None:
    loads = [load("a", 100 * GIB, Source.REMOTE), load("b", 100 * GIB, Source.LOCAL)]
    assert seconds_left(loads, "a", 4 * GIB, 1 * GIB) == pytest.approx(100.0)
    assert seconds_left(loads, "b", 4 * GIB, 1 * GIB) == pytest.approx(25.0)


def test_a_finished_load_hands_its_share_on_within_the_step() -> None:
    small, big = advance([load("s", 10 * GIB), load("b", 100 * GIB)], 30.0, 0, 1 * GIB)
    # 20 s shared (10 GiB each), then 10 s alone: the big one has 20 GiB.
    assert small.done and big.loaded_bytes == pytest.approx(20 * GIB)


def test_memory_grows_with_the_load() -> None:
    (a,) = advance([load("a", 100 * GIB, per_gpu=40 * GIB)], 25.0, 0, 2 * GIB)
    assert a.memory_per_gpu() == 20 * GIB
    assert load("z", 0, per_gpu=5).done and load("z", 0, per_gpu=5).memory_per_gpu() == 5


@given(
    sizes=st.lists(st.integers(0, 10**12), min_size=1, max_size=6),
    dts=st.lists(st.floats(0, 500), min_size=1, max_size=5),
    bw=st.floats(1e6, 1e10),
)
@settings(max_examples=150, deadline=None)
def test_bytes_moved_never_exceed_the_bandwidth(
    sizes: list[int], dts: list[float], bw: float
) -> None:
    loads = tuple(load(str(i), s) for i, s in enumerate(sizes))
    for dt in dts:
        before = sum(ld.loaded_bytes for ld in loads)
        loads = advance(loads, dt, bw, bw)
        moved = sum(ld.loaded_bytes for ld in loads) - before
        assert moved <= bw * dt * (1 + 1e-9) + 1
        assert all(0 <= ld.loaded_bytes <= ld.total_bytes for ld in loads)
    # Progress is monotone and finishing everything takes exactly the total over bandwidth.
    total_left = sum(ld.total_bytes - ld.loaded_bytes for ld in loads)
    if total_left > 0:
        done = advance(loads, total_left / bw * (1 + 1e-9) + 1e-6, bw, bw)
        assert all(ld.done for ld in done)


PAIRS = NvLink.of(((0, 1), (2, 3)), 4)

CHOOSE = {
    # name: count, free, reserved, honour the reservation, every answer it may give
    "the-device-plugin-keeps-a-pair-whole": (2, [0, 1, 2, 3], [], False, [(0, 1), (2, 3)]),
    "the-reservation-is-not-read-by-default": (2, [0, 1, 2, 3], [1, 2], False, [(0, 1), (2, 3)]),
    "a-broken-pair-leaves-the-whole-one": (2, [0, 2, 3], [], False, [(2, 3)]),
    "one-gpu-may-be-any-free-one": (1, [1, 3], [], False, [(1,), (3,)]),
    "the-reservation-honoured-only-when-asked": (2, [0, 1, 2, 3], [1, 2], True, [(1, 2)]),
    "a-taken-reserved-gpu-falls-back-to-the-rule": (2, [0, 2, 3], [1, 2], True, [(2, 3)]),
    "too-few": (3, [0, 1], [], False, [None]),
}


@pytest.mark.parametrize(
    ("count", "free", "reserved", "honour", "answers"), CHOOSE.values(), ids=CHOOSE.keys()
)
def test_choose_gpus(
    count: int,
    free: list[int],
    reserved: list[int],
    honour: bool,
    answers: list[tuple[int, ...] | None],
) -> None:
    seen = {
        choose_gpus(
            count, free, PAIRS, random.Random(seed), reserved=reserved, honour_reservation=honour
        )
        for seed in range(40)
    }
    assert seen == set(answers)


@settings(max_examples=100, deadline=None)
@given(
    free=st.lists(st.integers(0, 7), unique=True, min_size=1),
    count=st.integers(1, 4),
    seed=st.integers(0, 1000),
)
def test_the_kubelet_gives_only_what_the_plugin_may_give(
    free: list[int], count: int, seed: int
) -> None:
    layout = NvLink.of(((0, 1), (2, 3), (4, 5, 6, 7)), 8)
    got = choose_gpus(count, free, layout, random.Random(seed))
    if count > len(free):
        assert got is None
    else:
        assert got is not None and frozenset(got) in possible_allocations(
            mask_of(free), count, layout
        )


def pod(annotations: dict[str, str], gpus: str = "2") -> dict[str, Any]:
    return {
        "metadata": {"uid": "u1", "name": "p", "namespace": "ns", "annotations": annotations},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": gpus}}}]},
    }


RES = json.dumps(
    {
        "v": 1,
        "node": "n1",
        "gpus": ["G2", "G3"],
        "bytesPerGpu": 1,
        "model": "",
        "at": "2025-01-01T00:00:00Z",
    }
)


@pytest.mark.parametrize(
    ("annotations", "gpus", "per_gpu", "model_bytes", "preferred", "problem"),
    [
        pytest.param(
            {"vramfit.io/model-size": "140Gi"}, 2, 70 * GIB, 140 * GIB, (), "", id="model-size"
        ),
        pytest.param(
            {"vramfit.io/vram-per-gpu": "60Gi"}, 2, 60 * GIB, 120 * GIB, (), "", id="vram-per-gpu"
        ),
        pytest.param(
            {"vramfit.io/vram-per-gpu": "100Gi"},
            2,
            80 * GIB,
            200 * GIB,
            (),
            "",
            id="capped-at-gpu-size",
        ),
        pytest.param({"vramfit.io/reservation": RES}, 2, 0, 0, (), "", id="reservation-unread"),
        pytest.param(
            {"vramfit.io/model-size": "lots"},
            2,
            0,
            0,
            (),
            "vramfit.io/model-size",
            id="bad-annotation",
        ),
        pytest.param({"vramfit.io/reservation": "{"}, 2, 0, 0, (), "", id="bad-reservation-unread"),
    ],
)
def test_pod_needs(
    *,
    annotations: dict[str, str],
    gpus: int,
    per_gpu: int,
    model_bytes: int,
    preferred: tuple[str, ...],
    problem: str,
) -> None:
    needs = pod_needs(pod(annotations), "n1", 80 * GIB)
    assert (needs.gpus, needs.bytes_per_gpu, needs.model_bytes) == (gpus, per_gpu, model_bytes)
    assert needs.preferred_gpus == preferred
    assert problem in needs.problem and bool(problem) == bool(needs.problem)


@pytest.mark.parametrize(
    ("annotation", "node", "preferred", "problem"),
    [
        pytest.param(RES, "n1", ("G2", "G3"), "", id="read-when-asked"),
        pytest.param(RES, "n2", (), "", id="for-another-node-not-preferred"),
        pytest.param("{", "n1", (), "not JSON", id="malformed-is-a-problem"),
    ],
)
def test_reservation_read_only_when_asked(
    annotation: str, node: str, preferred: tuple[str, ...], problem: str
) -> None:
    needs = pod_needs(pod({"vramfit.io/reservation": annotation}), node, 80 * GIB, reservation=True)
    assert needs.preferred_gpus == preferred
    assert problem in needs.problem and bool(problem) == bool(needs.problem)
