"""The pod-level parts of an InferenceService component: resources, vLLM engine arguments,
and where its pods may run (nodeSelector, required node affinity, tolerations).

KServe builds each component's pods from these fields; the planner reads the GPUs, CPU and
memory they ask for, the tensor and pipeline parallelism the engine is told, and the node
constraints that decide which pools may run them. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from placement.demand import DemandError, gpu_count
from placement.quantity import QuantityError, parse_bytes
from planner.inputs.kserve_fields import CONTAINER
from planner.inputs.raw import ReadContext, cpu_milli, mapping, unknown_fields

OTHER_GPU_RESOURCES = ("amd.com/gpu", "intel.com/gpu", "habana.ai/gaudi")

# KServe runtime defaults when a component leaves CPU and memory out
# (config/runtimes/kserve-huggingfaceserver.yaml: cpu 1, memory 2Gi).
DEFAULT_CPU_MILLI = 1000
DEFAULT_MEMORY = 2 * 1024**3


@dataclass(frozen=True, slots=True)
class Toleration:
    """A pod toleration (``operator`` Equal or Exists)."""

    key: str
    operator: str
    value: str
    effect: str


@dataclass(frozen=True, slots=True)
class Requirement:
    """One node-affinity match expression: ``key`` ``operator`` (In, NotIn, Exists, ...)."""

    key: str
    operator: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a component's pods may run: nodeSelector, required node affinity, tolerations.

    ``affinity_terms`` are ORed; the requirements inside one term are ANDed.
    """

    node_selector: tuple[tuple[str, str], ...] = ()
    affinity_terms: tuple[tuple[Requirement, ...], ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    node_name: str = ""


def read_resources(
    ctx: ReadContext, containers: Sequence[tuple[str, Mapping[str, Any]]]
) -> tuple[int, int, int, tuple[str, ...]]:
    """GPUs, CPU (millicores) and memory of a pod made of ``containers`` (path, container)."""
    cpu = mem = 0
    saw_cpu = saw_mem = False
    others: list[str] = []
    for path, c in containers:
        res = mapping(ctx, c.get("resources"), f"{path}.resources") or {}
        requests = mapping(ctx, res.get("requests"), f"{path}.resources.requests") or {}
        limits = mapping(ctx, res.get("limits"), f"{path}.resources.limits") or {}
        for name in OTHER_GPU_RESOURCES:
            if name in requests or name in limits:
                others.append(name)
        if "cpu" in requests or "cpu" in limits:
            saw_cpu = True
            kind = "requests" if "cpu" in requests else "limits"
            raw_cpu = requests["cpu"] if kind == "requests" else limits["cpu"]
            cpu += cpu_milli(ctx, raw_cpu, f"{path}.resources.{kind}.cpu")
        if "memory" in requests or "memory" in limits:
            saw_mem = True
            kind = "requests" if "memory" in requests else "limits"
            raw = requests["memory"] if kind == "requests" else limits["memory"]
            try:
                mem += parse_bytes(raw, f"{path}.resources.{kind}.memory")
            except QuantityError as exc:
                ctx.add(f"{path}.resources.{kind}.memory", exc.detail)
    gpus = 0
    try:
        gpus = gpu_count({"spec": {"containers": [c for _, c in containers]}})
    except DemandError as exc:
        ctx.add(containers[0][0] if containers else "", str(exc))
    return (
        gpus,
        cpu if saw_cpu else DEFAULT_CPU_MILLI,
        mem if saw_mem else DEFAULT_MEMORY,
        tuple(sorted(set(others))),
    )


_ARG = re.compile(
    r"^--(tensor-parallel-size|pipeline-parallel-size|gpu-memory-utilization)(?:=(.*))?$"
)


def engine_args(container: Mapping[str, Any]) -> dict[str, str]:
    """vLLM engine arguments found in a container's command and args."""
    words: list[str] = []
    for key in ("command", "args"):
        v = container.get(key)
        if isinstance(v, list):
            for w in v:
                if isinstance(w, str):
                    words.extend(w.split())
    found: dict[str, str] = {}
    for i, w in enumerate(words):
        m = _ARG.match(w)
        if m:
            value = (
                m.group(2)
                if m.group(2) is not None
                else (words[i + 1] if i + 1 < len(words) else "")
            )
            found[m.group(1)] = value
    return found


def read_placement(ctx: ReadContext, comp: Mapping[str, Any], path: str) -> Placement:
    """nodeSelector, required node affinity, tolerations and nodeName of a pod spec."""
    selector: list[tuple[str, str]] = []
    ns = mapping(ctx, comp.get("nodeSelector"), f"{path}.nodeSelector") or {}
    for k, v in ns.items():
        selector.append((str(k), str(v)))
    terms: list[tuple[Requirement, ...]] = []
    aff = mapping(ctx, comp.get("affinity"), f"{path}.affinity") or {}
    node_aff = mapping(ctx, aff.get("nodeAffinity"), f"{path}.affinity.nodeAffinity") or {}
    req = (
        mapping(
            ctx,
            node_aff.get("requiredDuringSchedulingIgnoredDuringExecution"),
            f"{path}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution",
        )
        or {}
    )
    raw_terms = req.get("nodeSelectorTerms") or []
    if not isinstance(raw_terms, list):
        ctx.add(f"{path}.affinity.nodeAffinity...nodeSelectorTerms", "expected a list")
        raw_terms = []
    for ti, term in enumerate(raw_terms):
        tpath = f"{path}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[{ti}]"
        t = mapping(ctx, term, tpath) or {}
        reqs: list[Requirement] = []
        for ei, expr in enumerate(t.get("matchExpressions") or []):
            e = mapping(ctx, expr, f"{tpath}.matchExpressions[{ei}]") or {}
            op = str(e.get("operator", ""))
            if op not in ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"):
                ctx.add(f"{tpath}.matchExpressions[{ei}].operator", f"unknown operator {op!r}")
                continue
            values = e.get("values") or []
            reqs.append(Requirement(str(e.get("key", "")), op, tuple(str(v) for v in values)))
        terms.append(tuple(reqs))
    tols: list[Toleration] = []
    raw_tols = comp.get("tolerations") or []
    if not isinstance(raw_tols, list):
        ctx.add(f"{path}.tolerations", "expected a list")
        raw_tols = []
    for i, tol in enumerate(raw_tols):
        t = mapping(ctx, tol, f"{path}.tolerations[{i}]") or {}
        tols.append(
            Toleration(
                key=str(t.get("key", "")),
                operator=str(t.get("operator", "Equal")),
                value=str(t.get("value", "")),
                effect=str(t.get("effect", "")),
            )
        )
    return Placement(
        node_selector=tuple(sorted(selector)),
        affinity_terms=tuple(terms),
        tolerations=tuple(tols),
        node_name=str(comp.get("nodeName") or ""),
    )


def read_containers(
    ctx: ReadContext, comp: Mapping[str, Any], path: str
) -> list[tuple[str, Mapping[str, Any]]]:
    """The pod spec's containers, each with its path, checked for unknown fields."""
    out: list[tuple[str, Mapping[str, Any]]] = []
    raw = comp.get("containers") or []
    if not isinstance(raw, list):
        ctx.add(f"{path}.containers", "expected a list")
        return out
    for i, c in enumerate(raw):
        cp = f"{path}.containers[{i}]"
        m = mapping(ctx, c, cp)
        if m is not None:
            unknown_fields(ctx, m, CONTAINER, cp)
            out.append((cp, m))
    return out
