"""``fit()`` over the named edge cases: what fits, on which GPUs, and why not, for how long.

The kubelet hands a pod any set the device plugin's rule may give from the unallocated GPUs, so
a node passes only where every such set satisfies the pod; the GPUs of a ``Fit`` are the
plugin's predicted set (the list in index order).
"""

from __future__ import annotations

import dataclasses

import pytest

from placement.fit import effective_nvlink, fit, hidden_gpus, pending_counts, product_key
from placement.model import (
    GIB,
    Demand,
    Fit,
    FitSettings,
    GpuState,
    NodeState,
    NvlinkMode,
    PodMemory,
    Reject,
    Reservation,
)
from placement.topology import islands, link_fraction, nvlink_graph
from tests.builders import H100, NOW, Nvlink, gpu, node, reservation, uuids

A100_40 = "NVIDIA-A100-SXM4-40GB"
A100_80 = "NVIDIA-A100-SXM4-80GB"

EIGHT = [gpu(i) for i in range(8)]
TWO_ISLANDS = [[0, 1, 2, 3], [4, 5, 6, 7]]
# GPUs 0, 1, 4, 5 held: two free on each island.
SPLIT_FREE = [gpu(i, holder="other" if i in (0, 1, 4, 5) else None) for i in range(8)]
MIXED = [gpu(i, total=40, product=A100_40) for i in range(4)] + [
    gpu(i, total=80, product=A100_80) for i in range(4, 8)
]

CASES = [
    # -- what could never fit: unresolvable --------------------------------------------------
    pytest.param(
        node([]),
        Demand(1),
        [],
        FitSettings(),
        "",
        Reject("n1", "node reports no GPUs", resolvable=False),
        id="zero-gpus",
    ),
    pytest.param(
        node([gpu(0, total=40, product=A100_40)] * 1),
        Demand(1, vram_per_gpu=70 * GIB),
        [],
        FitSettings(),
        "",
        Reject(
            "n1",
            "needs 1 GPU(s) with at least 70 GiB each; node has 0 (1x NVIDIA-A100-SXM4-40GB 40 GiB)",
            resolvable=False,
        ),
        id="gpu-too-small-forever",
    ),
    pytest.param(
        node(MIXED),
        Demand(5, vram_per_gpu=70 * GIB),
        [],
        FitSettings(),
        "",
        Reject(
            "n1",
            "needs 5 GPU(s) with at least 70 GiB each; node has 4 "
            "(4x NVIDIA-A100-SXM4-40GB 40 GiB, 4x NVIDIA-A100-SXM4-80GB 80 GiB)",
            resolvable=False,
        ),
        id="mixed-40-80-too-few-large",
    ),
    pytest.param(
        node(EIGHT),
        Demand(1, products=frozenset({"NVIDIA-L4", "NVIDIA H200"})),
        [],
        FitSettings(),
        "",
        Reject(
            "n1",
            "no GPU of product NVIDIA H200, NVIDIA-L4 (node has 8x NVIDIA-H100-80GB-HBM3 80 GiB)",
            resolvable=False,
        ),
        id="no-gpu-of-product",
    ),
    pytest.param(
        node(EIGHT, nvlink=None),
        Demand(2, nvlink=NvlinkMode.REQUIRED),
        [],
        FitSettings(),
        "",
        Reject(
            "n1",
            "needs 2 GPUs on one NVLink island; the largest island of suitable GPUs has 1",
            resolvable=False,
        ),
        id="nvlink-required-no-island-large-enough",
    ),
    pytest.param(
        node(
            [dataclasses.replace(g, holder_pod_uid="other") for g in MIXED[:4]] + MIXED[4:],
            nvlink=TWO_ISLANDS,
        ),
        Demand(3, vram_per_gpu=70 * GIB, nvlink=NvlinkMode.REQUIRED),
        [],
        FitSettings(),
        "",
        Fit("n1", uuids(4, 5, 6), same_island=True),
        id="nvlink-required-island-of-large-gpus",
    ),
    pytest.param(
        node(MIXED, nvlink=[[0, 1, 2, 4], [3, 5, 6, 7]]),
        Demand(4, vram_per_gpu=70 * GIB, nvlink=NvlinkMode.REQUIRED),
        [],
        FitSettings(),
        "",
        Reject(
            "n1",
            "needs 4 GPUs on one NVLink island; the largest island of suitable GPUs has 3",
            resolvable=False,
        ),
        id="nvlink-required-islands-mix-small-gpus",
    ),
    # -- the agent and its report: resolvable ------------------------------------------------
    pytest.param(
        node(EIGHT, error="NVML unavailable: driver not loaded"),
        Demand(1),
        [],
        FitSettings(),
        "",
        Reject("n1", "node agent reports an error: NVML unavailable: driver not loaded", True),
        id="agent-error",
    ),
    pytest.param(
        node([], error="NVML unavailable"),
        Demand(1),
        [],
        FitSettings(),
        "",
        Reject("n1", "node agent reports an error: NVML unavailable", resolvable=True),
        id="agent-error-hides-its-gpus",
    ),
    pytest.param(
        node(EIGHT, lease=None),
        Demand(1),
        [],
        FitSettings(),
        "",
        Reject("n1", "no node agent heartbeat (Lease) seen for this node", resolvable=True),
        id="no-lease",
    ),
    pytest.param(
        node(EIGHT, lease=NOW - 95),
        Demand(1),
        [],
        FitSettings(),
        "",
        Reject("n1", "node agent heartbeat is 95s old (lease 40s)", resolvable=True),
        id="lease-expired",
    ),
    pytest.param(
        node(EIGHT, lease=NOW - 40),
        Demand(1),
        [],
        FitSettings(),
        "",
        Fit("n1", uuids(0), same_island=True),
        id="lease-at-its-duration-still-live",
    ),
    pytest.param(
        node(EIGHT, observed=NOW - 300),
        Demand(1),
        [],
        FitSettings(),
        "",
        Reject("n1", "GPU report is 300s old (limit 120s)", resolvable=True),
        id="report-too-old",
    ),
    pytest.param(
        node(EIGHT, observed=NOW - 300),
        Demand(1),
        [],
        FitSettings(max_report_age_s=600),
        "",
        Fit("n1", uuids(0), same_island=True),
        id="report-age-limit-from-settings",
    ),
    pytest.param(
        node(EIGHT, observed=NOW - 300, error="boom"),
        Demand(1, vram_per_gpu=90 * GIB),
        [],
        FitSettings(),
        "",
        Reject(
            "n1",
            "needs 1 GPU(s) with at least 90 GiB each; node has 0 "
            "(8x NVIDIA-H100-80GB-HBM3 80 GiB)",
            resolvable=False,
        ),
        id="never-fits-wins-over-stale",
    ),
    # -- what is free now: resolvable ---------------------------------------------------------
    pytest.param(
        node([gpu(0, free=10), gpu(1, free=20)]),
        Demand(1, vram_per_gpu=70 * GIB),
        [],
        FitSettings(),
        "",
        Reject(
            "n1",
            "needs 70 GiB free on every unallocated GPU (the kubelet may hand out any): "
            "GPU 0 has 10 GiB free, 70 GiB used by no pod; GPU 1 has 20 GiB free, "
            "60 GiB used by no pod",
            resolvable=True,
        ),
        id="busy-now",
    ),
    pytest.param(
        node([gpu(0, healthy=False), gpu(1, healthy=False, holder="p")]),
        Demand(1),
        [],
        FitSettings(),
        "",
        Reject("n1", "needs 1 free GPU(s); 0 free now (2 unhealthy)", True),
        id="unhealthy-gpus",
    ),
    pytest.param(
        node([gpu(0, healthy=False), gpu(1, free=75)]),
        Demand(1, vram_per_gpu=70 * GIB),
        [],
        FitSettings(),
        "",
        Fit("n1", uuids(1), same_island=True),
        id="unhealthy-gpu-skipped",
    ),
    pytest.param(
        node([gpu(0, free=None), gpu(1, holder="p"), gpu(2, free=1), gpu(3, healthy=False)]),
        Demand(1, vram_per_gpu=40 * GIB),
        [reservation("q", [0, 1, 2])],
        FitSettings(),
        "",
        Reject(
            "n1",
            "needs 1 free GPU(s); 0 free now (1 held, 3 reserved, 1 unhealthy)",
            resolvable=True,
        ),
        id="every-cause-counted-once",
    ),
    pytest.param(
        node([gpu(0, free=None), gpu(1, free=60)]),
        Demand(2, vram_per_gpu=40 * GIB),
        [],
        FitSettings(),
        "",
        Reject(
            "n1",
            "needs 40 GiB free on every unallocated GPU (the kubelet may hand out any): "
            "GPU 0 memory unknown",
            resolvable=True,
        ),
        id="unknown-free-memory",
    ),
    pytest.param(
        node([gpu(0, free=79), gpu(1, free=71), gpu(2, free=75), gpu(3, free=71)]),
        Demand(1, vram_per_gpu=70 * GIB),
        [],
        FitSettings(),
        "",
        Fit("n1", uuids(0), same_island=True),
        id="one-gpu-predicts-the-first-in-index-order",
    ),
    pytest.param(
        node(MIXED, nvlink=None),
        Demand(2, vram_per_gpu=70 * GIB),
        [],
        FitSettings(),
        "",
        Reject(
            "n1",
            "needs 70 GiB free on every unallocated GPU (the kubelet may hand out any): "
            "GPU 0 has 40 GiB free; GPU 1 has 40 GiB free; GPU 2 has 40 GiB free; 1 more",
            resolvable=True,
        ),
        id="mixed-40-80-refuses-a-big-pod-the-40s-could-get",
    ),
    pytest.param(
        node(MIXED, nvlink=None),
        Demand(2, vram_per_gpu=30 * GIB),
        [],
        FitSettings(),
        "",
        Fit("n1", uuids(0, 1), same_island=False),
        id="mixed-40-80-small-demand-takes-the-40s",
    ),
    # -- MIG: a MIG-enabled GPU is not offered as a whole nvidia.com/gpu ----------------------
    pytest.param(
        node([gpu(0, mig=True, free=75), gpu(1)]),
        Demand(1, vram_per_gpu=70 * GIB),
        [],
        FitSettings(),
        "",
        Fit("n1", uuids(1), same_island=True),
        id="mig-enabled-gpu-never-chosen-even-when-tightest",
    ),
    pytest.param(
        node([gpu(0, mig=True), gpu(1, mig=True), gpu(2, holder="p"), gpu(3)]),
        Demand(2),
        [],
        FitSettings(),
        "",
        Reject(
            "n1",
            "needs 2 free GPU(s); 1 free now (2 MIG-enabled, 1 held)",
            resolvable=True,
        ),
        id="mig-enabled-counted-among-not-free",
    ),
    pytest.param(
        node([gpu(0, mig=True), gpu(1, mig=True)]),
        Demand(2, vram_per_gpu=70 * GIB),
        [],
        FitSettings(),
        "",
        Reject(
            "n1",
            "needs 2 free GPU(s); 0 free now (2 MIG-enabled)",
            resolvable=True,
        ),
        id="all-mig-is-resolvable-mig-mode-can-be-turned-off",
    ),
    pytest.param(
        node([gpu(0, mig=True, healthy=False), gpu(1, mig=True, holder="p")]),
        Demand(1),
        [reservation("q", [1])],
        FitSettings(),
        "",
        Reject(
            "n1",
            "needs 1 free GPU(s); 0 free now (1 MIG-enabled, 1 reserved, 1 unhealthy)",
            resolvable=True,
        ),
        id="unhealthy-first-then-mig-then-held-and-promised-gpus-reserved",
    ),
    pytest.param(
        node([gpu(0, mig=True, holder="me"), gpu(1)]),
        Demand(2),
        [],
        FitSettings(),
        "me",
        Reject(
            "n1",
            "needs 2 free GPU(s); 1 free now (1 MIG-enabled)",
            resolvable=True,
        ),
        id="mig-gpu-held-by-own-pod-is-still-not-whole",
    ),
    pytest.param(
        node([gpu(0, mig=True, total=40, product=A100_40), gpu(1, total=40, product=A100_40)]),
        Demand(2, vram_per_gpu=70 * GIB),
        [],
        FitSettings(),
        "",
        Reject(
            "n1",
            "needs 2 GPU(s) with at least 70 GiB each; node has 0 "
            "(2x NVIDIA-A100-SXM4-40GB 40 GiB)",
            resolvable=False,
        ),
        id="too-small-wins-over-mig",
    ),
    # -- NVLink islands -----------------------------------------------------------------------
    pytest.param(
        node(SPLIT_FREE, nvlink=TWO_ISLANDS),
        Demand(4, nvlink=NvlinkMode.REQUIRED),
        [],
        FitSettings(),
        "",
        Reject(
            "n1",
            "needs 4 GPUs on one NVLink island; the device plugin may hand out GPUs across "
            "islands (unallocated per island: 2+2)",
            resolvable=True,
        ),
        id="four-gpus-split-islands-required",
    ),
    pytest.param(
        node(SPLIT_FREE, nvlink=TWO_ISLANDS),
        Demand(4),
        [],
        FitSettings(nvlink_for_multi_gpu=NvlinkMode.REQUIRED),
        "",
        Reject(
            "n1",
            "needs 4 GPUs on one NVLink island; the device plugin may hand out GPUs across "
            "islands (unallocated per island: 2+2)",
            resolvable=True,
        ),
        id="four-gpus-split-islands-required-by-settings",
    ),
    pytest.param(
        node(SPLIT_FREE, nvlink=TWO_ISLANDS),
        Demand(4, nvlink=NvlinkMode.PREFERRED),
        [],
        FitSettings(),
        "",
        Fit("n1", uuids(2, 3, 6, 7), same_island=False),
        id="four-gpus-split-islands-preferred",
    ),
    pytest.param(
        node(SPLIT_FREE, nvlink=TWO_ISLANDS),
        Demand(4, nvlink=NvlinkMode.NONE),
        [],
        FitSettings(nvlink_for_multi_gpu=NvlinkMode.REQUIRED),
        "",
        Fit("n1", uuids(2, 3, 6, 7), same_island=False),
        id="pod-says-none-over-settings",
    ),
    pytest.param(
        node(EIGHT, nvlink=[[0, 1], [2, 3, 4, 5, 6, 7]]),
        Demand(2, nvlink=NvlinkMode.REQUIRED),
        [],
        FitSettings(),
        "",
        Fit("n1", uuids(0, 1), same_island=True),
        id="smallest-island-keeps-big-islands-whole",
    ),
    pytest.param(
        node(EIGHT, nvlink=[[0, 1, 2, 3], [4, 5, 6, 7]]),
        Demand(2),
        [],
        FitSettings(),
        "",
        Fit("n1", uuids(0, 1), same_island=True),
        id="equal-islands-tie-by-uuid",
    ),
    pytest.param(
        node(
            [gpu(i, free=80 if i < 4 else 72) for i in range(8)],
            nvlink=TWO_ISLANDS,
        ),
        Demand(3, vram_per_gpu=70 * GIB),
        [],
        FitSettings(),
        "",
        Fit("n1", uuids(0, 1, 2), same_island=True),
        id="island-choice-before-tightness",
    ),
    pytest.param(
        node([gpu(i, free=[80, 71, 75, 72][i]) for i in range(4)]),
        Demand(2, vram_per_gpu=70 * GIB),
        [],
        FitSettings(),
        "",
        Fit("n1", uuids(0, 1), same_island=True),
        id="prediction-ignores-free-memory",
    ),
    # -- reservations -------------------------------------------------------------------------
    pytest.param(
        node([gpu(0), gpu(1)]),
        Demand(2),
        [reservation("other", [0])],
        FitSettings(),
        "",
        Reject("n1", "needs 2 free GPU(s); 1 free now (1 reserved)", resolvable=True),
        id="reservation-hides-candidate",
    ),
    pytest.param(
        node([gpu(0, free=75), gpu(1)]),
        Demand(1, vram_per_gpu=70 * GIB),
        [reservation("other", [0])],
        FitSettings(),
        "",
        Fit("n1", uuids(1), same_island=True),
        id="reservation-moves-choice",
    ),
    pytest.param(
        node([gpu(0, holder="other"), gpu(1)]),
        Demand(2),
        [reservation("other", [0])],
        FitSettings(),
        "",
        Reject("n1", "needs 2 free GPU(s); 1 free now (1 held)", resolvable=True),
        id="reservation-visible-on-node-counts-as-held",
    ),
    pytest.param(
        node([gpu(0), gpu(1)]),
        Demand(2),
        [reservation("other", [0], expires_at=NOW)],
        FitSettings(),
        "",
        Fit("n1", uuids(0, 1), same_island=True),
        id="expired-reservation-hides-nothing",
    ),
    pytest.param(
        node([gpu(0), gpu(1)]),
        Demand(2),
        [dataclasses.replace(reservation("other", [0]), node="n2")],
        FitSettings(),
        "",
        Fit("n1", uuids(0, 1), same_island=True),
        id="other-nodes-reservation-hides-nothing",
    ),
    pytest.param(
        node([gpu(0), gpu(1)]),
        Demand(2),
        [reservation("me", [0, 1])],
        FitSettings(),
        "me",
        Fit("n1", uuids(0, 1), same_island=True),
        id="own-reservation-ignored-on-refilter",
    ),
    pytest.param(
        node([gpu(0, holder="me"), gpu(1)]),
        Demand(2),
        [reservation("me", [0, 1])],
        FitSettings(),
        "me",
        Fit("n1", uuids(0, 1), same_island=True),
        id="gpu-held-by-own-pod-is-a-candidate",
    ),
    # -- what the kubelet may hand out: every set must do ------------------------------------
    pytest.param(
        node([gpu(0, holder="a"), gpu(1), gpu(2), gpu(3, free=20)]),
        Demand(1, vram_per_gpu=40 * GIB),
        [],
        FitSettings(),
        "",
        Reject(
            "n1",
            "needs 40 GiB free on every unallocated GPU (the kubelet may hand out any): "
            "GPU 3 has 20 GiB free, 60 GiB used by no pod",
            resolvable=True,
        ),
        id="leaked-memory-gpu-refuses-a-big-pod-and-is-named",
    ),
    pytest.param(
        node([gpu(0, holder="a"), gpu(1), gpu(2), gpu(3, free=20)]),
        Demand(1, vram_per_gpu=10 * GIB),
        [],
        FitSettings(),
        "",
        Fit("n1", uuids(1), same_island=True),
        id="leaked-memory-gpu-still-takes-a-small-pod",
    ),
    pytest.param(
        node(
            [
                gpu(0, free=70, used=10, pod_memory=[PodMemory("a", 10 * GIB)]),
                gpu(1, free=50),
            ]
        ),
        Demand(1, vram_per_gpu=60 * GIB),
        [],
        FitSettings(),
        "",
        Reject(
            "n1",
            "needs 60 GiB free on every unallocated GPU (the kubelet may hand out any): "
            "GPU 1 has 50 GiB free, 30 GiB used by no pod",
            resolvable=True,
        ),
        id="memory-a-pod-uses-is-not-named-as-leaked",
    ),
    pytest.param(
        node([gpu(0, holder="a"), gpu(1), gpu(2), gpu(3)]),
        Demand(2),
        [reservation("b", [1]), reservation("c", [2, 3], expires_at=NOW - 1)],
        FitSettings(),
        "",
        Fit("n1", uuids(2, 3), same_island=True),
        id="reservation-count-takes-what-waiting-pods-need",
    ),
    pytest.param(
        node([gpu(0, holder="a"), gpu(1), gpu(2), gpu(3)]),
        Demand(2),
        [reservation("b", [1]), reservation("c", [1, 2], node="n1")],
        FitSettings(),
        "",
        Reject("n1", "needs 2 free GPU(s); 0 free now (1 held, 3 reserved)", resolvable=True),
        id="reservation-count-refuses-when-waiting-pods-need-them-all",
    ),
    pytest.param(
        node([gpu(0, holder="b"), gpu(1), gpu(2), gpu(3)]),
        Demand(2),
        [reservation("b", [1, 2])],
        FitSettings(),
        "",
        Fit("n1", uuids(1, 2), same_island=True),
        id="a-pod-that-got-its-gpus-is-not-waiting-for-more",
    ),
    pytest.param(
        node(8, held={0: "a", 5: "a"}),
        Demand(3, nvlink=NvlinkMode.REQUIRED),
        [reservation("b", [1]), reservation("c", [2, 3])],
        FitSettings(),
        "",
        Fit("n1", uuids(4, 6, 7), same_island=True),
        id="nvswitch-node-passes-nvlink-pod",
    ),
    pytest.param(
        node(8, held=(3, 4, 5, 6, 7), nvlink=[[0, 1], [2, 3], [4, 5], [6, 7]]),
        Demand(2, nvlink=NvlinkMode.REQUIRED),
        [reservation("b", [2])],
        FitSettings(),
        "",
        Reject(
            "n1",
            "needs 2 GPUs on one NVLink island; the device plugin may hand out GPUs across "
            "islands (unallocated per island: 2+1)",
            resolvable=True,
        ),
        id="pair-island-node-with-a-broken-pair-refuses",
    ),
    pytest.param(
        node(8, held=(3, 4, 5, 6, 7), nvlink=[[0, 1], [2, 3], [4, 5], [6, 7]]),
        Demand(2, nvlink=NvlinkMode.REQUIRED),
        [reservation("b", [2])],
        FitSettings(nvlink_best_effort=True),
        "",
        Fit("n1", uuids(0, 1), same_island=True),
        id="best-effort-opt-in-passes",
    ),
    pytest.param(
        node(8, held=(1, 3, 5, 7), nvlink=[[0, 1], [2, 3], [4, 5], [6, 7]]),
        Demand(2, nvlink=NvlinkMode.REQUIRED),
        [],
        FitSettings(nvlink_best_effort=True),
        "",
        Reject(
            "n1",
            "needs 2 GPUs on one NVLink island; the device plugin may hand out GPUs across "
            "islands (unallocated per island: 1+1+1+1)",
            resolvable=True,
        ),
        id="best-effort-still-refuses-a-predicted-split",
    ),
    # -- products and pods without GPUs --------------------------------------------------------
    pytest.param(
        node(MIXED[4:], nvlink=None),
        Demand(1, products=frozenset({"nvidia a100-sxm4-80gb"})),
        [],
        FitSettings(),
        "",
        Fit("n1", uuids(4), same_island=True),
        id="product-constraint-any-spelling",
    ),
    pytest.param(
        node([dataclasses.replace(g, holder_pod_uid="other") for g in MIXED[4:]] + MIXED[:4]),
        Demand(2, products=frozenset({A100_40, "NVIDIA-L4"})),
        [],
        FitSettings(),
        "",
        Fit("n1", uuids(0, 1), same_island=True),
        id="product-constraint-one-of-several",
    ),
    pytest.param(
        node(MIXED, nvlink=None),
        Demand(1, products=frozenset({A100_80})),
        [],
        FitSettings(),
        "",
        Reject(
            "n1",
            "needs 0 B free on every unallocated GPU, of a product the pod accepts, (the "
            "kubelet may hand out any): GPU 0 is NVIDIA-A100-SXM4-40GB; GPU 1 is "
            "NVIDIA-A100-SXM4-40GB; GPU 2 is NVIDIA-A100-SXM4-40GB; 1 more",
            resolvable=True,
        ),
        id="unallocated-gpu-of-another-product-refuses",
    ),
    pytest.param(
        node([]),
        Demand(0),
        [],
        FitSettings(),
        "",
        Fit("n1", (), same_island=True),
        id="pod-without-gpus-fits-anywhere",
    ),
    pytest.param(
        node(EIGHT, lease=None, error="boom"),
        Demand(0),
        [],
        FitSettings(),
        "",
        Fit("n1", (), same_island=True),
        id="pod-without-gpus-ignores-agent-state",
    ),
]


@pytest.mark.parametrize(
    ("state", "demand", "reservations", "settings", "pod_uid", "expected"), CASES
)
def test_fit(
    *,
    state: NodeState,
    demand: Demand,
    reservations: list[Reservation],
    settings: FitSettings,
    pod_uid: str,
    expected: Fit | Reject,
) -> None:
    assert fit(state, demand, reservations, now=NOW, settings=settings, pod_uid=pod_uid) == expected


def test_reservation_stops_hiding_once_the_node_shows_the_pod_holding_a_gpu() -> None:
    r = reservation("other", [0, 1])
    before = node([gpu(0), gpu(1), gpu(2)])
    after = node([gpu(0), gpu(1), gpu(2, holder="other")])
    assert hidden_gpus(before, [r], NOW) == set(uuids(0, 1))
    assert pending_counts(before, [r], NOW) == (2,)
    assert hidden_gpus(after, [r], NOW) == set()
    assert pending_counts(after, [r], NOW) == ()
    assert fit(after, Demand(2), [r], now=NOW) == Fit("n1", uuids(0, 1), same_island=True)
    assert fit(before, Demand(2), [r], now=NOW) == Reject(
        "n1", "needs 2 free GPU(s); 1 free now (2 reserved)", True
    )


@pytest.mark.parametrize(
    ("demand", "setting", "expected"),
    [
        pytest.param(
            Demand(1, nvlink=NvlinkMode.REQUIRED),
            NvlinkMode.REQUIRED,
            NvlinkMode.NONE,
            id="one-gpu",
        ),
        pytest.param(Demand(2), NvlinkMode.PREFERRED, NvlinkMode.PREFERRED, id="default"),
        pytest.param(Demand(2), NvlinkMode.REQUIRED, NvlinkMode.REQUIRED, id="settings-require"),
        pytest.param(
            Demand(2, nvlink=NvlinkMode.NONE), NvlinkMode.REQUIRED, NvlinkMode.NONE, id="pod-none"
        ),
        pytest.param(
            Demand(2, nvlink=NvlinkMode.REQUIRED),
            NvlinkMode.NONE,
            NvlinkMode.REQUIRED,
            id="pod-requires",
        ),
    ],
)
def test_effective_nvlink(demand: Demand, setting: NvlinkMode, expected: NvlinkMode) -> None:
    assert effective_nvlink(demand, FitSettings(nvlink_for_multi_gpu=setting)) is expected


@pytest.mark.parametrize(
    ("name", "key"),
    [
        pytest.param("NVIDIA H100 80GB HBM3", "nvidia-h100-80gb-hbm3", id="nvml-spelling"),
        pytest.param("NVIDIA-H100-80GB-HBM3", "nvidia-h100-80gb-hbm3", id="label-spelling"),
        pytest.param("  NVIDIA  L4 ", "nvidia-l4", id="extra-spaces"),
    ],
)
def test_product_key(name: str, key: str) -> None:
    assert product_key(name) == key


@pytest.mark.parametrize(
    ("nvlink", "expected"),
    [
        pytest.param("all", [frozenset(uuids(0, 1, 2, 3))], id="all"),
        pytest.param(None, [frozenset(uuids(i)) for i in range(4)], id="none"),
        pytest.param(
            [[2, 3], [0], [1]],
            [frozenset(uuids(2, 3)), frozenset(uuids(0)), frozenset(uuids(1))],
            id="largest-first-then-uuid",
        ),
    ],
)
def test_islands(nvlink: Nvlink, expected: list[frozenset[str]]) -> None:
    assert islands(node([gpu(i) for i in range(4)], nvlink=nvlink)) == expected


def test_nvlink_graph_ignores_unknown_and_self_peers() -> None:
    g0 = GpuState("GPU-0", 0, H100, 80 * GIB, 80 * GIB, nvlink_peers=frozenset({"GPU-0", "GPU-9"}))
    g1 = GpuState("GPU-1", 1, H100, 80 * GIB, 80 * GIB, nvlink_peers=frozenset({"GPU-0"}))
    graph = nvlink_graph(NodeState("n", (g0, g1), NOW, NOW))
    assert sorted(graph.nodes) == ["GPU-0", "GPU-1"]
    assert sorted(map(sorted, graph.edges)) == [["GPU-0", "GPU-1"]]


@pytest.mark.parametrize(
    ("chosen", "fraction"),
    [
        pytest.param(uuids(0), 1.0, id="one-gpu"),
        pytest.param(uuids(0, 1), 1.0, id="linked-pair"),
        pytest.param(uuids(0, 2), 0.0, id="unlinked-pair"),
        pytest.param(uuids(0, 1, 2), 1 / 3, id="one-of-three-pairs"),
    ],
)
def test_link_fraction(chosen: tuple[str, ...], fraction: float) -> None:
    state = node([gpu(i) for i in range(4)], nvlink=[[0, 1], [2, 3]])
    assert link_fraction(state, chosen) == pytest.approx(fraction)
