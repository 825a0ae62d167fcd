"""How many replicas of a component each scenario runs, as KServe scales it.

- ``min``: the replicas that are always on (``minReplicas``, 1 when left out, as KServe writes;
  an LLMInferenceService's ``replicas``, or ``scaling.minReplicas`` and 0 when KEDA's
  ``idleReplicaCount`` is 0);
- ``peak``: ``maxReplicas`` (or the traffic profile's peak when the scale metric is rps);
- ``rollout``: peak plus the canary revision's share while ``canaryTrafficPercent`` is set;
- ``cold-burst``: the always-on replicas plus one replica of every scale-to-zero component,
  all starting at once.

KServe's v1beta1 multi-node groups (``workerSpec``) do not autoscale; an LLMInferenceService's
LeaderWorkerSet does. Pure.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass

from planner.inputs.component import Component
from planner.inputs.kserve import InferenceService
from planner.inputs.traffic import Traffic


class Scenario(enum.StrEnum):
    """The demand situations the planner prices."""

    MIN = "min"
    PEAK = "peak"
    ROLLOUT = "rollout"
    COLD_BURST = "cold-burst"


SCENARIOS = tuple(Scenario)


@dataclass(frozen=True, slots=True)
class Replicas:
    """Replicas per scenario, the always-on ones, and whether it scales to zero."""

    per_scenario: Mapping[Scenario, int]
    min_replicas: int
    scale_to_zero: bool


def _peak_from_traffic(comp: Component, traffic: Traffic, key: str) -> int | None:
    profile = traffic.profile(key)
    if not profile.hourly_requests or comp.scale_metric != "rps" or not comp.scale_target:
        return None
    peak_rps = max(profile.hourly_requests) / 3600.0
    return max(1, math.ceil(peak_rps / comp.scale_target))


def replicas(
    isvc: InferenceService, comp: Component, mode: str, traffic: Traffic, notes: list[str]
) -> Replicas:
    """The replicas of ``comp`` per scenario; a rule that changes what the manifest asks for
    adds a note. Pure."""
    min_r = 1 if comp.min_replicas is None else comp.min_replicas
    scale_to_zero = min_r == 0
    fixed_groups = comp.multi_node and isvc.kind == "InferenceService"
    if scale_to_zero and mode == "Standard" and isvc.autoscaler_class not in ("keda", "external"):
        notes.append("minReplicas 0 in Standard mode with HPA cannot scale to zero: planned as 1")
        min_r, scale_to_zero = 1, False
    if fixed_groups and min_r == 0:
        notes.append("multi-node groups do not autoscale: planned as 1 replica")
        min_r, scale_to_zero = 1, False
    peak = comp.max_replicas
    from_traffic = _peak_from_traffic(comp, traffic, isvc.key)
    if from_traffic is not None:
        peak = min(from_traffic, comp.max_replicas) if comp.max_replicas else from_traffic
    if not peak:
        peak = max(min_r, 1)
        notes.append(f"maxReplicas unset (unlimited): peak assumes {peak}; set maxReplicas")
    if fixed_groups:
        peak = max(min_r, 1)
    peak = max(peak, min_r)
    canary = 0
    if comp.canary_traffic_percent is not None and 0 < comp.canary_traffic_percent < 100:
        canary = max(1, math.ceil(peak * comp.canary_traffic_percent / 100))
    per_scenario = {
        Scenario.MIN: min_r,
        Scenario.PEAK: peak,
        Scenario.ROLLOUT: peak + canary,
        Scenario.COLD_BURST: max(min_r, 1),
    }
    return Replicas(per_scenario, min_r, scale_to_zero)
