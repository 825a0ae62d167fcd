"""Everything one plan run reads, and the demand it asks the plan to place.

The catalogs and the traffic file must be right (any problem stops the run); the KServe objects
are read tolerantly (``inputs.sources``): every object that can be read is sized and planned,
and an object that cannot be read or sized is listed as broken beside the plan. Only when
nothing could be read at all does the run stop, with every problem.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, replace

from placement.fields import InputError, Problem
from planner.inputs.catalog import Catalog, keep_existing, load_catalog
from planner.inputs.cluster import kube_client, read_cluster
from planner.inputs.models import load_model_catalog
from planner.inputs.sources import Broken, Inputs, read_files
from planner.inputs.traffic import Traffic, load_traffic
from planner.packing.units import ComponentDemand, component_demand
from planner.settings import PlanSettings


@dataclass(frozen=True, slots=True)
class Loaded:
    """Everything read for one run, and the units it asks the plan to place. ``inputs.broken``
    includes the objects whose sizing failed."""

    catalog: Catalog
    traffic: Traffic
    inputs: Inputs
    demands: tuple[ComponentDemand, ...]


def read_inputs(args: argparse.Namespace) -> Inputs:
    """The KServe objects of ``--from`` files, else of the cluster; raises ``InputError``
    when the cluster cannot be read."""
    if args.paths:
        return read_files(args.paths, args.kserve_namespace)
    api = kube_client(args.kubeconfig, args.context)
    try:
        return read_cluster(api, args.namespace, args.kserve_namespace)
    finally:
        api.close()


def load(args: argparse.Namespace, settings: PlanSettings) -> Loaded:
    """Read the catalogs, traffic and services, and size every GPU component. Raises
    ``InputError`` with every problem when a catalog or the traffic file is wrong, or when no
    service could be read and some object could not."""
    catalog = load_catalog(args.catalog)
    if args.keep_existing:
        catalog = keep_existing(catalog)
    models = load_model_catalog(args.models)
    traffic = load_traffic(args.traffic)
    if settings.cold_start_budget_s is not None:
        traffic = replace(traffic, default_budget_s=settings.cold_start_budget_s)
    inputs = read_inputs(args)
    units = settings.units_for(inputs.config)
    demands: list[ComponentDemand] = []
    broken = list(inputs.broken)
    sized = []
    for isvc in inputs.services:
        problems: list[Problem] = []
        mine = [
            d
            for comp in isvc.components
            if (
                d := component_demand(
                    isvc,
                    comp,
                    catalog=catalog,
                    models=models,
                    traffic=traffic,
                    settings=units,
                    problems=problems,
                )
            )
            is not None
        ]
        if problems:
            broken.append(Broken(isvc.origin, f"{isvc.kind} {isvc.key}", tuple(problems)))
            continue
        sized.append(isvc)
        demands.extend(mine)
    inputs = replace(inputs, services=tuple(sized), broken=tuple(broken))
    if broken and not sized:
        raise InputError("", inputs.problems())
    return Loaded(catalog, traffic, inputs, tuple(demands))


def warnings(inputs: Inputs, demands: Sequence[ComponentDemand]) -> list[str]:
    """The report's notes: each component's, then what was read and left out."""
    out: list[str] = []
    for d in demands:
        out.extend(f"{d.service} {d.component}: {n}" for n in d.notes)
    if inputs.skipped:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(inputs.skipped.items()))
        out.append(f"ignored objects vramfit does not plan: {kinds}")
    cpu_only = [s.key for s in inputs.services if not any(d.service == s.key for d in demands)]
    if cpu_only:
        out.append(
            f"{len(cpu_only)} services ask for no NVIDIA GPU and are not planned: "
            f"{', '.join(cpu_only)}"
        )
    return list(dict.fromkeys(out))


def stderr_notes(inputs: Inputs, demands: Sequence[ComponentDemand]) -> list[str]:
    """What a person running the plan should see at once: every note on reading the inputs,
    and every model id that is a guess."""
    out = [str(n) for n in inputs.notes]
    out.extend(
        f"{d.service} {d.component}: model id guessed from {d.model_guessed_from}: "
        f"{d.sizing.model_id}"
        for d in demands
        if d.model_guessed_from
    )
    return list(dict.fromkeys(out))
