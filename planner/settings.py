"""The settings of one plan run: everything ``vramfit-plan plan``'s options decide, typed and
defaulted in one place.

The command line reads its defaults from here, so each default is stated once; ``errors``
checks every setting at start-up and returns every problem at once. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from planner.inputs.kserve import ClusterConfig
from planner.packing.solve import SolveOptions
from planner.packing.units import SCENARIOS, DemandSettings, Scenario


@dataclass(frozen=True, slots=True)
class PlanSettings:
    """How to size, which scenarios to plan, and how to solve them.

    ``deployment_mode`` overrides the cluster's ``inferenceservice-config`` (``None``: the
    cluster's, else KServe's default); ``cold_start_budget_s`` overrides the traffic file's
    default budget (``None``: the file's, else the shipped one). ``primary`` is the scenario the
    report's top-level fields describe. ``cloud`` is the one provider to plan (``"any"``: the
    whole catalog, providers mixed); ``None`` plans each provider of the catalog on its own and
    reports the cheapest, compared with the others.
    """

    units: DemandSettings = field(default_factory=DemandSettings)
    deployment_mode: str | None = None
    cold_start_budget_s: float | None = None
    scenarios: tuple[Scenario, ...] = SCENARIOS
    primary: Scenario = Scenario.PEAK
    solve: SolveOptions = field(default_factory=SolveOptions)
    cloud: str | None = None

    def units_for(self, config: ClusterConfig | None) -> DemandSettings:
        """The sizing rules, with the deployment mode from ``deployment_mode``, else the
        cluster's ``config``, else KServe's default."""
        if self.deployment_mode is not None:
            return replace(self.units, default_deployment_mode=self.deployment_mode)
        if config is not None:
            return replace(self.units, default_deployment_mode=config.default_deployment_mode)
        return self.units

    def errors(self) -> list[str]:
        """Every invalid setting, as messages naming the option."""
        out = self.units.headroom.errors()
        if self.scenarios and self.primary not in self.scenarios:
            out.append(f"--scenario {self.primary.value} is not among --scenarios")
        out.extend(self.solve.errors())
        return out
