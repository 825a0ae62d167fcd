"""Plan every scenario: build the packing problem, solve it, place pods on GPUs, check each.

This ties the pure pieces together: demand per component, the packing problem per scenario,
the solver, and the core's ``placement.fit`` to choose (and so check) the GPUs of every pod on
its planned node. The pods of a multi-node replica are handed out whole: each group goes to
one pool, its pods to nodes of that pool, and the plan lists the nodes each group spans. The
result is plain data the reports render. Pure apart from the solver's clock.
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
from planner.packing.problem import BinType, Packing, Problem, whole_groups
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
class PlannedGroup:
    """One multi-node replica of a plan: the pool it runs in and the nodes its pods span."""

    service: str
    component: str
    replica: int
    canary: bool
    pool: str
    pods: int
    gpus_per_pod: tuple[int, ...]
    nodes: tuple[str, ...]


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
    groups: tuple[PlannedGroup, ...] = ()

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
    return _realize(
        scenario, catalog, problem=problem, solution=solution, members=members, unplaced=unplaced
    )


def _queues(
    problem: Problem, solution: Solution, members: dict[str, list[Unit]]
) -> tuple[dict[tuple[str, str], list[Unit]], list[Unit]]:
    """The pods each node type's nodes take, per (item key, pool; "" for any pool), and the
    pods left out. Whole groups of a family go to each pool, as many as the packing holds
    there; the groups that do not fit are left out whole, the last ones first."""
    queues: dict[tuple[str, str], list[Unit]] = {}
    left: list[Unit] = []
    for it in problem.items:
        if not it.group:
            us = list(members[it.key])
            n = solution.packing.unplaced.get(it.key, 0)
            queues[(it.key, "")] = us[: len(us) - n]
            left.extend(us[len(us) - n :])
    for fam in problem.families():
        groups: dict[str, list[tuple[str, Unit]]] = {}
        for i, _ in fam.members:
            key = problem.items[i].key
            for u in members[key]:
                groups.setdefault(u.group, []).append((key, u))
        order = sorted(groups)
        for pool, n in sorted(whole_groups(problem, fam, solution.packing.nodes).items()):
            for g in order[:n]:
                for key, u in groups[g]:
                    queues.setdefault((key, pool), []).append(u)
            order = order[n:]
        left.extend(u for g in order for _, u in groups[g])
    return queues, left


def _realize(
    scenario: Scenario,
    catalog: Catalog,
    *,
    problem: Problem,
    solution: Solution,
    members: dict[str, list[Unit]],
    unplaced: list[Unplaceable],
) -> ScenarioPlan:
    queues, left = _queues(problem, solution, members)
    left_out = Counter((u.service, u.component) for u in left)
    for (service, component), n in sorted(left_out.items()):
        unplaced.append(
            Unplaceable(service, component, scenario.value, n, "pool maxNodes limits leave no room")
        )
    grouped = {it.key for it in problem.items if it.group}
    nodes: list[PlannedNode] = []
    errors: list[str] = []
    per_pool: Counter[str] = Counter()
    for node in sorted(solution.packing.nodes, key=lambda n: (n.bin, sorted(n.items))):
        pool = catalog.pool(node.bin)
        name = f"{pool.name}-{per_pool[pool.name]}"
        per_pool[pool.name] += 1
        pods = [queues[(key, pool.name if key in grouped else "")].pop(0) for key in node.items]
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
        groups=planned_groups(nodes),
    )


def planned_groups(nodes: list[PlannedNode]) -> tuple[PlannedGroup, ...]:
    """The multi-node replicas placed on ``nodes``, each with its pool and nodes. Pure."""
    pods: dict[str, list[Placed]] = {}
    for n in nodes:
        for p in n.pods:
            if p.unit.group:
                pods.setdefault(p.unit.group, []).append(p)
    out = []
    for _, ps in sorted(pods.items()):
        ps.sort(key=lambda p: p.unit.pod)
        u = ps[0].unit
        out.append(
            PlannedGroup(
                service=u.service,
                component=u.component,
                replica=u.replica,
                canary=u.canary,
                pool=ps[0].pool,
                pods=len(ps),
                gpus_per_pod=tuple(len(p.gpu_indices) for p in ps),
                nodes=tuple(dict.fromkeys(p.node for p in ps)),
            )
        )
    return tuple(out)


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
