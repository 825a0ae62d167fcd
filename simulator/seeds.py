"""The evaluation over many seeds: every scenario, every policy, each seed, and the targets.

One seed is one draw of the traffic, of the kubelet's GPU order and of kube-scheduler's ties; a
policy tuned to it may lose the next. So the comparison that decides what vramfit does is over
many seeds (``vramfit-plan simulate --seeds 1-20``, ``python -m bench seeds``): each scenario
and seed runs every policy on the same traffic, and per scenario and policy the report gives
the mean and the worst seed of each measure (``MEASURES``).

The targets (``misses``) hold the default profile (``vramfit``) to, in every scenario:

* no failed load and no cold load started beyond the load budget, on any seed;
* a worst-seed p99 cold start at most 40% of the default scheduler's on the morning burst, and
  elsewhere at most 10% above the best other vramfit profile's;
* no pod pending at the end of any seed that the pool had room for (``pending_with_room``).

Pods pending at the end are counted three ways: all of them; those that fit an empty node of
the scenario's pools (``fits_empty``: asked of ``fit()`` itself), so that could ever run; and of
those, the ones the pool had *room* for at the end: the GPUs of the pools whose empty node fits
the pod, less those held at the end by pods of its priority or higher, add up to at least the
pod's GPUs. GPUs held by lower-priority pods count as free (preemption may take them), GPUs held
by pods of equal or higher priority do not (no scheduler may take them), and free GPUs count
across the nodes of those pools, not on one node: a pod left pending because the others were
spread so that no node has enough GPUs for it had room, and a better placement could have run
it. A pod pending while pods of its priority or higher hold the GPUs it needs waits for
capacity (a scenario that asks for more GPUs than its pool has does so on purpose), not for a
better scheduler: it is reported, and the target does not count it. The room is an upper bound
of what a scheduler could have placed (it does not ask whether the free GPUs share an NVLink
island, nor whether two pending pods want the same ones).

The runs go to at most ``jobs`` processes. Everything but ``sweep`` is pure.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import simpy

from placement.fit import fit
from placement.model import Demand, Fit, FitSettings, NodeState
from simulator import agent
from simulator.cluster import Node
from simulator.engine import simulate
from simulator.metrics import RunResult, summarize
from simulator.pods import service_demand
from simulator.scenario import Scenario

MEASURES: tuple[tuple[str, str], ...] = (
    ("failed_loads", "failed loads"),
    ("budget_overruns", "loads beyond the budget"),
    ("peak_loads", "peak loads per node"),
    ("p50", "cold start p50 (s)"),
    ("p95", "cold start p95 (s)"),
    ("p99", "cold start p99 (s)"),
    ("pending", "pending at the end"),
    ("pending_fitting", "of them fitting an empty node"),
    ("pending_room", "of them with room in the pool"),
    ("gpu_hours", "GPU-hours"),
)
"""Each measure of a seed: its ``SeedRow`` field and how the report names it."""

DEFAULT_PROFILE = "vramfit"
BASELINE = "default"
BURST = "morning-burst"
BURST_RATIO = 0.4
ELSEWHERE_MARGIN = 1.10


@dataclass(frozen=True, slots=True)
class SeedRow:
    """What one policy's run of one scenario and seed measured (cold starts in seconds; 0 when
    the run had none)."""

    scenario: str
    policy: str
    seed: int
    failed_loads: int
    budget_overruns: int
    peak_loads: int
    p50: float
    p95: float
    p99: float
    pending: int
    pending_fitting: int
    gpu_hours: float
    pending_room: int = 0


@dataclass(frozen=True, slots=True)
class Spread:
    """One measure over the seeds: the mean, the worst seed's value and which seed it was."""

    mean: float
    worst: float
    worst_seed: int


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"1-20"``, ``"3"`` or ``"1,4,7-9"`` as seeds, in order, each once (pure); raises
    ``ValueError`` with what is wrong."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        low, dash, high = part.partition("-")
        try:
            a = int(low)
            b = int(high) if dash else a
        except ValueError:
            raise ValueError(f"{part!r} is not a seed or a range of seeds (1-20)") from None
        if b < a:
            raise ValueError(f"{part!r}: the range ends before it starts")
        if b - a >= 10_000:
            raise ValueError(f"{part!r}: more than 10000 seeds")
        seeds.extend(s for s in range(a, b + 1) if s not in seeds)
    return tuple(seeds)


def empty_nodes(scenario: Scenario) -> list[NodeState]:
    """One empty node of each pool, as the agent would report it at time 0."""
    env = simpy.Environment()
    out: list[NodeState] = []
    for pool in scenario.pools:
        node = Node(env, 0, pool.node_names()[0], pool.name, pool.node_type)
        gpus = agent.read_gpus(node, agent.peers_of(node))
        out.append(
            agent.report(
                node, gpus, (), observed_at=0.0, lease_renewed_at=0.0, lease_duration_s=40.0
            )
        )
    return out


def fits_empty(demand: Demand, nodes: Iterable[NodeState]) -> bool:
    """Whether ``demand`` fits one of ``nodes`` empty, by ``fit()`` (no load in flight)."""
    settings = FitSettings(load_budget_s=None)
    return any(isinstance(fit(n, demand, (), now=0.0, settings=settings), Fit) for n in nodes)


def pools_fitting(scenario: Scenario) -> dict[str, frozenset[str]]:
    """By service: the pools of ``scenario`` whose empty node fits its pod."""
    empty = empty_nodes(scenario)
    return {
        s.name: frozenset(
            pool.name
            for pool, node in zip(scenario.pools, empty, strict=True)
            if fits_empty(service_demand(s), (node,))
        )
        for s in scenario.services
    }


def pending_with_room(
    scenario: Scenario, run: RunResult, pools: Mapping[str, frozenset[str]]
) -> int:
    """How many pods pending at the end of ``run`` the pool had room for (pure; see the module
    docstring): the GPUs of the ``pools`` whose empty node fits the pod (by service), less those
    held at the end by pods of its priority or higher, are at least the pod's GPUs."""
    priority = {s.name: s.priority for s in scenario.services}
    gpus = {p.name: p.node_type.shape.gpus * p.nodes for p in scenario.pools}
    pool_of = {n: p.name for p in scenario.pools for n in p.node_names()}
    end = run.duration_s
    held = [
        (pool_of[p.node], p.gpus, priority[p.service])
        for p in run.pods
        if p.node is not None and p.bound_at is not None and p.end_at >= end
    ]
    room = 0
    for pod in run.pods:
        if pod.bound_at is not None or pod.end_at < end:
            continue
        mine, rank = pools.get(pod.service, frozenset()), priority[pod.service]
        taken = sum(g for pool, g, q in held if pool in mine and q >= rank)
        if mine and sum(gpus[p] for p in mine) - taken >= pod.gpus:
            room += 1
    return room


def rows_of(scenario: Scenario, runs: Iterable[RunResult]) -> list[SeedRow]:
    """The ``SeedRow`` of each run of ``scenario`` (pure)."""
    pools = pools_fitting(scenario)
    fitting = {name: bool(p) for name, p in pools.items()}
    out = []
    for run in runs:
        s = summarize(run)
        end = run.duration_s
        waiting = [p for p in run.pods if p.bound_at is None and p.end_at >= end]
        out.append(
            SeedRow(
                scenario=scenario.name,
                policy=run.policy,
                seed=run.seed,
                failed_loads=s.failed_loads,
                budget_overruns=s.budget_overruns,
                peak_loads=s.peak_loads_per_node,
                p50=s.cold_start_p50_s or 0.0,
                p95=s.cold_start_p95_s or 0.0,
                p99=s.cold_start_p99_s or 0.0,
                pending=len(waiting),
                pending_fitting=sum(1 for p in waiting if fitting.get(p.service, False)),
                gpu_hours=s.gpu_hours,
                pending_room=pending_with_room(scenario, run, pools),
            )
        )
    return out


def run_seed(scenario: Scenario, policies: tuple[str, ...], seed: int) -> list[SeedRow]:
    """Every policy on ``scenario`` with ``seed``'s traffic."""
    return rows_of(scenario, simulate(scenario, policies, seed=seed))


def sweep(
    scenarios: Sequence[Scenario], policies: tuple[str, ...], seeds: Sequence[int], jobs: int = 1
) -> list[SeedRow]:
    """Every scenario under every policy for every seed, on at most ``jobs`` processes; rows in
    scenario, seed and policy order."""
    tasks = [(sc, policies, seed) for sc in scenarios for seed in seeds]
    if jobs <= 1 or len(tasks) <= 1:
        results = [run_seed(*t) for t in tasks]
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(run_seed, *zip(*tasks, strict=True)))
    return [row for rows in results for row in rows]


def spreads(rows: Sequence[SeedRow]) -> dict[tuple[str, str], dict[str, Spread]]:
    """By (scenario, policy), each measure's mean and worst seed (pure; the highest value is
    the worst for every measure, the first seed wins a tie)."""
    groups: dict[tuple[str, str], list[SeedRow]] = {}
    for r in rows:
        groups.setdefault((r.scenario, r.policy), []).append(r)
    out: dict[tuple[str, str], dict[str, Spread]] = {}
    for key, members in groups.items():
        out[key] = {}
        for field, _ in MEASURES:
            values = [(float(getattr(m, field)), m.seed) for m in members]
            worst = max(values, key=lambda v: (v[0], -v[1]))
            out[key][field] = Spread(
                math.fsum(v for v, _ in values) / len(values), worst[0], worst[1]
            )
    return out


def misses(rows: Sequence[SeedRow], policy: str = DEFAULT_PROFILE) -> list[str]:
    """Each target ``policy`` misses (pure; see the module docstring), one line each."""
    table = spreads(rows)
    out: list[str] = []
    for scenario in dict.fromkeys(r.scenario for r in rows):
        mine = table.get((scenario, policy))
        if mine is None:
            continue
        for field, words in (
            ("failed_loads", "failed loads"),
            ("budget_overruns", "cold loads started beyond the load budget"),
            ("pending_room", "pods pending at the end that the pool had room for"),
        ):
            if mine[field].worst > 0:
                worst = mine[field]
                out.append(
                    f"{scenario}: {worst.worst:.0f} {words} on seed {worst.worst_seed} "
                    "(target: 0 on every seed)"
                )
        p99 = mine["p99"].worst
        if scenario == BURST and (scenario, BASELINE) in table:
            limit = BURST_RATIO * table[(scenario, BASELINE)]["p99"].worst
            if p99 > limit:
                out.append(
                    f"{scenario}: worst-seed p99 cold start {p99:.0f}s is above {limit:.0f}s, "
                    f"{BURST_RATIO:.0%} of {BASELINE}'s"
                )
            continue
        others = [
            table[(scenario, p)]["p99"].worst
            for s, p in table
            if s == scenario and p.startswith("vramfit") and p != policy
        ]
        if others and p99 > ELSEWHERE_MARGIN * min(others):
            out.append(
                f"{scenario}: worst-seed p99 cold start {p99:.0f}s is more than "
                f"{ELSEWHERE_MARGIN - 1:.0%} above the best other vramfit profile's "
                f"({min(others):.0f}s)"
            )
    return out


def _cell(field: str, s: Spread) -> str:
    if field == "gpu_hours":
        return f"{s.mean:.1f} / {s.worst:.1f}"
    if field in ("p50", "p95", "p99"):
        return f"{s.mean:.0f} / {s.worst:.0f}"
    return f"{s.mean:.2g} / {s.worst:.0f}"


def report_rows(rows: Sequence[SeedRow]) -> list[tuple[str, str, list[str]]]:
    """Per scenario and policy, each measure as "mean / worst" (pure), in the rows' order."""
    table = spreads(rows)
    return [
        (scenario, policy, [_cell(f, m[f]) for f, _ in MEASURES])
        for (scenario, policy), m in table.items()
    ]


def to_markdown(rows: Sequence[SeedRow]) -> str:
    """The report as a Markdown table, each cell "mean / worst seed" (pure)."""
    seeds = sorted({r.seed for r in rows})
    head = ["scenario", "policy", *(name for _, name in MEASURES)]
    lines = [
        f"{len(seeds)} seeds ({seeds[0]}-{seeds[-1]}); each cell: mean / worst seed"
        if seeds
        else "no seeds",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    lines += ["| " + " | ".join([s, p, *cells]) + " |" for s, p, cells in report_rows(rows)]
    return "\n".join(lines) + "\n"


def to_json(rows: Sequence[SeedRow]) -> str:
    """Every seed's row, the means and worst seeds, and the targets missed, as JSON (pure)."""
    table = spreads(rows)
    return json.dumps(
        {
            "seeds": [dataclasses.asdict(r) for r in rows],
            "summary": [
                {
                    "scenario": scenario,
                    "policy": policy,
                    **{
                        f: {"mean": s.mean, "worst": s.worst, "worstSeed": s.worst_seed}
                        for f, s in m.items()
                    },
                }
                for (scenario, policy), m in table.items()
            ],
            "missed": misses(rows),
        },
        indent=2,
    )
