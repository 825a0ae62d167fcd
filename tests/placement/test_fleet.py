"""The fleet's arrays: row updates, what it refuses to hold, and its answers on named cases."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from placement.fit import fit
from placement.fleet import (
    MAX_GPUS_PER_NODE,
    REASON_NO_REPORT,
    Fleet,
    FleetError,
    Query,
    decide_fleet,
    evaluate,
    rejects,
    verdict,
)
from placement.fleet.rejects import NamedCounts, _group
from placement.model import (
    GIB,
    Demand,
    Fit,
    FitSettings,
    GpuState,
    NodeState,
    NvlinkMode,
    Reject,
    Reservation,
    ReservationState,
)
from placement.policies import POLICIES, Profile
from placement.reference import decide
from tests.builders import H100, NOW, node, reservation
from tests.placement.test_fit import CASES as FIT_CASES


def test_replace_remove_and_reuse_rows() -> None:
    fleet = Fleet(capacity=1, width=1)
    a, b, c = node(name="a"), node(2, name="b"), node(12, name="c")
    fleet.replace(a)
    fleet.replace(b)
    fleet.replace(c)  # more rows and more GPU slots than allocated
    assert len(fleet) == 3 and fleet.width == 12 and fleet.capacity >= 3
    assert fleet.node("c") == c and "c" in fleet and "z" not in fleet
    smaller = node(2, name="c", free=10)
    fleet.replace(smaller)
    assert fleet.node("c") == smaller and len(fleet) == 3
    fleet.remove("a")
    fleet.remove("a")  # a second remove is a no-op
    assert sorted(fleet.names()) == ["b", "c"]
    with pytest.raises(KeyError):
        fleet.node("a")
    fleet.replace(node(name="d"))  # takes the freed row
    assert fleet.capacity == 4
    fits, rejects = evaluate(
        fleet, Query(["a", "b", "c", "d"], Demand(2, vram_per_gpu=20 * GIB), [], now=NOW)
    )
    assert fits == {"b": ("b/GPU-0", "b/GPU-1"), "d": ("d/GPU-0", "d/GPU-1")}
    assert rejects == {
        "a": Reject("a", REASON_NO_REPORT, resolvable=True),
        "c": Reject(
            "c",
            "needs 20 GiB free on every unallocated GPU (the kubelet may hand out any): "
            "GPU 0 has 10 GiB free, 70 GiB used by no pod; "
            "GPU 1 has 10 GiB free, 70 GiB used by no pod",
            True,
        ),
    }


def test_renew_changes_only_the_lease() -> None:
    stale = node(name="a", lease=NOW - 100)
    fleet = Fleet([stale])
    assert evaluate(fleet, Query(["a"], Demand(1), [], now=NOW))[1] == {
        "a": Reject("a", "node agent heartbeat is 100s old (lease 40s)", True)
    }
    fleet.renew("a", NOW - 2, 40.0)
    assert fleet.node("a") == dataclasses.replace(stale, lease_renewed_at=NOW - 2)
    assert evaluate(fleet, Query(["a"], Demand(1), [], now=NOW))[0] == {"a": ("a/GPU-0",)}
    fleet.renew("a", None, 40.0)
    assert evaluate(fleet, Query(["a"], Demand(1), [], now=NOW))[1]["a"].reason == (
        "no node agent heartbeat (Lease) seen for this node"
    )
    with pytest.raises(KeyError):
        fleet.renew("b", NOW, 40.0)
    with pytest.raises(FleetError, match="node a: lease_renewed_at must be finite"):
        fleet.renew("a", float("inf"), 40.0)


def gpu(uuid: str, index: int, total: object = 80 * GIB, free: object = 80 * GIB) -> GpuState:
    return GpuState(uuid, index, "P", total, free)  # type: ignore[arg-type]  # bad on purpose


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        pytest.param(
            NodeState("x", (gpu("u", 0), gpu("u", 1)), NOW, NOW),
            "gpus[1].uuid 'u' repeats",
            id="uuid",
        ),
        pytest.param(
            NodeState("x", (gpu("u", 0), gpu("v", 0)), NOW, NOW),
            "gpus[1].index 0 repeats",
            id="index",
        ),
        pytest.param(
            NodeState("x", (gpu("u", 0, free=-1),), NOW, NOW),
            "gpus[0].free_bytes -1 is out of range",
            id="negative-free",
        ),
        pytest.param(
            NodeState("x", (gpu("u", 0, total=2**60),), NOW, NOW),
            "gpus[0].total_bytes 1152921504606846976 is out of range",
            id="huge-total",
        ),
        pytest.param(
            NodeState("x", (gpu("u", 0, total=1.5),), NOW, NOW),
            "gpus[0].total_bytes must be an int, got 1.5",
            id="float-total",
        ),
        pytest.param(
            NodeState("x", tuple(gpu(f"u{i}", i, total=2**50, free=0) for i in range(9)), NOW, NOW),
            "total GPU memory 10133099161583616 exceeds",
            id="node-total-too-large",
        ),
        pytest.param(
            NodeState("x", (), float("nan"), NOW), "observed_at must be finite", id="nan-time"
        ),
        pytest.param(
            NodeState("x", tuple(gpu(f"u{i}", i) for i in range(MAX_GPUS_PER_NODE + 1)), NOW, NOW),
            f"513 GPUs is more than {MAX_GPUS_PER_NODE}",
            id="too-many-gpus",
        ),
    ],
)
def test_fleet_refuses_what_it_cannot_hold_exactly(state: NodeState, problem: str) -> None:
    fleet = Fleet([node(name="x")])
    before = fleet.node("x")
    with pytest.raises(FleetError) as info:
        fleet.replace(state)
    assert str(info.value).startswith("node x: ")
    assert problem in str(info.value)
    assert fleet.node("x") == before  # the old row stays


SPLIT = node(name="split", held=[0, 1, 4, 5], nvlink=[[0, 1, 2, 3], [4, 5, 6, 7]])
BUSY = node(name="busy", free=10)
OK = node(name="ok")
SMALL = node(2, name="small")


@pytest.mark.parametrize(
    ("demand", "fits", "rejects"),
    [
        pytest.param(
            Demand(4, nvlink=NvlinkMode.REQUIRED),
            {
                "busy": ("busy/GPU-0", "busy/GPU-1", "busy/GPU-2", "busy/GPU-3"),
                "ok": ("ok/GPU-0", "ok/GPU-1", "ok/GPU-2", "ok/GPU-3"),
            },
            {
                "split": (
                    "needs 4 GPUs on one NVLink island; the device plugin may hand out GPUs "
                    "across islands (unallocated per island: 2+2)",
                    True,
                ),
                "small": (
                    "needs 4 GPU(s) with at least 0 B each; node has 2 "
                    "(2x NVIDIA-H100-80GB-HBM3 80 GiB)",
                    False,
                ),
            },
            id="split-islands-required",
        ),
        pytest.param(
            Demand(4, vram_per_gpu=20 * GIB),
            {
                "split": ("split/GPU-2", "split/GPU-3", "split/GPU-6", "split/GPU-7"),
                "ok": ("ok/GPU-0", "ok/GPU-1", "ok/GPU-2", "ok/GPU-3"),
            },
            {
                "busy": (
                    "needs 20 GiB free on every unallocated GPU (the kubelet may hand out "
                    "any): GPU 0 has 10 GiB free, 70 GiB used by no pod; GPU 1 has 10 GiB "
                    "free, 70 GiB used by no pod; GPU 2 has 10 GiB free, 70 GiB used by no "
                    "pod; 5 more",
                    True,
                ),
                "small": (
                    "needs 4 GPU(s) with at least 20 GiB each; node has 2 "
                    "(2x NVIDIA-H100-80GB-HBM3 80 GiB)",
                    False,
                ),
            },
            id="split-islands-preferred",
        ),
    ],
)
def test_named_cases(
    demand: Demand,
    fits: dict[str, tuple[str, ...]],
    rejects: dict[str, tuple[str, bool]],
) -> None:
    fleet = Fleet([SPLIT, BUSY, OK, SMALL])
    names = ["split", "busy", "ok", "small"]
    got_fits, got_rejects = evaluate(fleet, Query(names, demand, [], now=NOW))
    assert got_fits == fits
    assert got_rejects == {n: Reject(n, r, res) for n, (r, res) in rejects.items()}
    answer = verdict(fleet, Query(names, demand, [], now=NOW))
    assert answer.fits == fits
    assert answer.failed == {n: r for n, (r, res) in rejects.items() if res}
    assert answer.unresolvable == {n: r for n, (r, res) in rejects.items() if not res}


def test_reservations_hide_gpus_and_count_as_loads() -> None:
    a, b = node(2, name="a"), node(2, name="b")
    fleet = Fleet([a, b])

    loading = ReservationState.LOADING
    reservations = [
        reservation("p", [0], node="a", state=loading),
        reservation("q", [1], node="a", state=loading),
        reservation("me", [0, 1], node="b", state=loading),
    ]
    fits, rejects = evaluate(
        fleet, Query(["a", "b"], Demand(1), reservations, now=NOW, pod_uid="me")
    )
    assert fits == {"b": ("b/GPU-0",)}
    assert rejects["a"].reason == "needs 1 free GPU(s); 0 free now (2 reserved)"
    # Once a's node shows p holding a GPU, it counts as held, not reserved.
    fleet.replace(node(2, name="a", held={0: "p"}))
    _, rejects = evaluate(fleet, Query(["a"], Demand(1), reservations, now=NOW, pod_uid="me"))
    assert rejects["a"].reason == "needs 1 free GPU(s); 0 free now (1 held, 1 reserved)"
    decision = decide_fleet(fleet, Query(["b"], Demand(1), reservations, now=NOW))
    assert decision.chosen is None  # without pod_uid "me", b's GPUs are reserved


def test_decide_fleet_scores_and_choice_match_decide() -> None:
    nodes = [
        node(name="a"),
        node(name="b", free=40),
        node(name="c", models=["llama"]),
        node(name="d", nvlink=[[0, 1], [2, 3], [4, 5, 6, 7]]),
        node(name="e", held=[0, 1, 2]),
    ]
    fleet = Fleet(nodes)
    for demand in (Demand(1, model_id="llama"), Demand(3, policy="spread"), Demand(2)):
        got = decide_fleet(fleet, Query([n.name for n in nodes], demand, [], now=NOW))
        assert got.decision() == decide(nodes, demand, [], now=NOW)
        assert got.chosen is not None
        assert got.scores[got.chosen.node] == max(got.scores.values())


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_every_policy_scores_the_same_through_the_fleet(policy: str) -> None:
    """Each registered policy alone, on nodes where it tells them apart: the fleet's form gives
    decide()'s scores bit for bit (a policy without a fleet form fails here, not in a request)."""
    nodes = [
        node(name="a"),
        node(name="b", free=40, held=[0]),
        node(name="c", models=["llama"]),
        node(name="d", nvlink=[[0, 1], [2, 3], [4, 5, 6, 7]]),
        node(name="e", held=[0, 1, 2]),
    ]
    reservations = [reservation("r", [0], node="a", state=ReservationState.BOUND, created=NOW - 5)]
    profile = Profile(policy, ((policy, 1.0),))
    for demand in (Demand(1, model_id="llama"), Demand(4)):
        names = [n.name for n in nodes]
        got = decide_fleet(
            Fleet(nodes), Query(names, demand, reservations, now=NOW), profile=profile
        )
        want = decide(nodes, demand, reservations, now=NOW, profile=profile)
        assert got.decision() == want


def test_a_demand_of_no_gpus_fits_every_known_node() -> None:
    fleet = Fleet([node(name="a"), node(0, name="b")])
    fits, rejects = evaluate(fleet, Query(["a", "b", "zz"], Demand(0), [], now=NOW))
    assert fits == {"a": (), "b": ()}
    assert rejects == {"zz": Reject("zz", REASON_NO_REPORT, True)}
    assert fit(node(0, name="b"), Demand(0), [], now=NOW) == Fit("b", (), True)


@pytest.mark.parametrize(
    ("state", "demand", "reservations", "settings", "pod_uid", "expected"), FIT_CASES
)
def test_every_named_fit_case_answers_the_same_through_the_fleet(
    *,
    state: NodeState,
    demand: Demand,
    reservations: list[Reservation],
    settings: FitSettings,
    pod_uid: str,
    expected: Fit | Reject,
) -> None:
    fleet = Fleet([state], capacity=1, width=1)
    fits, rejects = evaluate(
        fleet,
        Query([state.name], demand, reservations, now=NOW, settings=settings, pod_uid=pod_uid),
    )
    if isinstance(expected, Fit):
        assert fits == {state.name: expected.gpu_uuids} and rejects == {}
    else:
        assert fits == {} and rejects == {state.name: expected}


def test_mig_mode_follows_the_report() -> None:
    mig = node(2, name="a")
    mig = dataclasses.replace(
        mig, gpus=tuple(dataclasses.replace(g, mig_enabled=True) for g in mig.gpus)
    )
    fleet = Fleet([mig])
    _, rejects = evaluate(fleet, Query(["a"], Demand(1), [], now=NOW))
    assert rejects["a"].reason == "needs 1 free GPU(s); 0 free now (2 MIG-enabled)"
    assert rejects["a"].resolvable
    fleet.replace(node(2, name="a"))  # an administrator turned MIG mode off
    assert evaluate(fleet, Query(["a"], Demand(1), [], now=NOW))[0] == {"a": ("a/GPU-0",)}


def test_lean_decision_counts_rejects_without_wording_them() -> None:
    nodes = [
        node(name="a", held=range(8)),
        node(2, name="b"),
        node(name="c"),
        node(name="d", lease=None),
        node(name="e"),
    ]
    fleet = Fleet(nodes)
    names = ["a", "b", "e", "c", "d", "ghost"]
    full = decide_fleet(fleet, Query(names, Demand(4), [], now=NOW))
    lean = decide_fleet(fleet, Query(names, Demand(4), [], now=NOW), reasons=False, all_fits=False)
    # c and e tie; the name that sorts first wins, wherever it stands in the request.
    assert full.chosen == lean.chosen == Fit("c", tuple(f"c/GPU-{i}" for i in range(4)), True)
    assert list(full.fits) == ["e", "c"]
    assert full.reject_counts == lean.reject_counts
    assert dict(lean.reject_counts) == {
        "gpu-too-small": 1,
        "no-lease": 1,
        "gpus-busy": 1,
        "no-report": 1,
    }
    assert set(full.rejects) == {"a", "b", "d", "ghost"} and full.reasons and full.all_fits
    assert lean.rejects == {} and not lean.reasons and not lean.all_fits
    assert lean.fits == {"c": full.fits["c"]} and lean.scores == {"c": full.scores["c"]}
    # Nothing fits: the reasons are the whole answer, worded even when not asked for.
    none = decide_fleet(fleet, Query(names, Demand(9), [], now=NOW), reasons=False, all_fits=False)
    assert none.chosen is None and none.reasons and set(none.rejects) == set(names)
    assert none.decision().rejects == tuple(none.rejects.values())


def test_rows_are_reused_lowest_first_and_requests_read_only_rows_in_use() -> None:
    fleet = Fleet([node(1, name=f"n{i}") for i in range(6)], capacity=2, width=1)
    assert fleet.capacity == 8 and fleet.span == 6
    for name in ("n5", "n4", "n1"):
        fleet.remove(name)
    assert fleet.span == 4  # n3 still holds row 3
    fleet.replace(node(1, name="new"))  # takes row 1, the lowest free one
    assert fleet.span == 4
    fleet.remove("n3")
    fleet.remove("n2")
    assert fleet.span == 2
    names = fleet.names()
    ranks = fleet.name_rank[fleet.rows_of(names)].tolist()
    assert [n for _, n in sorted(zip(ranks, names, strict=True))] == sorted(names) == ["n0", "new"]
    fits, rejects = evaluate(fleet, Query(["n0", "new", "n3"], Demand(1), [], now=NOW))
    assert fits == {"n0": ("n0/GPU-0",), "new": ("new/GPU-0",)}
    assert rejects == {"n3": Reject("n3", REASON_NO_REPORT, True)}
    for name in ("n0", "new"):
        fleet.remove(name)
    assert fleet.span == 0 and len(fleet) == 0
    assert evaluate(fleet, Query(["n0"], Demand(1), [], now=NOW)) == (
        {},
        {"n0": Reject("n0", REASON_NO_REPORT, True)},
    )


@pytest.mark.parametrize(
    "demand",
    [
        pytest.param(Demand(1), id="one"),
        pytest.param(Demand(2, nvlink=NvlinkMode.REQUIRED), id="pair-required"),
        pytest.param(Demand(3, vram_per_gpu=GIB), id="three"),
    ],
)
def test_a_node_wider_than_a_mask_answers_as_fit(demand: Demand) -> None:
    wide = node(
        64, name="wide", held={1: "a", 2: "b"}, nvlink=[[0, 1], *[[i] for i in range(2, 64)]]
    )
    fleet = Fleet([wide, node(name="narrow")])
    fits, rejects = evaluate(fleet, Query(["wide", "narrow"], demand, [], now=NOW))
    got = fits.get("wide") or rejects["wide"]
    want = fit(wide, demand, [], now=NOW)
    assert got == (want.gpu_uuids if isinstance(want, Fit) else want)


UNFIT_STEPS: dict[str, list[tuple[NodeState, Demand, str]]] = {
    # Each step reports the node (unless its state is the last step's), then asks for the
    # demand as pod ``pod``: the reason must be fit()'s, whatever was worded before.
    "the demand changes": [
        (node(2, free=[70, 30]), Demand(2, vram_per_gpu=40 * GIB), "p"),
        (node(2, free=[70, 30]), Demand(2, vram_per_gpu=75 * GIB), "p"),
        (node(2, free=[70, 30]), Demand(2, vram_per_gpu=40 * GIB, products=frozenset({H100})), "p"),
    ],
    "the node's GPUs change": [
        (node(2, free=[70, 30]), Demand(2, vram_per_gpu=40 * GIB), "p"),
        (node(2, free=[70, 20]), Demand(2, vram_per_gpu=40 * GIB), "p"),
        (node(2, free=[10, 70]), Demand(2, vram_per_gpu=40 * GIB), "p"),
    ],
    "the pod holds a GPU itself": [
        (node(3, free=[30, 30, 70], held={0: "p"}), Demand(2, vram_per_gpu=40 * GIB), "q"),
        (node(3, free=[30, 30, 70], held={0: "p"}), Demand(2, vram_per_gpu=40 * GIB), "p"),
    ],
}


@pytest.mark.parametrize("steps", list(UNFIT_STEPS.values()), ids=list(UNFIT_STEPS))
def test_unfit_reasons_kept_between_requests_stay_fits_own(
    steps: list[tuple[NodeState, Demand, str]],
) -> None:
    fleet = Fleet()
    for state, demand, pod in steps:
        if state.name not in fleet or fleet.node(state.name) != state:
            fleet.replace(state)
        for _ in range(2):  # worded, then read back
            _, rejects = evaluate(fleet, Query([state.name], demand, [], now=NOW, pod_uid=pod))
            expected = fit(state, demand, [], now=NOW, settings=FitSettings(), pod_uid=pod)
            assert isinstance(expected, Reject)
            assert rejects == {state.name: expected}


LATER_NODES: dict[str, list[NodeState]] = {
    # Nodes reported after the device plugin's tables were read, each changing what they hold.
    "a new NVLink layout": [node(name="pairs", nvlink=[[0, 1], [2, 3], [4, 5], [6, 7]])],
    "no NVLink at all": [node(name="loose", nvlink=None, held=[0, 3])],
    "a node's GPUs taken": [node(name="a", held=[0, 1, 2, 4])],
    "more GPUs than the tables hold": [node(12, name="twelve", held=[1, 2, 5])],
}


@pytest.mark.parametrize("later", list(LATER_NODES.values()), ids=list(LATER_NODES))
@pytest.mark.parametrize("gpus", [1, 2, 3, 4])
def test_device_plugin_tables_follow_nodes_reported_later(
    later: list[NodeState], gpus: int
) -> None:
    nodes = {n.name: n for n in (node(name="a"), node(name="b", held=[0, 2, 6]))}
    fleet = Fleet(nodes.values())
    for state in (None, *later):
        if state is not None:
            fleet.replace(state)
            nodes[state.name] = state
        demand = Demand(gpus, policy="spread")
        got = decide_fleet(fleet, Query(list(nodes), demand, [], now=NOW))
        assert got.decision() == decide(list(nodes.values()), demand, [], now=NOW)


@pytest.mark.parametrize(
    ("changes", "rewritten"),
    [
        pytest.param({"observed_at": NOW + 60}, False, id="times-only"),
        pytest.param({"lease_renewed_at": NOW + 30, "lease_duration_s": 15.0}, False, id="lease"),
        pytest.param({"cached_models": ()}, True, id="cache-changed"),
    ],
)
def test_reobserve_writes_the_times_and_replaces_anything_else(
    changes: dict[str, object], rewritten: bool
) -> None:
    n = node(4, name="a", models=["llama"])
    fleet = Fleet([n, node(4, name="b")])
    generation = int(fleet.generation[fleet.row_at("a")])
    later = dataclasses.replace(n, **changes)  # type: ignore[arg-type]
    fleet.reobserve(later)
    assert fleet.node("a") == later
    r = fleet.row_at("a")
    assert fleet.observed_at[r] == later.observed_at
    assert (int(fleet.generation[r]) != generation) is rewritten
    expected = decide([later], Demand(1), [], now=NOW + 30)
    got = decide_fleet(fleet, Query(["a"], Demand(1), [], now=NOW + 30))
    assert got.decision() == expected


@given(
    keys=st.lists(
        st.lists(st.integers(0, 40), min_size=2, max_size=2)
        | st.integers(0, 10**6).map(lambda k: [k, 0]),
        min_size=1,
        max_size=300,
    ),
    columns=st.sampled_from([1, 2]),
)
def test_reasons_group_like_np_unique(keys: list[list[int]], columns: int) -> None:
    """Rejects are grouped by key without sorting where the keys are small: the same first
    places and the same group of each key as np.unique gives."""
    array = np.array(keys, dtype=np.int64)[:, :columns]
    flat = array[:, 0] * 41 + array[:, 1] if columns == 2 else array[:, 0]
    first, inverse = _group(array if columns == 2 else flat)
    _, want_first, want_inverse = np.unique(flat, return_index=True, return_inverse=True)
    assert first == want_first.tolist()
    assert inverse.tolist() == want_inverse.reshape(-1).tolist()


CACHE_STEPS: dict[str, list[NodeState | str]] = {
    # Reports (a node state) and removals (a name), each followed by asking which rows cache
    # "llama" and "qwen": the answer must follow every step, though kept between requests.
    "a node loses its model": [node(name="b", models=[])],
    "a node gains a model": [node(name="c", models=["qwen", "llama"])],
    "a node goes and its row is reused": ["a", node(name="d", models=["qwen"])],
    "the fleet grows past its rows": [node(name=f"x{i}", models=["llama"]) for i in range(70)],
}


@pytest.mark.parametrize("steps", list(CACHE_STEPS.values()), ids=list(CACHE_STEPS))
def test_cached_rows_follow_reports(steps: list[NodeState | str]) -> None:
    fleet = Fleet([node(name="a", models=["llama"]), node(name="b", models=["llama"])])
    for step in [None, *steps]:
        if isinstance(step, str):
            fleet.remove(step)
        elif step is not None:
            fleet.replace(step)
        held = sorted(r for n in fleet.names() if (r := fleet.row_at(n)) is not None)
        for model in ("llama", "qwen", "none"):
            got = fleet.cached(model)
            assert len(got) == fleet.span
            assert got[held].tolist() == [fleet.row(r).node.has_cached(model) for r in held]


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 7)), max_size=30))
def test_every_name_is_the_fleet_and_rows_of_answers_it_as_a_lookup_would(
    steps: list[tuple[bool, int]],
) -> None:
    # Nodes added and removed between whole-fleet decisions and filters over a few names: the
    # memo behind every_name never answers for a fleet that changed.
    fleet = Fleet([node(1, name="n0")], capacity=2, width=1)
    for add, i in steps:
        if add:
            fleet.replace(node(1, name=f"n{i}"))
        elif f"n{i}" in fleet:
            fleet.remove(f"n{i}")
        every = fleet.every_name()
        assert sorted(every) == sorted(fleet.names())
        assert fleet.rows_of(every).tolist() == [fleet.row_at(n) for n in every]
        fleet.rows_of(list(every)[:1])  # a filter over one node in between
        assert fleet.rows_of(every).tolist() == [fleet.row_at(n) for n in every]


WHOLE_FLEET_COUNTS = {
    # name: (request, counts the metrics must read)
    "every node, in another order": (
        ["e", "d", "c", "b", "a"],
        {"gpu-too-small": 1, "no-lease": 1, "gpus-busy": 1},
    ),
    "an unknown name in place of a rejected node": (
        ["e", "c", "b", "a", "ghost"],
        {"gpu-too-small": 1, "gpus-busy": 1, "no-report": 1},
    ),
    "a node named twice in place of another": (
        ["e", "c", "c", "b", "a"],
        {"gpu-too-small": 1, "gpus-busy": 1},
    ),
    "every name unknown but the chosen one": (
        ["c", "x1", "x2", "x3", "x4"],
        {"no-report": 4},
    ),
}


@pytest.mark.parametrize(
    ("names", "counts"), WHOLE_FLEET_COUNTS.values(), ids=WHOLE_FLEET_COUNTS.keys()
)
def test_a_whole_fleet_decision_counts_the_named_nodes_when_read(
    names: list[str], counts: dict[str, int]
) -> None:
    """A request that names as many nodes as the fleet holds is decided over the fleet's own
    list; its reject counts are settled when read, over the nodes it named (``NamedCounts``),
    also when the fleet has changed since the decision."""
    fleet = Fleet(
        [
            node(name="a", held=range(8)),
            node(2, name="b"),
            node(name="c"),
            node(name="d", lease=None),
            node(name="e"),
        ]
    )
    got = decide_fleet(fleet, Query(names, Demand(4), [], now=NOW), reasons=False, all_fits=False)
    assert isinstance(got.reject_counts, NamedCounts) and not got.reject_counts.settled
    assert got.chosen is not None and got.chosen.node == "c"
    fleet.remove("b")  # changes nothing the decision counted
    fleet.replace(node(name="f"))
    assert dict(got.reject_counts) == counts
    assert got.reject_counts.settled


def test_a_whole_fleet_decision_whose_choice_was_not_named_decides_again() -> None:
    fleet = Fleet([node(name="a"), node(2, name="b")])
    got = decide_fleet(
        fleet, Query(["b", "ghost"], Demand(1), [], now=NOW), reasons=False, all_fits=False
    )
    assert got.chosen is not None and got.chosen.node == "b"
    assert dict(got.reject_counts) == {"no-report": 1}


def test_a_demand_refused_last_time_is_evaluated_in_full_and_still_placed() -> None:
    """A whole-fleet decision for a demand no node took last time starts from the full
    evaluation (its reasons are likely the answer again); when a node has come free since, it
    chooses as ``decide()`` does."""
    busy = [node(name="a", held=range(8)), node(name="b", held=range(6))]
    fleet = Fleet(busy)
    ask = Query(["b", "a"], Demand(4), [], now=NOW)
    refused = decide_fleet(fleet, ask, reasons=False, all_fits=False)
    assert refused.chosen is None and set(refused.rejects) == {"a", "b"}
    assert fleet.refused_memo == {(ask.demand, ask.settings): True}
    freed = node(name="b", held=range(2))
    fleet.replace(freed)
    placed = decide_fleet(fleet, ask, reasons=False, all_fits=False)
    expected = decide([busy[0], freed], Demand(4), [], now=NOW)
    assert placed.chosen == expected.chosen and placed.chosen is not None
    assert dict(placed.reject_counts) == {"gpus-busy": 1}
    assert fleet.refused_memo == {(ask.demand, ask.settings): False}


def test_unfit_reasons_kept_stay_within_their_bound_whatever_the_demands() -> None:
    """Pods choose their demands (their annotations), so the unfit reasons a fleet keeps stay
    within ``MAX_WORDED`` texts and ``MAX_ASKED`` demands all together, and still read as
    ``fit()``'s own."""
    nodes = [node(name=f"n{i}", free=[10 + i] * 8) for i in range(6)]
    fleet = Fleet(nodes)
    names = [n.name for n in nodes]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rejects, "MAX_WORDED", 10)
        patch.setattr(rejects, "MAX_ASKED", 3)
        for gib in range(20, 40):
            demand = Demand(1, vram_per_gpu=gib * GIB)
            _, got = evaluate(fleet, Query(names, demand, [], now=NOW))
            for n in nodes:
                want = fit(n, demand, [], now=NOW, settings=FitSettings())
                assert isinstance(want, Reject) and got[n.name] == want
            assert len(fleet.reason_memo) <= 3 + 1
            assert sum(map(len, fleet.reason_memo.values())) <= 10
