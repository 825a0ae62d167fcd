"""Victim selection for kube-scheduler's preempt verb: named cases, and invariants on random
nodes (the answer is a subset of the offer, the pod fits without it, and no smaller or
earlier-ranked set would do)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from placement.fit import fit
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
    ReservationState,
)
from placement.preemption import (
    Chosen,
    Refused,
    Victim,
    choose_victims,
    colex,
    gpus_freed,
    rank,
    refusal_class,
    released,
    without,
)
from tests.builders import NOW, Nvlink, gpu, node, reservation

A100 = "NVIDIA-A100-SXM4-40GB"


def busy(
    holders: Mapping[int, str],
    *,
    gpus: int = 8,
    total: float = 80,
    used: float = 40,
    leak: Mapping[int, float] | None = None,
    product: str = "NVIDIA-H100-80GB-HBM3",
    unhealthy: Sequence[int] = (),
    nvlink: Nvlink = "all",
    lease: float | None = NOW,
) -> NodeState:
    """A node whose GPUs ``holders`` names are held by those pods, each using ``used`` GiB on
    each of its GPUs, plus ``leak`` GiB no pod owns on some GPUs."""
    leak = leak or {}
    built: list[GpuState] = []
    for i in range(gpus):
        holder = holders.get(i)
        mine = used if holder else 0.0
        orphan = leak.get(i, 0.0)
        built.append(
            gpu(
                i,
                total=total,
                free=total - mine - orphan,
                used=mine + orphan,
                product=product,
                holder=holder,
                healthy=i not in unhealthy,
                pod_memory=[PodMemory(holder, int(mine * GIB))] if holder else [],
            )
        )
    return node(built, nvlink=nvlink, lease=lease)


def v(uid: str, priority: int = 0, started: float | None = None) -> Victim:
    return Victim(uid, priority, started)


def demand(gpus: int = 1, gib: float = 70, nvlink: NvlinkMode = NvlinkMode.PREFERRED) -> Demand:
    return Demand(gpus=gpus, vram_per_gpu=int(gib * GIB), nvlink=nvlink)


@dataclass(frozen=True)
class Case:
    node: NodeState
    offered: list[Victim]
    victims: tuple[str, ...] | None  # None: refused
    demand: Demand = field(default_factory=demand)
    reservations: list[Reservation] = field(default_factory=list)
    refused: str = ""  # the reject class when refused


EIGHT = {i: f"p{i}" for i in range(8)}
CASES = {
    "one-victim-on-an-80gb-node-the-lowest-priority": Case(
        busy(EIGHT), [v("p0", 5), v("p1", 1), v("p2", 3)], ("p1",)
    ),
    "a-40gb-node-never-fits-a-70gib-pod": Case(
        busy(EIGHT, total=40, used=30, product=A100),
        [v("p0"), v("p1")],
        None,
        refused="gpu-too-small",
    ),
    "fewest-victims-before-lowest-priority": Case(
        busy({0: "a", 1: "b", 2: "c", 3: "c", 4: "x", 5: "x", 6: "x", 7: "x"}),
        [v("a", 0), v("b", 0), v("c", 5)],
        ("c",),
        demand=demand(2),
    ),
    "equal-count-spares-the-more-important-pod": Case(
        busy({0: "a", 1: "z", 2: "b", 3: "c", 4: "x", 5: "x", 6: "x", 7: "x"}),
        [v("a", 0), v("z", 100), v("b", 1), v("c", 1)],
        ("b", "a"),  # not {a, z}: that evicts a priority-100 pod where {a, b} tops out at 1
        demand=demand(2),
    ),
    "equal-priority-fewest-gpus-freed": Case(
        busy({0: "big", 1: "big", 2: "small", 3: "x", 4: "x", 5: "x", 6: "x", 7: "x"}),
        [v("big"), v("small")],
        ("small",),
    ),
    "equal-priority-and-gpus-most-recently-started": Case(
        busy(EIGHT), [v("p0", 0, 100.0), v("p1", 0, 300.0), v("p2", 0, 200.0)], ("p1",)
    ),
    "unknown-start-counts-as-oldest": Case(
        busy(EIGHT), [v("p0", 0, None), v("p1", 0, 5.0)], ("p1",)
    ),
    "memory-no-pod-owns-stays-used": Case(
        busy(EIGHT, leak={0: 30}), [v("p0")], None, refused="unallocated-gpu-unfit"
    ),
    "a-leaky-gpu-freed-spoils-the-node": Case(
        # Freeing p0's GPU leaves 50 GiB there, and the kubelet may hand that one out.
        busy(EIGHT, leak={0: 30}),
        [v("p0", 0), v("p1", 9)],
        ("p1",),
    ),
    "an-unhealthy-gpu-frees-nothing": Case(
        busy(EIGHT, unhealthy=[3]), [v("p3")], None, refused="gpus-busy"
    ),
    "islands-freed-must-join": Case(
        busy(EIGHT, nvlink=[[0, 1, 2, 3], [4, 5, 6, 7]]),
        [v("p3", 0), v("p4", 1), v("p5", 2)],
        ("p5", "p4"),
        demand=demand(2, nvlink=NvlinkMode.REQUIRED),
    ),
    "islands-never-join": Case(
        busy(EIGHT, nvlink=[[0, 1, 2, 3], [4, 5, 6, 7]]),
        [v("p3"), v("p4")],
        None,
        demand=demand(2, nvlink=NvlinkMode.REQUIRED),
        refused="nvlink-split",
    ),
    "agent-gone-quiet": Case(
        busy(EIGHT, lease=NOW - 100), [v("p0")], None, refused="lease-expired"
    ),
    "a-victim-still-loading-frees-its-promised-gpus": Case(
        # p6, p7's GPUs are free in the report, but promised to a pod still loading: "w".
        busy({i: f"p{i}" for i in range(6)}),
        [v("p0", 3), v("w", 1)],
        ("w",),
        demand=demand(2),
        reservations=[reservation("w", (6, 7), state=ReservationState.BOUND)],
    ),
    "another-pods-reservation-still-counts": Case(
        busy({i: f"p{i}" for i in range(7)}),
        [v("p0"), v("p1")],
        ("p0", "p1"),
        demand=demand(2),
        reservations=[reservation("other", (7,), state=ReservationState.BOUND)],
    ),
    "the-pods-own-reservation-is-ignored": Case(
        busy({i: f"p{i}" for i in range(7)}),
        [v("p0"), v("p1")],
        ("p0",),
        demand=demand(2),
        reservations=[reservation("me", (7,))],
    ),
    "a-victim-holding-no-gpu-is-kept": Case(
        busy(EIGHT), [v("cpu-only", 2), v("p0", 0), v("p1", 1)], ("cpu-only", "p0")
    ),
    "fits-without-any-victim": Case(busy({0: "p0"}), [v("p0")], ()),
    "a-victim-offered-twice-counts-once": Case(busy(EIGHT), [v("p0"), v("p0")], ("p0",)),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_choose_victims(case: Case) -> None:
    got = choose_victims(
        case.node, case.demand, case.offered, case.reservations, now=NOW, pod_uid="me"
    )
    if case.victims is None:
        assert isinstance(got, Refused), got
        cls = refusal_class(
            without(case.node, {o.uid for o in case.offered}),
            case.demand,
            [r for r in case.reservations if r.pod_uid not in {o.uid for o in case.offered}],
            now=NOW,
            pod_uid="me",
        )
        assert cls == case.refused
        return
    assert isinstance(got, Chosen), got
    assert got.victims == case.victims
    assert got.exact


def test_the_answer_lists_the_most_important_victim_first() -> None:
    got = choose_victims(
        busy({i: f"p{i}" for i in range(6)}),
        demand(6),
        [v("p0", 1, 10.0), v("p1", 5), v("p2", 1, 20.0), v("p3", 3)],
        [],
        now=NOW,
    )
    assert isinstance(got, Chosen)
    assert got.victims == ("p1", "p3", "p0", "p2")


def test_without_frees_holders_and_their_memory_only() -> None:
    n = busy({0: "a", 1: "b"}, leak={0: 10})
    after = without(n, {"a"})
    g0, g1 = after.gpus[0], after.gpus[1]
    assert g0.holder_pod_uid is None and g0.pod_memory == ()
    assert g0.free_bytes == 70 * GIB and g0.used_bytes == 10 * GIB
    assert g1 == n.gpus[1]
    assert without(n, set()) is n


def test_gpus_freed_counts_held_and_promised_gpus() -> None:
    n = busy({0: "a", 1: "a", 2: "b"}, unhealthy=[1])
    rs = [reservation("b", (5, 6)), reservation("c", (7,))]
    assert gpus_freed(n, rs, "a", NOW) == 1  # its unhealthy GPU is never handed out
    assert gpus_freed(n, rs, "b", NOW) == 1  # it holds one: its reservation promises no more
    assert gpus_freed(n, rs, "c", NOW) == 1


@pytest.mark.parametrize(
    ("n", "size", "expected"),
    [
        pytest.param(3, 2, [(0, 1), (0, 2), (1, 2)], id="pairs-of-three"),
        pytest.param(4, 1, [(0,), (1,), (2,), (3,)], id="singles"),
        pytest.param(2, 0, [()], id="empty"),
        pytest.param(2, 3, [], id="too-many"),
    ],
)
def test_colex(n: int, size: int, expected: list[tuple[int, ...]]) -> None:
    assert list(colex(n, size)) == expected


def test_colex_orders_by_the_highest_member_first() -> None:
    sets = list(colex(6, 3))
    assert sets == sorted(sets, key=lambda s: tuple(reversed(s)))
    assert len(sets) == 20


def test_a_search_over_budget_gives_back_like_the_scheduler() -> None:
    n = busy(EIGHT)
    got = choose_victims(n, demand(2), [v(f"p{i}", i) for i in range(8)], [], now=NOW, budget=0)
    assert isinstance(got, Chosen)
    assert not got.exact
    assert got.victims == ("p1", "p0")  # the two least important: irreducible here too


@pytest.mark.parametrize(
    ("gpus", "expected"),
    [
        pytest.param([gpu(0, holder="a", pod_memory=[PodMemory("a", GIB)])], False, id="held"),
        pytest.param([gpu(0, pod_memory=[PodMemory("a", GIB)])], False, id="memory-left"),
        pytest.param([gpu(0, holder="b", pod_memory=[PodMemory("b", GIB)])], True, id="others"),
        pytest.param([gpu(0)], True, id="nothing"),
    ],
)
def test_released(gpus: list[GpuState], expected: bool) -> None:
    assert released(node(gpus), "a") is expected


# ----- invariants on random nodes --------------------------------------------------------------

POD_NAMES = ("a", "b", "c", "d", "e", "keep")


@st.composite
def questions(draw: st.DrawFn) -> tuple[NodeState, Demand, list[Victim], list[Reservation]]:
    n = draw(st.integers(1, 6))
    total = draw(st.sampled_from([40, 80, 80]))
    holders = {
        i: h for i in range(n) if (h := draw(st.sampled_from([*POD_NAMES, None, None]))) is not None
    }
    leak = {i: float(draw(st.sampled_from([0, 0, 0, 0, 0, 20]))) for i in range(n)}
    islands = draw(st.sampled_from(["all", "halves"]))
    node_ = busy(
        holders,
        gpus=n,
        total=total,
        used=draw(st.sampled_from([0, 10, 40])),
        leak=leak,
        unhealthy=draw(st.sampled_from([[], [], [], [n - 1]])),
        nvlink="all" if islands == "all" else [list(range(n // 2)), list(range(n // 2, n))],
    )
    rs = [
        reservation(p, draw(st.lists(st.integers(0, n - 1), unique=True, max_size=2)))
        for p in draw(st.lists(st.sampled_from(POD_NAMES), unique=True, max_size=2))
    ]
    offered = [
        Victim(p, draw(st.integers(0, 3)), draw(st.none() | st.floats(0, 100)))
        for p in draw(st.lists(st.sampled_from(POD_NAMES[:-1]), unique=True, max_size=5))
    ]
    d = Demand(
        gpus=draw(st.integers(1, 3)),
        vram_per_gpu=draw(st.sampled_from([10, 30, 30, 50, 70])) * GIB,
        nvlink=draw(st.sampled_from(list(NvlinkMode))),
    )
    return node_, d, offered, rs


def _touches(node_: NodeState, rs: list[Reservation], uid: str) -> bool:
    """Whether evicting ``uid`` changes anything on the node: a GPU, its memory, a promise."""
    return any(r.pod_uid == uid for r in rs) or any(
        g.holder_pod_uid == uid or any(m.pod_uid == uid for m in g.pod_memory) for g in node_.gpus
    )


def _fits(
    node_: NodeState, d: Demand, rs: list[Reservation], gone: set[str], fs: FitSettings
) -> bool:
    rest = [r for r in rs if r.pod_uid not in gone]
    return isinstance(fit(without(node_, gone), d, rest, now=NOW, settings=fs), Fit)


@settings(max_examples=300, deadline=None)
@given(q=questions())
def test_the_answer_is_offered_fits_and_is_the_first_smallest(
    q: tuple[NodeState, Demand, list[Victim], list[Reservation]],
) -> None:
    node_, d, offered, rs = q
    fs = FitSettings()
    got = choose_victims(node_, d, offered, rs, now=NOW, settings=fs)
    uids = [o.uid for o in offered]
    touching = [o for o in offered if _touches(node_, rs, o.uid)]
    subsets = [
        set(c)
        for k in range(len(touching) + 1)
        for c in itertools.combinations([o.uid for o in touching], k)
    ]
    if isinstance(got, Refused):
        assert isinstance(got.reject, Reject)
        assert not any(_fits(node_, d, rs, s, fs) for s in subsets)
        return
    assert set(got.victims) <= set(uids)
    assert _fits(node_, d, rs, set(got.victims), fs)
    if not got.victims:
        assert isinstance(fit(node_, d, rs, now=NOW, settings=fs), Fit)
        return
    assert got.exact
    freeing = {o.uid for o in touching}
    chosen = set(got.victims) & freeing
    bystanders = set(got.victims) - freeing
    assert bystanders == set(uids) - freeing
    # No smaller set fits, and no set of its size that ranks earlier (colexicographic).
    ranked = sorted(touching, key=lambda o: rank(o, gpus_freed(node_, rs, o.uid, NOW)))
    place = {o.uid: i for i, o in enumerate(ranked)}
    mine = tuple(sorted((place[u] for u in chosen), reverse=True))
    for s in subsets:
        if not s or s == chosen:
            continue
        key = tuple(sorted((place[u] for u in s), reverse=True))
        if len(s) < len(chosen) or (len(s) == len(chosen) and key < mine):
            assert not _fits(node_, d, rs, s, fs), (s, chosen)
