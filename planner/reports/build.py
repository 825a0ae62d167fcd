"""Build the report document from the plans of each cloud, the decision frames and what was
read. Pure: it only reshapes values (costs from micro-dollars to dollars, rounded for
reading)."""

from __future__ import annotations

from collections.abc import Sequence

from planner.clouds import ANY, CloudPlan
from planner.frame import ServiceFrame
from planner.inputs.catalog import Catalog
from planner.inputs.llm_fields import LLM_KIND
from planner.inputs.sources import ISVC_KIND, Inputs
from planner.packing.units import Scenario
from planner.plan import MICRO, PoolUse, ScenarioPlan
from planner.reports.document import (
    REPORT_VERSION,
    BaselineJSON,
    BrokenJSON,
    CatalogJSON,
    CatalogPoolJSON,
    CloudJSON,
    CloudScenarioJSON,
    GroupJSON,
    InputsJSON,
    NodeJSON,
    PlacementJSON,
    PoolJSON,
    Report,
    ScenarioJSON,
    ServiceJSON,
    SolverJSON,
    StatsJSON,
    UnplaceableJSON,
)


def _r(x: float) -> float:
    return round(x, 4)


def _pools(uses: Sequence[PoolUse]) -> list[PoolJSON]:
    return [
        PoolJSON(
            name=u.pool.name,
            gpu_product=u.pool.gpu_product,
            gpus_per_node=u.pool.gpus,
            vram_per_gpu_bytes=u.pool.vram_per_gpu,
            nodes=u.nodes,
            existing_nodes=u.pool.existing_nodes,
            change_nodes=u.change,
            cost_per_hour=_r(u.cost_per_hour),
        )
        for u in uses
    ]


def scenario_json(sp: ScenarioPlan) -> ScenarioJSON:
    """One scenario as JSON. Pure."""
    s = sp.stats
    lb = sp.lower_bound_cost_per_hour
    return ScenarioJSON(
        pools=_pools(sp.pools),
        cost_per_hour=_r(sp.cost_per_hour),
        lower_bound_cost_per_hour=None if lb is None else _r(lb),
        gap=None if sp.gap is None else round(sp.gap, 6),
        ffd=BaselineJSON(pools=_pools(sp.ffd_pools), cost_per_hour=_r(sp.ffd_cost_per_hour)),
        savings_vs_ffd_per_hour=_r(sp.ffd_cost_per_hour - sp.cost_per_hour),
        gpus=sum(u.nodes * u.pool.gpus for u in sp.pools),
        placements=[
            PlacementJSON(
                inference_service=p.unit.service,
                component=p.unit.component,
                replica=p.unit.replica,
                canary=p.unit.canary,
                pod=p.unit.pod,
                pool=p.pool,
                node=p.node,
                gpus=list(p.gpu_indices),
                vram_per_gpu_bytes=p.unit.vram_per_gpu,
            )
            for p in sorted(sp.placements, key=lambda p: p.unit.uid)
        ],
        nodes=[
            NodeJSON(
                name=n.name,
                pool=n.pool,
                gpus=n.gpus,
                gpus_used=n.gpus_used,
                vram_per_gpu_bytes=n.vram_per_gpu,
                vram_used_bytes=n.vram_used,
                pods=[p.unit.uid for p in n.pods],
            )
            for n in sp.nodes
        ],
        groups=[
            GroupJSON(
                inference_service=g.service,
                component=g.component,
                replica=g.replica,
                canary=g.canary,
                pool=g.pool,
                pods=g.pods,
                gpus_per_pod=list(g.gpus_per_pod),
                nodes=list(g.nodes),
            )
            for g in sp.groups
        ],
        unplaceable=[
            UnplaceableJSON(
                inference_service=u.service,
                component=u.component,
                scenario=u.scenario,
                pods=u.pods,
                reason=u.reason,
            )
            for u in sp.unplaced
        ],
        fit_errors=list(sp.fit_errors),
        stats=StatsJSON(
            status=s.status,
            bound_source=s.bound_source,
            lp_bound_cost_per_hour=None if s.lp_bound is None else _r(s.lp_bound / MICRO),
            simple_bound_cost_per_hour=_r(s.simple_bound / MICRO),
            lp_converged=s.lp_converged,
            columns=s.columns,
            iterations=s.iterations,
            cp_sat_status=s.cp_sat_status,
            wall_seconds=round(s.wall_s, 3),
        ),
    )


def service_json(f: ServiceFrame) -> ServiceJSON:
    """One decision frame as JSON. Pure."""

    def opt(x: float | None) -> float | None:
        return None if x is None else _r(x)

    return ServiceJSON(
        name=f.name,
        kind=f.kind,
        components=list(f.components),
        replica_shape=f.replica_shape,
        model_id=f.model_id,
        sizing_source=f.sizing_source,
        weights_bytes=f.weights_bytes,
        gpus_per_replica=f.gpus_per_replica,
        vram_per_gpu_bytes=f.vram_per_gpu_bytes,
        min_replicas=f.min_replicas,
        peak_replicas=f.peak_replicas,
        storage_tier=f.storage_tier,
        load_bytes_per_second=f.load_bytes_per_second,
        cold_start_seconds=opt(f.cold_start_seconds),
        cached_cold_start_seconds=opt(f.cached_cold_start_seconds),
        cold_start_budget_seconds=f.cold_start_budget_seconds,
        pool=f.pool,
        price_per_gpu_hour=opt(f.price_per_gpu_hour),
        warm_gpu_hours_per_day=f.warm_gpu_hours_per_day,
        warm_cost_per_day=opt(f.warm_cost_per_day),
        idle_fraction=f.idle_fraction,
        scale_to_zero_savings_per_day=opt(f.scale_to_zero_savings_per_day),
        recommendation=f.recommendation.value,
        action=f.action,
        annotations=dict(f.annotations),
        notes=list(f.notes),
    )


def inputs_json(inputs: Inputs, gpu_components: int) -> InputsJSON:
    """What was read, as JSON. Pure."""
    return InputsJSON(
        source=inputs.source,
        inference_services=inputs.count(ISVC_KIND),
        llm_inference_services=inputs.count(LLM_KIND),
        llm_inference_service_configs=inputs.llm_configs,
        gpu_components=gpu_components,
        local_model_caches=len(inputs.caches),
        default_deployment_mode=(inputs.config.default_deployment_mode if inputs.config else None),
        skipped_kinds=dict(inputs.skipped),
        notes=[str(n) for n in inputs.notes],
        broken=[
            BrokenJSON(source=b.source, object=b.object, problems=[str(p) for p in b.problems])
            for b in inputs.broken
        ],
    )


def cloud_json(cp: CloudPlan, primary: Scenario, catalog: Catalog) -> CloudJSON:
    """One provider's plan beside the others', as JSON. Pure."""
    scenarios = {
        sc.value: CloudScenarioJSON(
            cost_per_hour=_r(sp.cost_per_hour),
            ffd_cost_per_hour=_r(sp.ffd_cost_per_hour),
            lower_bound_cost_per_hour=(
                None if sp.lower_bound_cost_per_hour is None else _r(sp.lower_bound_cost_per_hour)
            ),
            gap=None if sp.gap is None else round(sp.gap, 6),
            nodes=sum(u.nodes for u in sp.pools),
            gpus=sum(u.nodes * u.pool.gpus for u in sp.pools),
            unplaced_pods=sum(u.pods for u in sp.unplaced),
        )
        for sc, sp in cp.plan.scenarios.items()
    }
    main = cp.plan.scenarios[primary]
    here = scenarios[primary.value]
    return CloudJSON(
        cloud=cp.cloud,
        catalog_pools=sum(1 for p in catalog.pools if cp.cloud in (ANY, p.cloud)),
        pools=_pools(main.pools),
        cost_per_hour=here["cost_per_hour"],
        lower_bound_cost_per_hour=here["lower_bound_cost_per_hour"],
        gap=here["gap"],
        ffd=BaselineJSON(pools=_pools(main.ffd_pools), cost_per_hour=here["ffd_cost_per_hour"]),
        savings_vs_ffd_per_hour=_r(main.ffd_cost_per_hour - main.cost_per_hour),
        nodes=here["nodes"],
        gpus=here["gpus"],
        unplaced_pods=cp.unplaced_pods,
        cannot_place=sorted({u.service for u in cp.plan.unplaceable}),
        scenarios=scenarios,
    )


def catalog_json(catalog: Catalog) -> CatalogJSON:
    """The catalog's pools and their prices, as JSON. Pure."""
    return CatalogJSON(
        source=catalog.source,
        pools=[
            CatalogPoolJSON(
                name=p.name,
                cloud=p.cloud,
                instance_type=p.instance_type,
                gpu_product=p.gpu_product,
                gpus_per_node=p.gpus,
                price_per_hour=p.price.per_hour,
                currency=p.price.currency,
                price_source=p.price.source,
                price_as_of=p.price.as_of,
                price_note=p.price.note,
            )
            for p in catalog.pools
        ],
    )


def build_report(
    clouds: Sequence[CloudPlan],
    frames: Sequence[ServiceFrame],
    inputs: Inputs,
    primary: Scenario,
    warnings: Sequence[str] = (),
    *,
    catalog: Catalog,
) -> Report:
    """The whole report document: the plan of ``clouds[0]`` (the ranked plans of each cloud,
    ``plan_clouds``'), compared with the others; ``frames`` are that plan's, ``catalog`` the
    whole catalog read. Pure."""
    plan = clouds[0].plan
    scenarios = {sc.value: scenario_json(sp) for sc, sp in plan.scenarios.items()}
    main = scenarios[primary.value]
    return Report(
        version=REPORT_VERSION,
        cloud=clouds[0].cloud,
        scenario=primary.value,
        pools=main["pools"],
        cost_per_hour=main["cost_per_hour"],
        lower_bound_cost_per_hour=main["lower_bound_cost_per_hour"],
        gap=main["gap"],
        ffd=main["ffd"],
        placements=main["placements"],
        unplaceable=[u for s in scenarios.values() for u in s["unplaceable"]],
        services=[service_json(f) for f in frames],
        scenarios=scenarios,
        clouds=[cloud_json(c, primary, catalog) for c in clouds],
        inputs=inputs_json(inputs, len(plan.demands)),
        catalog=catalog_json(catalog),
        solver=SolverJSON(
            time_limit_seconds=plan.options.time_limit_s,
            seed=plan.options.seed,
            workers=plan.options.workers,
            deterministic=plan.options.deterministic,
        ),
        warnings=list(warnings),
    )
