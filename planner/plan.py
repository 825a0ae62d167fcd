"""Plan every scenario: build the packing problem, solve it, place pods on GPUs, check each.

This ties the pure pieces together: demand per component, the packing problem per scenario,
the solver, and the core's ``placement.fit`` to choose (and so check) the GPUs of every pod on
its planned node. The result is plain data the reports render. Pure apart from the solver's
clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from placement.fit import fit
from placement.model import (
    Demand,
    FitSettings,
    GpuState,
    NodeState,
    Reject,
    Reservation,
    ReservationState,
)
from planner.inputs.catalog import Catalog, PoolType
from planner.packing.problem import BinType, Packing, Problem
from planner.packing.solve import Solution, SolveOptions, SolveStats, solve
from planner.packing.units import SCENARIOS, ComponentDemand, Scenario, Unit, item_types, units

MICRO = 1_000_000


@dataclass(frozen=True, slots=True)
class Placed:
    """A pod on a planned node, on the GPUs ``placement.fit`` chose."""

    unit: Unit
    node: str
    pool: str
    gpu_indices: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PlannedNode:
    """One node of a plan and what runs on it."""

    name: str
    pool: str
    gpus: int
    vram_per_gpu: int
    pods: tuple[Placed, ...]

    @property
    def gpus_used(self) -> int:
        """GPUs held by planned pods."""
        return sum(len(p.gpu_indices) for p in self.pods)

    @property
    def vram_used(self) -> int:
        """VRAM the planned pods need, summed over their GPUs."""
        return sum(p.unit.vram_per_gpu * len(p.gpu_indices) for p in self.pods)


@dataclass(frozen=True, slots=True)
class PoolUse:
    """Nodes of one pool type in a plan."""

    pool: PoolType
    nodes: int

    @property
    def cost_per_hour(self) -> float:
        """Nodes times the price per node-hour."""
        return self.nodes * self.pool.cost_per_hour

    @property
    def change(self) -> int:
        """Nodes to add (positive) or remove (negative) from the pool's existing nodes."""
        return self.nodes - self.pool.existing_nodes


@dataclass(frozen=True, slots=True)
class Unplaceable:
    """A component that no pool can ever run, or that the pool limits left out."""

    service: str
    component: str
    scenario: str
    pods: int
    reason: str


@dataclass(frozen=True, slots=True)
class ScenarioPlan:
    """The plan of one scenario, its baseline and its bounds."""

    scenario: Scenario
    pools: tuple[PoolUse, ...]
    nodes: tuple[PlannedNode, ...]
    ffd_pools: tuple[PoolUse, ...]
    unplaced: tuple[Unplaceable, ...]
    stats: SolveStats
    fit_errors: tuple[str, ...] = ()

    @property
    def cost_per_hour(self) -> float:
        """Cost of the planned nodes per hour."""
        return sum(p.cost_per_hour for p in self.pools)

    @property
    def ffd_cost_per_hour(self) -> float:
        """Cost of the first-fit-decreasing nodes per hour."""
        return sum(p.cost_per_hour for p in self.ffd_pools)

    @property
    def lower_bound_cost_per_hour(self) -> float | None:
        """Best valid lower bound on the cost per hour (``None`` when pods were left out)."""
        lb = self.stats.lower_bound
        return None if lb is None else lb / MICRO

    @property
    def gap(self) -> float | None:
        """(cost - bound) / cost; 0 when the plan is proven optimal."""
        lb = self.lower_bound_cost_per_hour
        cost = self.cost_per_hour
        if lb is None:
            return None
        return 0.0 if cost <= 0 else max(0.0, (cost - lb) / cost)

    @property
    def placements(self) -> tuple[Placed, ...]:
        """Every placed pod."""
        return tuple(p for n in self.nodes for p in n.pods)


@dataclass(frozen=True, slots=True)
class Plan:
    """All scenarios of one run."""

    scenarios: Mapping[Scenario, ScenarioPlan]
    demands: tuple[ComponentDemand, ...]
    catalog: Catalog
    options: SolveOptions
    unplaceable: tuple[Unplaceable, ...] = field(default_factory=tuple)


def bin_types(catalog: Catalog, pools: set[str]) -> tuple[BinType, ...]:
    """Node types for the packing problem (only pools some pod may use, or with min nodes)."""
    return tuple(
        BinType(
            name=p.name,
            gpus=p.gpus,
            islands=tuple(len(i) for i in p.islands),
            cpu_milli=p.cpu_milli,
            memory_bytes=p.memory_bytes,
            cost=round(p.cost_per_hour * MICRO),
            min_nodes=p.min_nodes,
            max_nodes=p.max_nodes,
        )
        for p in catalog.pools
        if p.name in pools or p.min_nodes > 0
    )


def node_state(name: str, pool: PoolType) -> NodeState:
    """A fresh node of ``pool`` as the core sees it: every GPU free, NVLink per the catalog."""
    gpus = []
    island_of = {i: isl for isl in pool.islands for i in isl}
    for i in range(pool.gpus):
        peers = frozenset(f"{name}/gpu{j:02d}" for j in island_of.get(i, ()) if j != i)
        gpus.append(
            GpuState(
                uuid=f"{name}/gpu{i:02d}",
                index=i,
                product=pool.gpu_product,
                total_bytes=pool.vram_per_gpu,
                free_bytes=pool.vram_per_gpu,
                used_bytes=0,
                nvlink_peers=peers,
            )
        )
    return NodeState(name=name, gpus=tuple(gpus), observed_at=0.0, lease_renewed_at=0.0)


def place_on_node(name: str, pool: PoolType, pods: list[Unit]) -> tuple[list[Placed], list[str]]:
    """Choose GPUs for ``pods`` on one node with ``placement.fit``, NVLink-bound pods first,
    largest first. Returns the placements and an error per pod that ``fit`` rejected. Pure."""
    node = node_state(name, pool)
    reservations: list[Reservation] = []
    placed: list[Placed] = []
    errors: list[str] = []
    order = sorted(pods, key=lambda u: (not u.needs_island, -u.gpus, u.uid))
    index = {g.uuid: g.index for g in node.gpus}
    for u in order:
        demand = Demand(
            gpus=u.gpus,
            vram_per_gpu=u.vram_per_gpu,
            model_id=u.model_id,
            model_bytes=u.model_bytes,
            nvlink=u.nvlink,
            products=u.products,
        )
        result = fit(node, demand, reservations, now=0.0, settings=FitSettings(), pod_uid=u.uid)
        if isinstance(result, Reject):
            errors.append(f"{u.uid} on {name}: {result.reason}")
            continue
        reservations.append(
            Reservation(
                pod_uid=u.uid,
                pod_key=u.uid,
                node=name,
                gpu_uuids=result.gpu_uuids,
                bytes_per_gpu=u.vram_per_gpu,
                state=ReservationState.BOUND,
                created_at=0.0,
                model_id=u.model_id,
            )
        )
        placed.append(Placed(u, name, pool.name, tuple(sorted(index[g] for g in result.gpu_uuids))))
    return placed, errors


def _pool_uses(catalog: Catalog, counts: Counter[str]) -> tuple[PoolUse, ...]:
    """The pools a plan uses, and those it empties of their existing nodes."""
    return tuple(
        PoolUse(p, counts[p.name])
        for p in catalog.pools
        if counts[p.name] > 0 or p.existing_nodes > 0
    )


def unplaceable_reason(demand: ComponentDemand) -> str:
    """Why no pool of the catalog can run ``demand``, grouped by reason. Pure."""
    if not demand.rejected:
        if demand.pinned_out:
            return (
                "its GPU product, nodeSelector, node affinity or tolerations match no pool of "
                "the catalog"
            )
        return "the catalog has no pool"
    by_reason: dict[str, list[str]] = {}
    for pool, why in demand.rejected:
        by_reason.setdefault(why, []).append(pool)
    parts = [f"{why} ({', '.join(pools)})" for why, pools in sorted(by_reason.items())]
    text = "no pool can run it: " + "; ".join(parts)
    if demand.pinned_out:
        text += f" ({len(demand.pinned_out)} other pools excluded by its node constraints)"
    return text


def plan_scenario(
    scenario: Scenario,
    demands: tuple[ComponentDemand, ...],
    catalog: Catalog,
    options: SolveOptions,
    progress: Callable[[str], None] | None = None,
) -> ScenarioPlan:
    """Solve one scenario and place every pod with ``placement.fit``."""
    pods: list[Unit] = []
    unplaced: list[Unplaceable] = []
    for d in demands:
        us = units(d, scenario)
        if not us:
            continue
        if not d.allowed:
            unplaced.append(
                Unplaceable(d.service, d.component, scenario.value, len(us), unplaceable_reason(d))
            )
            continue
        pods.extend(us)
    items, members = item_types(pods)
    allowed = {name for it in items for name in it.allowed}
    problem = Problem(bin_types(catalog, allowed), items)
    if not problem.bins:
        empty = SolveStats("optimal", 0.0, "no demand", None, 0.0, True, 0, 0, "-", 0.0)
        solution = Solution(Packing((), {}), Packing((), {}), empty)
    else:
        solution = solve(problem, options, progress, cost_scale=MICRO)
    return _realize(scenario, catalog, solution, members, unplaced)


def _realize(
    scenario: Scenario,
    catalog: Catalog,
    solution: Solution,
    members: dict[str, list[Unit]],
    unplaced: list[Unplaceable],
) -> ScenarioPlan:
    queues = {k: list(v) for k, v in members.items()}
    left_out: Counter[tuple[str, str]] = Counter()
    for key, n in solution.packing.unplaced.items():
        for _ in range(n):
            u = queues[key].pop()
            left_out[(u.service, u.component)] += 1
    for (service, component), n in sorted(left_out.items()):
        unplaced.append(
            Unplaceable(service, component, scenario.value, n, "pool maxNodes limits leave no room")
        )
    nodes: list[PlannedNode] = []
    errors: list[str] = []
    per_pool: Counter[str] = Counter()
    for node in sorted(solution.packing.nodes, key=lambda n: (n.bin, sorted(n.items))):
        pool = catalog.pool(node.bin)
        name = f"{pool.name}-{per_pool[pool.name]}"
        per_pool[pool.name] += 1
        pods = [queues[key].pop(0) for key in node.items]
        placed, errs = place_on_node(name, pool, pods)
        errors.extend(errs)
        nodes.append(
            PlannedNode(
                name,
                pool.name,
                pool.gpus,
                pool.vram_per_gpu,
                tuple(sorted(placed, key=lambda p: p.gpu_indices)),
            )
        )
    return ScenarioPlan(
        scenario=scenario,
        pools=_pool_uses(catalog, per_pool),
        nodes=tuple(nodes),
        ffd_pools=_pool_uses(catalog, solution.ffd.nodes_per_bin()),
        unplaced=tuple(unplaced),
        stats=solution.stats,
        fit_errors=tuple(errors),
    )


def plan_all(
    demands: tuple[ComponentDemand, ...],
    catalog: Catalog,
    options: SolveOptions,
    scenarios: tuple[Scenario, ...] = SCENARIOS,
    progress: Callable[[Scenario, str], None] | None = None,
) -> Plan:
    """Plan each scenario in turn."""
    plans: dict[Scenario, ScenarioPlan] = {}
    for sc in scenarios:
        cb = None if progress is None else (lambda msg, sc=sc: progress(sc, msg))
        plans[sc] = plan_scenario(sc, demands, catalog, options, cb)
    unplaceable = tuple(u for p in plans.values() for u in p.unplaced)
    return Plan(plans, demands, catalog, options, unplaceable)
