"""Hypothesis strategies for random GPU fleets, shared by the placement property tests.

Test modules get them as session fixtures (``scenarios``, ``nodes``) and draw with
``st.data()``. The values are chosen to collide often: few products (two spellings of one),
few memory sizes, repeated free amounts, shared pod UIDs, so ties, held and MIG-enabled GPUs,
visible and invisible reservations and split NVLink islands all show up in small examples;
and so do cold and warm loads in flight against a node's load budget (remote bandwidths, cached
models, reserved load sizes and the memory the loading pods already use).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import strategies as st

from placement.model import (
    GIB,
    CachedModel,
    Demand,
    FitSettings,
    GpuState,
    NodeState,
    NvlinkMode,
    PodMemory,
    Reservation,
    ReservationState,
)
from tests.builders import NOW, uuid

PRODUCTS = ("NVIDIA-H100-80GB-HBM3", "NVIDIA A100-SXM4-40GB", "NVIDIA-A100-SXM4-40GB")
SIZES = (16 * GIB, 40 * GIB, 80 * GIB)
PODS = ("pod-a", "pod-b", "pod-c", "me", "")
MODELS = ("llama-70b", "mistral-7b")
BANDWIDTHS = (None, 0.0, 1.0 * GIB, 1.25 * GIB, 10.0 * GIB)
LOAD_SIZES = (0, 15 * GIB, 40 * GIB, 131 * GIB)
BUDGETS = (None, 120.0, 60.0, 200.0)


@dataclass(frozen=True)
class Scenario:
    """One placement question: nodes, a pod's demand, reservations, time and settings."""

    nodes: list[NodeState]
    demand: Demand
    reservations: list[Reservation]
    now: float
    settings: FitSettings
    pod_uid: str
    waiting: tuple[tuple[Demand, int], ...] = ()


@st.composite
def gpu_lists(draw: st.DrawFn, name: str) -> tuple[GpuState, ...]:
    """0..8 GPUs with distinct indices and UUIDs (UUID order differs from index order)."""
    n = draw(st.sampled_from([0, 1, 2, 3, 4, 4, 6, 8, 8, 8]))
    indices = draw(st.permutations(range(8)))[:n]
    tags = draw(st.permutations(range(8)))[:n]
    uuids = [uuid(t, name) for t in tags]
    topology = draw(st.sampled_from(["all", "none", "halves", "random"]))
    peers: dict[str, set[str]] = {u: set() for u in uuids}
    if topology == "all":
        peers = {u: set(uuids) - {u} for u in uuids}
    elif topology == "halves":
        half = {u: indices[i] < 4 for i, u in enumerate(uuids)}
        peers = {u: {v for v in uuids if v != u and half[v] == half[u]} for u in uuids}
    elif topology == "random" and n > 1:
        for a, b in draw(st.lists(st.tuples(st.sampled_from(uuids), st.sampled_from(uuids)))):
            if a != b:
                peers[a].add(b)  # one side only: the graph is undirected
    product = draw(st.sampled_from(PRODUCTS))
    gpus = []
    for i, u in enumerate(uuids):
        total = draw(st.sampled_from(SIZES))
        free = draw(
            st.sampled_from([None, 0, total // 4, total // 2, total - GIB, total, total])
            | st.integers(0, total)
        )
        holder = draw(st.sampled_from([*PODS, *[None] * 10]))
        used = None if free is None else total - free
        users = draw(st.sampled_from([(), (), (holder,), (holder, "pod-b")]))
        pod_memory = tuple(PodMemory(p, (used or 0) // 2) for p in users if p is not None)
        gpus.append(
            GpuState(
                uuid=u,
                index=indices[i],
                product=draw(st.sampled_from([*PRODUCTS, *[product] * 6])),
                total_bytes=total,
                free_bytes=free,
                used_bytes=used,
                healthy=draw(st.sampled_from([False, *[True] * 6])),
                mig_enabled=draw(st.sampled_from([True, *[False] * 7])),
                nvlink_peers=frozenset(peers[u]),
                holder_pod_uid=holder,
                pod_memory=pod_memory,
            )
        )
    return tuple(gpus)


@st.composite
def node_states(draw: st.DrawFn, name: str) -> NodeState:
    """A node with random GPUs, liveness, report age and cached models."""
    return NodeState(
        name=name,
        gpus=draw(gpu_lists(name)),
        observed_at=NOW - draw(st.sampled_from([0.0, 5.5, 119.5, 120.0, 120.5, 300.0, *[3.0] * 6])),
        lease_renewed_at=draw(
            st.sampled_from([None, NOW, NOW - 40.0, NOW - 40.5, NOW - 99.4, *[NOW - 3.0] * 10])
        ),
        lease_duration_s=draw(st.sampled_from([40.0, 40, 15.5])),
        cached_models=tuple(
            CachedModel(m, 10 * GIB) for m in draw(st.lists(st.sampled_from(MODELS), unique=True))
        ),
        agent_error=draw(st.sampled_from(["NVML unavailable", *[""] * 10])),
        remote_bytes_per_s=draw(st.sampled_from(BANDWIDTHS)),
    )


@st.composite
def node_lists(draw: st.DrawFn, max_nodes: int = 6) -> list[NodeState]:
    """1..``max_nodes`` nodes with distinct names."""
    count = draw(st.integers(1, max_nodes))
    names = draw(st.permutations([f"node-{i}" for i in range(max_nodes)]))[:count]
    return [draw(node_states(n)) for n in names]


@st.composite
def demands(draw: st.DrawFn) -> Demand:
    """A pod's demand: 0..5 GPUs, sizes near the GPU sizes, any NVLink mode and products."""
    return Demand(
        gpus=draw(st.sampled_from([0, 1, 1, 2, 2, 3, 4, 4, 5])),
        vram_per_gpu=draw(
            st.sampled_from([0, 0, 10 * GIB, 20 * GIB, 40 * GIB, 70 * GIB, 80 * GIB])
        ),
        model_id=draw(st.sampled_from(["", *MODELS])),
        model_bytes=draw(st.sampled_from(LOAD_SIZES)),
        nvlink=draw(st.sampled_from(list(NvlinkMode))),
        products=frozenset(
            draw(
                st.sampled_from([(), (), (), ()])
                | st.lists(st.sampled_from([*PRODUCTS, "NVIDIA-L4"]), max_size=2)
            )
        ),
        policy=draw(st.sampled_from(["", "binpack", "spread"])),
    )


@st.composite
def reservation_lists(draw: st.DrawFn, nodes: list[NodeState]) -> list[Reservation]:
    """Reservations on the nodes' GPUs (and on a node no one knows), active or expired."""
    targets = [(n.name, [g.uuid for g in n.gpus]) for n in nodes] + [("elsewhere", ["GPU-x"])]
    out = []
    for _ in range(draw(st.integers(0, 6))):
        node, uuids = draw(st.sampled_from(targets))
        gpus = draw(st.lists(st.sampled_from(uuids), unique=True, max_size=3)) if uuids else []
        out.append(
            Reservation(
                pod_uid=draw(st.sampled_from(PODS)),
                pod_key="ns/pod",
                node=node,
                gpu_uuids=tuple(gpus),
                bytes_per_gpu=40 * GIB,
                state=draw(st.sampled_from(list(ReservationState))),
                created_at=NOW - 5,
                expires_at=draw(st.none() | st.sampled_from([NOW - 1, NOW, NOW + 30])),
                model_id=draw(st.sampled_from(["", *MODELS])),
                load_bytes=draw(st.sampled_from(LOAD_SIZES)),
            )
        )
    return out


@st.composite
def scenario(draw: st.DrawFn) -> Scenario:
    """A whole placement question."""
    nodes = draw(node_lists())
    return Scenario(
        nodes=nodes,
        demand=draw(demands()),
        reservations=draw(reservation_lists(nodes)),
        now=NOW,
        settings=FitSettings(
            max_report_age_s=draw(st.sampled_from([120.0, 60])),
            nvlink_for_multi_gpu=draw(st.sampled_from(list(NvlinkMode))),
            nvlink_best_effort=draw(st.booleans()),
            load_budget_s=draw(st.sampled_from(BUDGETS)),
        ),
        pod_uid=draw(st.sampled_from(PODS)),
        waiting=tuple((w, draw(st.integers(0, 3))) for w in draw(st.lists(demands(), max_size=2))),
    )


@pytest.fixture(scope="session")
def scenarios() -> st.SearchStrategy[Scenario]:
    """Random placement questions over small fleets."""
    return scenario()


@pytest.fixture(scope="session")
def fleets() -> st.SearchStrategy[list[NodeState]]:
    """Random small fleets (distinct node names)."""
    return node_lists()
