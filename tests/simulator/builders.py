"""Builders of the simulator's own node and pod for its tests (the core's are ``tests.builders``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import simpy

from placement.model import Demand
from placement.shape import NvLink, parse_nvlink
from simulator.catalog import BUILTIN_TYPES
from simulator.cluster import Node, Phase, ServiceState, SimPod
from simulator.scenario import Service, Traffic


def sim_node(
    nvlink: str | Sequence[Sequence[int]] = "all",
    *,
    held: Iterable[int] = (),
    node_type: str = "a100-80gb-8",
) -> Node:
    """Node ``n-0`` of a built-in type, its GPUs linked by ``nvlink`` ("all", "none" or islands
    of GPU indices), its ``held`` GPUs held by ``sim_pod()``."""
    base = BUILTIN_TYPES[node_type]
    gpus = base.shape.gpus
    links = (
        parse_nvlink(nvlink, gpus, "nvlink")
        if isinstance(nvlink, str)
        else NvLink.of(tuple(map(tuple, nvlink)), gpus)
    )
    t = dataclasses.replace(base, shape=dataclasses.replace(base.shape, nvlink=links))
    n = Node(simpy.Environment(), 0, "n-0", "n", t)
    holder = sim_pod()
    for i in held:
        n.gpus[i].holder = holder
    return n


def sim_pod(phase: Phase = Phase.PENDING) -> SimPod:
    """Pod ``s-1`` of a one-GPU service ``s``, in ``phase``."""
    spec = Service("s", "m", 1, 1, 1, Traffic("constant", 1.0))
    return SimPod("s-1", ServiceState(spec, Demand(gpus=1)), 0.0, phase=phase)
