"""Burst simulator: replays scale-ups on a simulated GPU cluster and compares placement policies.

``vramfit-plan simulate`` runs one scenario (a cluster, InferenceServices and their traffic)
under kube-scheduler's default profile and under vramfit's policies, with the same traffic and
seed, and reports failed loads, pending pods, cold starts, concurrent loads and GPU cost.
"""

from __future__ import annotations

from simulator.cli import DEFAULTS
from simulator.engine import simulate
from simulator.metrics import summarize
from simulator.render import console_for, print_table
from simulator.scenario_files import builtin_scenario


def demo_main() -> int:
    """Run the default scenario (the built-in morning burst) under every policy and print the
    comparison table."""
    scenario = builtin_scenario(DEFAULTS.scenario)
    rows = [summarize(r) for r in simulate(scenario, DEFAULTS.policies)]
    print_table(console_for(), scenario, scenario.seed, rows)
    return 0
