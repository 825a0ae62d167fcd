"""What the end-to-end tests count as a double-booked GPU, from the agents' reports (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.bursts import double_booked

GIB = 1024**3


def pod(uid: str, vram: str | None = "70Gi") -> dict[str, Any]:
    annotations = {"vramfit.io/vram-per-gpu": vram} if vram else {}
    return {"metadata": {"uid": uid, "name": f"pod-{uid}", "annotations": annotations}}


def gpu(uuid: str, total: int, used: int, pods: dict[str, int], holder: str = "") -> dict[str, Any]:
    return {
        "uuid": uuid,
        "memory": {"totalBytes": total * GIB, "usedBytes": used * GIB},
        "pods": [{"podUID": u, "bytes": b * GIB} for u, b in pods.items()],
        "holderPodUID": holder or None,
    }


@pytest.mark.parametrize(
    ("gpus", "expected"),
    [
        pytest.param([gpu("g0", 80, 70, {"a": 70}, "a")], set(), id="one-pod-that-fits"),
        pytest.param(
            [gpu("g0", 80, 0, {}, "a"), gpu("g1", 80, 0, {}, "b")], set(), id="loading-not-yet"
        ),
        pytest.param(
            [gpu("g0", 80, 40, {"a": 20, "b": 20}, "a")],
            {"g0: held by 2 pods"},
            id="two-pods-on-one-gpu",
        ),
        pytest.param(
            [gpu("g0", 40, 40, {"a": 40}, "a")],
            {"g0: pod-a needs more than its 42949672960 bytes"},
            id="70Gi-pod-on-a-40GB-gpu",
        ),
        pytest.param(
            [gpu("g0", 80, 20, {}, "a")],
            {"g0: pod-a needs more than its 64424509440 bytes"},
            id="memory-held-by-no-pod-leaves-too-little",
        ),
        pytest.param([gpu("g0", 40, 40, {"x": 40}, "x")], set(), id="a-pod-of-no-known-need"),
    ],
)
def test_double_booked(gpus: list[dict[str, Any]], expected: set[str]) -> None:
    pods = [pod("a"), pod("b"), pod("x", vram=None)]
    assert double_booked(pods, {"node": {"gpus": gpus}}) == expected
