"""GPUs that InferenceService and LLMInferenceService pods claim through DRA, counted per pod.

A pod may get its GPUs from Dynamic Resource Allocation instead of ``nvidia.com/gpu``: its pod
spec lists ``resourceClaims``, each made per pod from a ``ResourceClaimTemplate`` of its
namespace (``resource.k8s.io/v1``), whose ``spec.spec.devices.requests[]`` ask for ``exactly``
a ``count`` (default 1) of devices of a ``deviceClassName``. KServe's managed DRA
(``kserve/kserve@aaac4e29``, ``pkg/constants/constants.go``,
``pkg/controller/v1alpha2/llmisvc/managed_dra.go``) makes that template for an
LLMInferenceService annotated ``serving.kserve.io/exp-dra-device-class`` (the class), with
``serving.kserve.io/exp-dra-device-count`` devices (default 1), and gives the claim to every
workload pod (template, worker, prefill template and worker).

``with_claimed_gpus`` adds to each component's GPUs per pod (and per worker pod) what the
claims of its pods ask for in the GPU classes (``placement.dra.GPU_CLASSES``), on top of any
``nvidia.com/gpu``. An LLMInferenceService's claims are read from its own workload pod specs
(claims in a preset it names are not). A pod's named ResourceClaim is shared by the pods that name it, not made
per pod, and a template the inputs do not hold cannot be counted: both are noted. Pure.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from placement.dra import GPU_CLASSES, Request, template_requests
from planner.inputs.component import Component
from planner.inputs.kserve import InferenceService, object_key

TEMPLATE_KIND = "ResourceClaimTemplate"
TEMPLATE_API = "resource.k8s.io/v1"
TEMPLATE_PLURAL = "resourceclaimtemplates"
A_DRA_CLASS = "serving.kserve.io/exp-dra-device-class"
A_DRA_COUNT = "serving.kserve.io/exp-dra-device-count"

Templates = Mapping[tuple[str, str], tuple[Request, ...]]
"""(namespace, name) of a ResourceClaimTemplate -> its requests."""


def read_templates(docs: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], tuple[Request, ...]]:
    """The requests of each raw ResourceClaimTemplate, by namespace and name (pure)."""
    return {object_key(doc): template_requests(doc) for doc in docs}


def _gpus(requests: Iterable[Request], classes: Collection[str]) -> int:
    return sum(r.count for r in requests if r.device_class in classes and r.count > 0)


def _pod_gpus(
    pod: object,
    namespace: str,
    templates: Templates,
    *,
    classes: Collection[str],
    notes: list[str],
    where: str,
) -> int:
    """GPUs one pod spec's claims ask for per pod."""
    if not isinstance(pod, Mapping):
        return 0
    total = 0
    for entry in pod.get("resourceClaims") or []:
        if not isinstance(entry, Mapping):
            continue
        template = entry.get("resourceClaimTemplateName")
        if isinstance(entry.get("resourceClaimName"), str):
            notes.append(
                f"{where}: ResourceClaim {entry['resourceClaimName']} is shared by the pods that "
                "name it, not made per pod: its devices are not counted per pod"
            )
        elif isinstance(template, str):
            requests = templates.get((namespace, template))
            if requests is None:
                notes.append(
                    f"{where}: ResourceClaimTemplate {namespace}/{template} is not in the "
                    "inputs: the GPUs it claims are not counted"
                )
            else:
                total += _gpus(requests, classes)
    return total


def _annotated(service: InferenceService, classes: Collection[str], notes: list[str]) -> int:
    """GPUs per pod KServe's managed DRA claims for an LLMInferenceService (its annotations)."""
    cls = (service.annotation(A_DRA_CLASS) or "").strip()
    if not cls or cls not in classes:
        return 0
    raw = (service.annotation(A_DRA_COUNT) or "").strip()
    if not raw:
        return 1
    if not raw.isdigit() or int(raw) < 1:
        notes.append(f"annotation {A_DRA_COUNT}: {raw!r} is not a positive count: read as 1")
        return 1
    return int(raw)


def _pods(
    service: InferenceService, raw: Mapping[str, Any], component: Component
) -> tuple[object, object]:
    """The raw pod specs of a component: its head pod and its worker pod (or ``None``)."""
    spec = raw.get("spec") if isinstance(raw.get("spec"), Mapping) else {}
    assert isinstance(spec, Mapping)
    if service.kind == "InferenceService":
        comp = spec.get(component.name)
        worker = comp.get("workerSpec") if isinstance(comp, Mapping) else None
        return comp, worker
    workload = spec.get("prefill") if component.name == "prefill" else spec
    if not isinstance(workload, Mapping):
        return None, None
    template, worker = workload.get("template"), workload.get("worker")
    return (template if template is not None else worker), worker


def with_claimed_gpus(
    service: InferenceService,
    raw: Mapping[str, Any],
    templates: Templates,
    classes: Collection[str] = GPU_CLASSES,
) -> InferenceService:
    """``service`` with the GPUs its pods claim through DRA added to each component's GPUs per
    pod (``raw`` is the object it was read from); what cannot be counted is noted (pure)."""
    notes: list[str] = []
    annotated = _annotated(service, classes, notes) if service.kind != "InferenceService" else 0
    components = []
    for c in service.components:
        head_raw, worker_raw = _pods(service, raw, c)
        where = f"{c.name}"
        count = functools.partial(
            _pod_gpus, namespace=service.namespace, templates=templates, classes=classes
        )
        head = annotated + count(head_raw, notes=notes, where=where)
        worker = 0
        if c.multi_node:
            worker = annotated + count(worker_raw, notes=notes, where=f"{where} workers")
        if head or worker:
            notes.append(
                f"{c.name}: {head} GPU(s) per pod"
                + (f" and {worker} per worker pod" if c.multi_node else "")
                + " claimed through DRA ResourceClaims"
            )
            components.append(
                dataclasses.replace(
                    c,
                    gpus_per_pod=c.gpus_per_pod + head,
                    worker_gpus_per_pod=c.worker_gpus_per_pod + worker,
                )
            )
        else:
            components.append(c)
    if not notes:
        return service
    return dataclasses.replace(
        service, components=tuple(components), notes=(*service.notes, *notes)
    )


__all__ = [
    "A_DRA_CLASS",
    "A_DRA_COUNT",
    "TEMPLATE_API",
    "TEMPLATE_KIND",
    "TEMPLATE_PLURAL",
    "read_templates",
    "with_claimed_gpus",
]
