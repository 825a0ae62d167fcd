"""Read KServe objects (InferenceService, the ``inferenceservice-config`` ConfigMap,
LocalModelCache) from raw JSON into frozen values the planner sizes.

Raw objects come from YAML files or the API server and are typed as ``TypedDict`` only at this
edge. Parsing is pure and collects every problem of an object (negative replicas, bad
quantities) with the object and field path, so one run reports all of them. Real manifests
carry fields vramfit does not read: an unknown field is a note naming its path, never a
problem; only the fields vramfit uses are checked strictly. An object's components are read by
``component`` (their pods by ``pod_spec``) against the fields listed in ``kserve_fields``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from documents import parse_document
from placement.fields import DocumentError, Fields, Problem, quote
from planner.inputs.component import Component, read_component
from planner.inputs.kserve_fields import COMPONENTS, OBJECT_META, SPEC, TOP

KSERVE_GROUP = "serving.kserve.io"
ISVC_VERSION = "v1beta1"
ISVC_PLURAL = "inferenceservices"
LMC_VERSION = "v1alpha1"
LMC_PLURAL = "localmodelcaches"
CONFIGMAP_NAME = "inferenceservice-config"
KSERVE_NAMESPACE = "kserve"
"""The namespace KServe installs into, where its ``inferenceservice-config`` ConfigMap lives."""
KSERVE_DEFAULT_DEPLOYMENT_MODE = "Knative"
"""The deployment mode KServe uses when its ConfigMap names none."""

A_DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
A_AUTOSCALER_CLASS = "serving.kserve.io/autoscalerClass"
A_GPU_RESOURCE_TYPES = "serving.kserve.io/gpu-resource-types"


class RawMetadata(TypedDict, total=False):
    """``metadata`` of a raw Kubernetes object (the fields the planner reads)."""

    name: str
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]


class RawObject(TypedDict, total=False):
    """A raw Kubernetes object as read from YAML or the API server."""

    apiVersion: str
    kind: str
    metadata: RawMetadata
    spec: dict[str, Any]
    data: dict[str, str]
    status: dict[str, Any]


@dataclass(frozen=True, slots=True)
class InferenceService:
    """A served model as the planner needs it: a v1beta1 InferenceService, or an
    LLMInferenceService (``kind``) read into the same shape, its workloads as components.

    ``label`` names it in plans and reports (``namespace/name``, unless another kind holds
    that name too)."""

    namespace: str
    name: str
    origin: str
    annotations: tuple[tuple[str, str], ...] = ()
    deployment_mode: str = ""
    autoscaler_class: str = ""
    components: tuple[Component, ...] = ()
    notes: tuple[str, ...] = ()
    kind: str = "InferenceService"
    label: str = ""

    @property
    def key(self) -> str:
        """How plans and reports name it: ``namespace/name`` unless ``label`` says else."""
        return self.label or f"{self.namespace}/{self.name}"

    def annotation(self, name: str) -> str | None:
        """The value of an annotation, if set."""
        for k, v in self.annotations:
            if k == name:
                return v
        return None


@dataclass(frozen=True, slots=True)
class LocalModelCache:
    """A KServe LocalModelCache: weights of ``source_model_uri`` kept on nodes' local disks."""

    name: str
    source_model_uri: str
    model_size_bytes: int
    node_groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """What the planner reads from the ``inferenceservice-config`` ConfigMap."""

    default_deployment_mode: str = KSERVE_DEFAULT_DEPLOYMENT_MODE
    source: str = "default (the shipped inferenceservice-config sets Serverless)"


def normalize_deployment_mode(value: str) -> str | None:
    """KServe's spellings of a deployment mode to its current names; ``None`` if unknown.

    Pure. ``Serverless`` is the legacy name of ``Knative``; ``RawDeployment`` of ``Standard``.
    """
    v = value.strip().lower()
    return {
        "serverless": "Knative",
        "knative": "Knative",
        "rawdeployment": "Standard",
        "standard": "Standard",
        "modelmesh": "ModelMesh",
    }.get(v)


def is_inference_service(doc: Mapping[str, Any]) -> bool:
    """Whether a raw object is a KServe InferenceService (any served version)."""
    api = str(doc.get("apiVersion", ""))
    return doc.get("kind") == "InferenceService" and api.startswith(f"{KSERVE_GROUP}/")


def under(prefix: str, found: Iterable[Problem]) -> list[Problem]:
    """Problems read with paths inside one object, placed under ``prefix`` (the object)."""
    return [Problem(f"{prefix}: {p.where}" if p.where else prefix, p.message) for p in found]


def _deployment_mode(meta: Fields, annotations: Mapping[str, str]) -> str:
    """The object's own deployment mode annotation, normalized ("" when it sets none)."""
    raw = annotations.get(A_DEPLOYMENT_MODE)
    if raw is None:
        return ""
    mode = normalize_deployment_mode(raw)
    if mode is None:
        meta.bad(f"annotations[{A_DEPLOYMENT_MODE}]", f"unknown deployment mode {quote(raw)}")
        return ""
    return mode


def _components(f: Fields) -> tuple[list[Component], list[str]]:
    """The components of ``spec`` (predictor first), and notes on what is not sized."""
    if not f.has("spec"):
        f.bad("spec", "missing")
        return [], []
    spec = f.child("spec", SPEC)
    if not spec.has("predictor"):
        spec.bad("predictor", "missing")
    components: list[Component] = []
    for name, known in COMPONENTS.items():
        if spec.has(name):
            c = read_component(spec.child(name, known), name)
            if c is not None:
                components.append(c)
    notes = []
    if spec.get("canary"):
        notes.append(
            "spec.canary (named canaries) is not sized; the rollout scenario uses "
            "canaryTrafficPercent"
        )
    return components, notes


def object_key(doc: Mapping[str, Any]) -> tuple[str, str]:
    """``(namespace, name)`` of a raw object (namespace ``default`` and name "" when left
    out). Pure."""
    meta = doc.get("metadata")
    meta_map = meta if isinstance(meta, Mapping) else {}
    return str(meta_map.get("namespace") or "default"), str(meta_map.get("name") or "")


def parse_inference_service(
    doc: Mapping[str, Any],
    origin: str,
    problems: list[Problem],
    notes: list[Problem] | None = None,
) -> InferenceService | None:
    """Read one raw InferenceService; append every problem found to ``problems`` and a note
    for every field vramfit does not know to ``notes``, each under ``origin: InferenceService
    namespace/name``.

    Pure. Returns ``None`` when the object is too broken to plan (its problems are listed).
    """
    meta_raw = doc.get("metadata")
    namespace, name = object_key(doc)
    found: list[Problem] = []
    f = Fields(doc, "", known=TOP, unknown="note", notes=found)
    if isinstance(meta_raw, Mapping):
        meta = f.child("metadata", OBJECT_META)
    else:
        f.bad("metadata", "missing or not an object")
        meta = Fields(None, "metadata", f.problems)
    if not name:
        meta.bad("name", "missing")
    api = str(doc.get("apiVersion", ""))
    if api != f"{KSERVE_GROUP}/{ISVC_VERSION}":
        f.bad("apiVersion", f"{quote(api)} is not read; expected {KSERVE_GROUP}/{ISVC_VERSION}")
    annotations = meta.string_map("annotations")
    mode = _deployment_mode(meta, annotations)
    components, kept = _components(f)
    where = f"{origin}: InferenceService {namespace}/{name or '<unnamed>'}"
    problems.extend(under(where, f.problems))
    if notes is not None:
        notes.extend(under(where, found))
    if f.problems or not name:
        return None
    return InferenceService(
        namespace=namespace,
        name=name,
        origin=origin,
        annotations=tuple(sorted(annotations.items())),
        deployment_mode=mode,
        autoscaler_class=annotations.get(A_AUTOSCALER_CLASS, ""),
        components=tuple(components),
        notes=tuple(kept),
    )


def parse_local_model_cache(
    doc: Mapping[str, Any], origin: str, problems: list[Problem]
) -> LocalModelCache | None:
    """Read a raw LocalModelCache (``serving.kserve.io/v1alpha1``). Pure."""
    meta = doc.get("metadata")
    name = str(meta.get("name") or "<unnamed>") if isinstance(meta, Mapping) else "<unnamed>"
    spec = Fields(doc, "").child("spec")
    uri = spec.text("sourceModelUri", "", required=True)
    size = spec.size("modelSize", 0)
    groups = spec.items("nodeGroups")
    problems.extend(under(f"{origin}: LocalModelCache {name}", spec.problems))
    if spec.problems:
        return None
    return LocalModelCache(name, uri, size, tuple(str(g) for g in groups))


def parse_cluster_config(
    doc: Mapping[str, Any], origin: str, problems: list[Problem]
) -> ClusterConfig:
    """The default deployment mode from the ``inferenceservice-config`` ConfigMap. Pure.

    Its ``deploy`` key holds JSON such as ``{"defaultDeploymentMode": "Serverless"}``.
    """
    where = f"{origin}: ConfigMap {CONFIGMAP_NAME}"
    data = doc.get("data") if isinstance(doc.get("data"), Mapping) else {}
    assert isinstance(data, Mapping)
    raw = data.get("deploy")
    if raw is None:
        return ClusterConfig(
            source=f"{where} (no deploy key; KServe default {KSERVE_DEFAULT_DEPLOYMENT_MODE})"
        )
    try:
        deploy = parse_document(str(raw), f"{where}: data.deploy", syntax="json")
    except DocumentError as exc:
        problems.append(Problem(exc.source, exc.detail))
        return ClusterConfig()
    mode_raw = deploy.get("defaultDeploymentMode", "") if isinstance(deploy, Mapping) else ""
    mode = normalize_deployment_mode(str(mode_raw))
    if mode is None:
        problems.append(
            Problem(
                f"{where}: data.deploy.defaultDeploymentMode", f"unknown mode {quote(mode_raw)}"
            )
        )
        return ClusterConfig()
    return ClusterConfig(default_deployment_mode=mode, source=where)
