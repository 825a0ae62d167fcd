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
from placement.fields import Fields, quote
from placement.quantity import QuantityError, parse_milli
from planner.inputs.kserve_fields import CONTAINER

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


_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")


@dataclass(frozen=True, slots=True)
class PodResources:
    """What one pod asks for: NVIDIA GPUs, CPU (millicores), memory (bytes), and the other
    accelerators it names (which the planner does not plan)."""

    gpus: int
    cpu_milli: int
    memory_bytes: int
    other_accelerators: tuple[str, ...]


def _first(sections: Sequence[Fields], name: str) -> Fields | None:
    """The section (requests, else limits, as the scheduler reads them) that sets ``name``."""
    return next((section for section in sections if name in section.raw), None)


def _cpu(section: Fields, value: object) -> int:
    """Millicores of a CPU request; 0 (and a problem) when it does not parse."""
    try:
        return parse_milli(value, section.where("cpu"))
    except QuantityError as exc:
        section.bad("cpu", f"{quote(value)} is not a valid CPU quantity ({exc.why})")
        return 0


def read_resources(containers: Sequence[Fields]) -> PodResources:
    """GPUs, CPU and memory of a pod made of ``containers``, summed; KServe's runtime defaults
    for CPU and memory when no container sets them."""
    cpu = mem = 0
    saw_cpu = saw_mem = False
    others: set[str] = set()
    for c in containers:
        res = c.child("resources")
        sections = (res.child("requests"), res.child("limits"))
        for section in sections:
            others.update(name for name in OTHER_GPU_RESOURCES if name in section.raw)
        if (at := _first(sections, "cpu")) is not None:
            saw_cpu = True
            cpu += _cpu(at, at.raw["cpu"])
        if (at := _first(sections, "memory")) is not None:
            saw_mem = True
            mem += at.size("memory", 0)
    gpus = 0
    try:
        gpus = gpu_count({"spec": {"containers": [c.raw for c in containers]}})
    except DemandError as exc:
        containers[0].bad("", str(exc))
    return PodResources(
        gpus,
        cpu if saw_cpu else DEFAULT_CPU_MILLI,
        mem if saw_mem else DEFAULT_MEMORY,
        tuple(sorted(others)),
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


def _affinity_terms(pod: Fields) -> tuple[tuple[Requirement, ...], ...]:
    """The required node affinity's terms (ORed), each a tuple of requirements (ANDed)."""
    required = (
        pod.child("affinity")
        .child("nodeAffinity")
        .child("requiredDuringSchedulingIgnoredDuringExecution")
    )
    terms: list[tuple[Requirement, ...]] = []
    for term in required.children("nodeSelectorTerms"):
        reqs: list[Requirement] = []
        for expr in term.children("matchExpressions"):
            op = str(expr.get("operator") or "")
            if op not in _OPERATORS:
                expr.bad("operator", f"unknown operator {quote(op)}")
                continue
            values = expr.get("values") or []
            reqs.append(Requirement(str(expr.get("key") or ""), op, tuple(str(v) for v in values)))
        terms.append(tuple(reqs))
    return tuple(terms)


def read_placement(pod: Fields) -> Placement:
    """nodeSelector, required node affinity, tolerations and nodeName of a pod spec."""
    tolerations = tuple(
        Toleration(
            key=str(t.get("key") or ""),
            operator=str(t.get("operator") or "Equal"),
            value=str(t.get("value") or ""),
            effect=str(t.get("effect") or ""),
        )
        for t in pod.children("tolerations")
    )
    return Placement(
        node_selector=tuple(sorted(pod.string_map("nodeSelector").items())),
        affinity_terms=_affinity_terms(pod),
        tolerations=tolerations,
        node_name=str(pod.get("nodeName") or ""),
    )


def read_containers(pod: Fields) -> list[Fields]:
    """The pod spec's containers, each checked for unknown fields."""
    return pod.children("containers", CONTAINER)
