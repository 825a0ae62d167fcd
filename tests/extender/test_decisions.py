"""Tables over the extender's pure decisions: filter, prioritize, bind's re-check, reject codes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extender.decisions import (
    REPORT_INVALID,
    FilterOutcome,
    InvalidPodError,
    Mode,
    Outcome,
    filter_nodes,
    invalid_pod,
    passthrough,
    prioritize_nodes,
    read_demand,
    recheck,
    to_priorities,
    to_priority,
)
from extender.state import ClusterState
from placement.fleet import REASON_NO_REPORT, REJECT_CLASSES
from placement.lifecycle import assume
from placement.model import GIB, Demand, FitSettings, NodeState, Reject
from tests.extender.conftest import (
    A100,
    NOW,
    gpu_node,
    mixed_pool,
    pod_object,
    report_object,
    report_of,
    synced_state,
)


def run_filter(
    state: ClusterState,
    pod: dict[str, object],
    names: list[str],
    *,
    mode: Mode = Mode.DECIDE,
    policy: str = "binpack",
    now: float = NOW,
    record: bool = True,
    settings: FitSettings = FitSettings(),
) -> FilterOutcome:
    """What the filter handler does: read the demand, decide under the lock, assume."""
    uid = str(pod["metadata"]["uid"])  # type: ignore[index]
    try:
        demand = read_demand(pod, policy)
    except InvalidPodError as exc:
        return invalid_pod(names, str(exc))
    if demand is None:
        return passthrough(names)
    with state.locked_view(now) as view:
        out = filter_nodes(
            demand, uid, names, view, now=now, mode=mode, policy=policy, settings=settings
        )
        if record and mode is Mode.DECIDE and out.chosen is not None:
            state.assume(assume(out.chosen, demand, pod_uid=uid, pod_key=uid, now=now, ttl_s=30))
    return out


@dataclass(frozen=True)
class FilterCase:
    nodes: Callable[[], list[NodeState]]
    pod: Callable[[], dict[str, object]]
    outcome: Outcome
    passed: tuple[str, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)  # node -> substring of the reason
    unresolvable: dict[str, str] = field(default_factory=dict)
    codes: dict[str, int] = field(default_factory=dict)  # rejected nodes by reason class
    names: tuple[str, ...] | None = None
    mode: Mode = Mode.DECIDE
    leases: dict[str, float] = field(default_factory=dict)
    settings: FitSettings = FitSettings()


FILTER_CASES = {
    "70GiB-pod-lands-only-on-80GB-GPUs": FilterCase(
        mixed_pool,
        lambda: pod_object("llama-70b", gpus=2),
        Outcome.PLACED,
        passed=("h100-0",),
        codes={"gpu-too-small": 2},
    ),
    "pod-without-gpus-passes-every-node": FilterCase(
        mixed_pool,
        lambda: pod_object("web", gpus=0),
        Outcome.PASSTHROUGH,
        passed=("h100-0", "h100-1", "a100-0", "a100-1"),
    ),
    "unreadable-vram-annotation-fails-every-node-unresolvable": FilterCase(
        mixed_pool,
        lambda: pod_object("bad", vram="lots"),
        Outcome.INVALID_POD,
        unresolvable=dict.fromkeys(
            ("h100-0", "h100-1", "a100-0", "a100-1"), "vramfit.io/vram-per-gpu"
        ),
    ),
    "unknown-policy-annotation-names-the-known-ones": FilterCase(
        mixed_pool,
        lambda: pod_object("bad", annotations={"vramfit.io/policy": "fastest"}),
        Outcome.INVALID_POD,
        unresolvable=dict.fromkeys(("h100-0", "h100-1", "a100-0", "a100-1"), "binpack, spread"),
    ),
    "node-without-report-fails-resolvable": FilterCase(
        mixed_pool,
        lambda: pod_object("p"),
        Outcome.PLACED,
        names=("ghost", "h100-1"),
        passed=("h100-1",),
        codes={"no-report": 1},
    ),
    "node-without-report-is-the-reason-when-nothing-fits": FilterCase(
        mixed_pool,
        lambda: pod_object("p", gpus=9),
        Outcome.UNSCHEDULABLE,
        names=("ghost", "h100-1"),
        failed={"ghost": REASON_NO_REPORT},
        unresolvable={"h100-1": "needs 9 GPU(s)"},
        codes={"no-report": 1, "gpu-too-small": 1},
    ),
    "expired-lease-takes-the-node-out": FilterCase(
        mixed_pool,
        lambda: pod_object("p"),
        Outcome.PLACED,
        names=("h100-0", "h100-1"),
        leases={"h100-0": NOW - 300},
        passed=("h100-1",),
        codes={"lease-expired": 1},
    ),
    "expired-lease-is-the-reason-when-nothing-fits": FilterCase(
        mixed_pool,
        lambda: pod_object("p"),
        Outcome.UNSCHEDULABLE,
        names=("h100-0",),
        leases={"h100-0": NOW - 300},
        failed={"h100-0": "heartbeat is 300s old"},
        codes={"lease-expired": 1},
    ),
    "unhealthy-gpus-are-never-chosen": FilterCase(
        lambda: [gpu_node("sick", unhealthy=tuple(range(7))), gpu_node("well")],
        lambda: pod_object("p", gpus=2),
        Outcome.PLACED,
        passed=("well",),
        codes={"gpus-busy": 1},
    ),
    "unhealthy-gpus-are-the-reason-when-nothing-fits": FilterCase(
        lambda: [gpu_node("sick", unhealthy=tuple(range(7)))],
        lambda: pod_object("p", gpus=2),
        Outcome.UNSCHEDULABLE,
        failed={"sick": "1 free now (7 unhealthy)"},
        codes={"gpus-busy": 1},
    ),
    "cached-weights-win": FilterCase(
        lambda: [gpu_node("h100-0"), gpu_node("h100-1", cached=("meta-llama/Llama-3.1-70B",))],
        lambda: pod_object("p", annotations={"vramfit.io/model": "meta-llama/Llama-3.1-70B"}),
        Outcome.PLACED,
        passed=("h100-1",),
    ),
    "gpu-product-constraint": FilterCase(
        mixed_pool,
        lambda: pod_object(
            "p", vram="20Gi", annotations={"vramfit.io/gpu-product": "NVIDIA A100-SXM4-40GB"}
        ),
        Outcome.PLACED,
        passed=("a100-0",),
        codes={"gpu-product": 2},
    ),
    "nvlink-required-on-split-islands-is-unresolvable": FilterCase(
        lambda: [gpu_node("pairs", nvlink=[[0, 1], [2, 3], [4, 5], [6, 7]])],
        lambda: pod_object("tp4", gpus=4, annotations={"vramfit.io/nvlink": "required"}),
        Outcome.UNSCHEDULABLE,
        unresolvable={"pairs": "largest island of suitable GPUs has 2"},
        codes={"nvlink-island-too-small": 1},
    ),
    "all-feasible-returns-every-fitting-node": FilterCase(
        mixed_pool,
        lambda: pod_object("p", vram="30Gi"),
        Outcome.FEASIBLE,
        mode=Mode.ALL_FEASIBLE,
        passed=("h100-0", "h100-1", "a100-0", "a100-1"),
    ),
    "memory-no-pod-uses-leaves-no-node-and-is-named": FilterCase(
        lambda: [gpu_node("full", free_gib=10)],
        lambda: pod_object("p"),
        Outcome.UNSCHEDULABLE,
        failed={"full": "GPU 0 has 10 GiB free, 70 GiB used by no pod"},
        codes={"unallocated-gpu-unfit": 1},
    ),
    "held-gpus-leave-no-node": FilterCase(
        lambda: [gpu_node("full", held=dict.fromkeys(range(8), "other"))],
        lambda: pod_object("p"),
        Outcome.UNSCHEDULABLE,
        failed={"full": "0 free now (8 held)"},
        codes={"gpus-busy": 1},
    ),
    "nvlink-required-goes-where-no-set-the-plugin-gives-splits": FilterCase(
        lambda: [
            gpu_node(
                "broken",
                nvlink=[[0, 1], [2, 3], [4, 5], [6, 7]],
                held={1: "a", 3: "b", 5: "c", 7: "d"},
            ),
            gpu_node("whole", nvlink=[[0, 1], [2, 3], [4, 5], [6, 7]], held={0: "a", 1: "a"}),
        ],
        lambda: pod_object("tp2", gpus=2, annotations={"vramfit.io/nvlink": "required"}),
        Outcome.PLACED,
        passed=("whole",),
        codes={"nvlink-split": 1},
    ),
    "mig-enabled-gpus-are-not-whole-gpus": FilterCase(
        lambda: [gpu_node("mig", mig=tuple(range(8))), gpu_node("whole")],
        lambda: pod_object("p", gpus=2),
        Outcome.PLACED,
        passed=("whole",),
        codes={"gpus-busy": 1},
    ),
    "mig-enabled-is-the-reason-when-nothing-fits": FilterCase(
        lambda: [gpu_node("mig", mig=(0, 1, 2, 3, 4, 5, 6))],
        lambda: pod_object("p", gpus=2),
        Outcome.UNSCHEDULABLE,
        failed={"mig": "1 free now (7 MIG-enabled)"},
        codes={"gpus-busy": 1},
    ),
}


@pytest.mark.parametrize("case", FILTER_CASES.values(), ids=FILTER_CASES.keys())
def test_filter(case: FilterCase) -> None:
    nodes = case.nodes()
    state = synced_state(nodes, leases=case.leases)
    names = list(case.names or [n.name for n in nodes])
    out = run_filter(state, case.pod(), names, mode=case.mode, settings=case.settings)
    assert out.outcome is case.outcome
    assert out.passed == case.passed
    assert set(out.failed) == set(case.failed)
    assert set(out.unresolvable) == set(case.unresolvable)
    for node, text in case.failed.items():
        assert text in out.failed[node]
    for node, text in case.unresolvable.items():
        assert text in out.unresolvable[node]
    assert out.reject_codes == case.codes
    assert set(out.reject_codes) <= REJECT_CLASSES | {REPORT_INVALID}


@pytest.mark.parametrize(
    ("best_effort", "placed"),
    [pytest.param(False, False, id="strict"), pytest.param(True, True, id="best-effort")],
)
def test_a_waiting_pod_that_may_break_a_pair_refuses_nvlink_unless_best_effort(
    best_effort: bool, placed: bool
) -> None:
    # GPU 1 is held, so GPU 0 has no partner. A one-GPU pod decided before still waits for its
    # GPU; it is predicted on GPU 0, but the kubelet may give it GPU 2 or 3 and break that pair.
    state = synced_state([gpu_node("pairs", gpus=4, nvlink=[[0, 1], [2, 3]], held={1: "a"})])
    settings = FitSettings(nvlink_best_effort=best_effort)
    first = run_filter(state, pod_object("one"), ["pairs"], settings=settings)
    assert first.chosen is not None and first.chosen.gpu_uuids == ("GPU-pairs-0",)
    tp2 = pod_object("tp2", gpus=2, annotations={"vramfit.io/nvlink": "required"})
    out = run_filter(state, tp2, ["pairs"], settings=settings)
    if placed:
        assert out.chosen is not None
        assert out.chosen.gpu_uuids == ("GPU-pairs-2", "GPU-pairs-3")
    else:
        assert out.outcome is Outcome.UNSCHEDULABLE
        assert "the device plugin may hand out GPUs across islands" in out.failed["pairs"]


def test_invalid_report_is_a_reason_not_a_crash() -> None:
    state = synced_state([gpu_node("h100-0")])
    broken = report_object(gpu_node("broken"))
    broken["status"]["gpus"][0]["memory"]["totalBytes"] = "80Gi"
    state.apply_report("ADDED", report_of(broken))
    out = run_filter(state, pod_object("p"), ["broken", "h100-0"])
    assert out.passed == ("h100-0",)
    assert out.failed == {} and out.reject_codes == {REPORT_INVALID: 1}
    alone = run_filter(state, pod_object("q"), ["broken"])
    assert alone.outcome is Outcome.UNSCHEDULABLE and alone.reason == REPORT_INVALID
    assert "GPU report is invalid" in alone.failed["broken"]
    assert "totalBytes" in alone.failed["broken"]


def test_reasons_are_worded_only_when_nothing_passes() -> None:
    state = synced_state([gpu_node("h100-0"), gpu_node("a100-0", product=A100, gib=40)])
    names = ["h100-0", "a100-0", "ghost"]
    for mode in Mode:
        out = run_filter(state, pod_object(f"p-{mode}"), names, mode=mode, record=False)
        assert out.passed == ("h100-0",)
        assert out.failed == {} and out.unresolvable == {}
        assert out.reject_codes == {"gpu-too-small": 1, "no-report": 1}
    none = run_filter(state, pod_object("big", gpus=9), names)
    assert none.failed == {"ghost": REASON_NO_REPORT}
    assert set(none.unresolvable) == {"h100-0", "a100-0"}
    assert none.reason == "gpu-too-small"


def test_decide_mode_spreads_concurrent_loads_and_never_reuses_a_gpu() -> None:
    state = synced_state([gpu_node("h100-0"), gpu_node("h100-1")])
    names = ["h100-0", "h100-1"]
    chosen = [run_filter(state, pod_object(f"p{i}", gpus=2), names).chosen for i in range(8)]
    assert all(c is not None for c in chosen)
    nodes = [c.node for c in chosen if c is not None]
    # The in-flight penalty sends each new load to the node with fewer loads in flight.
    assert nodes[:2] == ["h100-0", "h100-1"]
    assert nodes.count("h100-0") == nodes.count("h100-1") == 4
    taken = [g for c in chosen if c is not None for g in c.gpu_uuids]
    assert len(taken) == len(set(taken)) == 16
    ninth = run_filter(state, pod_object("p9", gpus=2), names)
    assert ninth.outcome is Outcome.UNSCHEDULABLE
    assert "8 reserved" in ninth.failed["h100-0"]


def test_refiltering_a_pod_replaces_its_own_assumption() -> None:
    state = synced_state([gpu_node("one", gpus=2)])
    pod = pod_object("p", gpus=2)
    first = run_filter(state, pod, ["one"])
    again = run_filter(state, pod, ["one"])
    assert first.chosen is not None and again.chosen == first.chosen


def test_assumption_expires() -> None:
    state = synced_state([gpu_node("one", gpus=2)])
    assert run_filter(state, pod_object("a", gpus=2), ["one"]).chosen is not None
    blocked = run_filter(state, pod_object("b", gpus=2), ["one"], now=NOW + 10)
    assert blocked.outcome is Outcome.UNSCHEDULABLE
    later = run_filter(state, pod_object("b", gpus=2), ["one"], now=NOW + 31)
    assert later.outcome is Outcome.PLACED


PRIORITY_CASES = {
    "zero": (0.0, 0),
    "ten": (10.0, 10),
    "half-rounds-up": (4.5, 5),
    "below-half-rounds-down": (4.49, 4),
    "clamped-high": (11.0, 10),
    "clamped-low": (-1.0, 0),
    "nan-is-zero": (float("nan"), 0),
}


@pytest.mark.parametrize(("score", "priority"), PRIORITY_CASES.values(), ids=PRIORITY_CASES.keys())
def test_to_priority(score: float, priority: int) -> None:
    assert to_priority(score) == priority
    assert to_priorities([score]) == [priority]


@given(st.lists(st.floats(allow_infinity=False) | st.sampled_from([4.5, 5.5, 9.5, 10.0])))
def test_to_priorities_is_to_priority_array_wise(scores: list[float]) -> None:
    assert to_priorities(scores) == [to_priority(s) for s in scores]


def test_prioritize_scores_fits_and_zeroes_the_rest() -> None:
    state = synced_state(
        [
            gpu_node("cold"),
            gpu_node("warm", cached=("m",)),
            gpu_node("small", product=A100, gib=40),
        ]
    )
    demand = read_demand(pod_object("p", annotations={"vramfit.io/model": "m"}), "binpack")
    assert demand is not None
    names = ["cold", "warm", "small", "ghost"]
    with state.locked_view(NOW) as view:
        scores = dict(
            zip(
                names,
                prioritize_nodes(
                    demand, "uid", names, view, now=NOW, policy="binpack", settings=FitSettings()
                ),
                strict=True,
            )
        )
    assert scores["small"] == scores["ghost"] == 0
    assert scores["warm"] > scores["cold"] > 0
    assert all(0 <= s <= 10 for s in scores.values())


def test_recheck_sees_other_reservations_but_not_its_own() -> None:
    state = synced_state([gpu_node("one", gpus=2)])
    out = run_filter(state, pod_object("mine", gpus=2, uid="mine"), ["one"])
    assert out.chosen is not None
    demand = Demand(gpus=2, vram_per_gpu=70 * GIB)
    with state.locked_view(NOW) as view:
        assert not isinstance(
            recheck("one", demand, view, pod_uid="mine", now=NOW, settings=FitSettings()),
            Reject,
        )
        other = recheck("one", demand, view, pod_uid="other", now=NOW, settings=FitSettings())
        missing = recheck("nope", demand, view, pod_uid="mine", now=NOW, settings=FitSettings())
    assert isinstance(other, Reject) and "2 reserved" in other.reason
    assert isinstance(missing, Reject) and missing.reason == REASON_NO_REPORT


@settings(max_examples=40, deadline=None)
@given(
    nodes=st.lists(
        st.tuples(
            st.integers(1, 8),  # GPUs
            st.sampled_from([24, 40, 80]),  # GiB per GPU
            st.sets(st.integers(0, 7), max_size=3),  # unhealthy GPU indices
        ),
        min_size=1,
        max_size=6,
    ),
    pods=st.lists(
        st.tuples(st.integers(1, 4), st.sampled_from([10, 30, 39, 70])), min_size=1, max_size=25
    ),
)
def test_sequential_decisions_never_overcommit_a_gpu(
    nodes: list[tuple[int, int, set[int]]], pods: list[tuple[int, int]]
) -> None:
    fleet = [
        gpu_node(f"n{i}", gpus=g, gib=gib, unhealthy=tuple(u))
        for i, (g, gib, u) in enumerate(nodes)
    ]
    by_uuid = {g.uuid: g for n in fleet for g in n.gpus}
    state = synced_state(fleet)
    names = [n.name for n in fleet]
    taken: set[str] = set()
    for i, (gpus, gib) in enumerate(pods):
        out = run_filter(state, pod_object(f"p{i}", gpus=gpus, vram=f"{gib}Gi"), names)
        if out.chosen is None:
            assert out.passed == ()
            continue
        assert out.passed == (out.chosen.node,)
        assert len(out.chosen.gpu_uuids) == gpus
        for uuid in out.chosen.gpu_uuids:
            gpu = by_uuid[uuid]
            assert uuid not in taken, "a GPU was handed out twice"
            assert gpu.healthy and gpu.total_bytes >= gib * GIB
            taken.add(uuid)
