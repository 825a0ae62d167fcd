"""One cloud per plan: a cluster runs in one provider, so a plan never mixes providers.

The catalog names each pool's provider (its ``cloud``). ``plan_clouds`` plans each provider it is
asked for on that provider's pools alone (the solver and the first-fit-decreasing baseline both
see only them) and ranks the plans: providers that place every pod first, then the cheapest in
the primary scenario. By default every provider of the catalog is planned and compared; ``ANY``
plans the whole catalog as one, mixing providers, which no single cluster can run (kept for
comparison only). Pure apart from the solver's clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from planner.inputs.catalog import Catalog
from planner.packing.solve import SolveOptions
from planner.packing.units import ComponentDemand, Scenario
from planner.plan import Plan, Unplaceable, plan_all

ANY = "any"
NAMED_CLOUDS = ("aws", "gcp", "azure")
NO_CLOUD = "(no cloud)"


def cloud_label(cloud: str) -> str:
    """How a report names a provider: its catalog name, or ``NO_CLOUD`` for pools without one."""
    return cloud or NO_CLOUD


def catalog_clouds(catalog: Catalog) -> tuple[str, ...]:
    """The providers of ``catalog``, in the order its pools first name them ("" for pools that
    name none)."""
    return tuple(dict.fromkeys(p.cloud for p in catalog.pools))


def catalog_for(catalog: Catalog, cloud: str) -> Catalog:
    """The pools of one provider (every pool for ``ANY``)."""
    if cloud == ANY:
        return catalog
    return dataclasses.replace(catalog, pools=tuple(p for p in catalog.pools if p.cloud == cloud))


def demand_for(demand: ComponentDemand, catalog: Catalog) -> ComponentDemand:
    """``demand`` with its allowed, rejected and excluded pools narrowed to ``catalog``'s, so
    its reason for being unplaceable speaks of those pools only."""
    names = {p.name for p in catalog.pools}
    return dataclasses.replace(
        demand,
        allowed=tuple(n for n in demand.allowed if n in names),
        rejected=tuple((n, why) for n, why in demand.rejected if n in names),
        pinned_out=tuple(n for n in demand.pinned_out if n in names),
    )


def cloud_problem(cloud: str | None, catalog: Catalog) -> str | None:
    """Why ``--cloud`` cannot be planned with ``catalog``, or ``None`` when it can."""
    if cloud is None or cloud == ANY or cloud in catalog_clouds(catalog):
        return None
    known = ", ".join(cloud_label(c) for c in catalog_clouds(catalog))
    return f"--cloud {cloud}: the catalog has no pool of that cloud (its clouds: {known})"


# How ``plan.unplaceable_reason`` speaks of the catalog, and the same of one cloud's pools.
_CATALOG_WORDS = (
    ("no pool of the catalog", "no {cloud} pool of the catalog"),
    ("the catalog has no pool", "the catalog has no {cloud} pool"),
    ("no pool can run it", "no {cloud} pool can run it"),
)


def _worded(u: Unplaceable, cloud: str) -> Unplaceable:
    """``u`` with its reason naming the cloud whose pools were planned."""
    reason = u.reason
    for catalog_words, cloud_words in _CATALOG_WORDS:
        reason = reason.replace(catalog_words, cloud_words.format(cloud=cloud_label(cloud)))
    return dataclasses.replace(u, reason=reason)


def _for_cloud(plan: Plan, cloud: str) -> Plan:
    """``plan`` with the reasons of what it cannot place naming ``cloud``."""
    if cloud == ANY:
        return plan
    scenarios = {
        sc: dataclasses.replace(sp, unplaced=tuple(_worded(u, cloud) for u in sp.unplaced))
        for sc, sp in plan.scenarios.items()
    }
    unplaceable = tuple(_worded(u, cloud) for u in plan.unplaceable)
    return dataclasses.replace(plan, scenarios=scenarios, unplaceable=unplaceable)


@dataclass(frozen=True, slots=True)
class CloudPlan:
    """The plan of one provider (``ANY``: of the whole catalog, providers mixed)."""

    cloud: str
    plan: Plan

    @property
    def unplaced_pods(self) -> int:
        """Pods of every scenario that this provider's pools cannot run or have no room for."""
        return sum(u.pods for u in self.plan.unplaceable)

    def cost_per_hour(self, scenario: Scenario) -> float:
        """Cost of the planned nodes of ``scenario`` per hour."""
        return self.plan.scenarios[scenario].cost_per_hour


def ranked(plans: Sequence[CloudPlan], primary: Scenario) -> tuple[CloudPlan, ...]:
    """Providers that place every pod first, then the cheapest in ``primary``; ties by name."""
    return tuple(sorted(plans, key=lambda c: (c.unplaced_pods, c.cost_per_hour(primary), c.cloud)))


def plan_clouds(
    demands: tuple[ComponentDemand, ...],
    catalog: Catalog,
    options: SolveOptions,
    scenarios: tuple[Scenario, ...],
    *,
    primary: Scenario,
    cloud: str | None = None,
    progress: Callable[[str, Scenario, str], None] | None = None,
) -> tuple[CloudPlan, ...]:
    """Plan ``cloud`` alone, or each provider of the catalog when ``cloud`` is ``None``;
    ranked by ``ranked``. ``progress`` hears (cloud, scenario, message)."""
    clouds = catalog_clouds(catalog) if cloud is None else (cloud,)
    plans = []
    for c in clouds:
        pools = catalog_for(catalog, c)
        mine = demands if c == ANY else tuple(demand_for(d, pools) for d in demands)
        cb = None if progress is None else (lambda sc, msg, c=c: progress(c, sc, msg))
        plans.append(CloudPlan(c, _for_cloud(plan_all(mine, pools, options, scenarios, cb), c)))
    return ranked(plans, primary)
