"""Read KServe objects (InferenceService, the ``inferenceservice-config`` ConfigMap,
LocalModelCache) from raw JSON into frozen values the planner sizes.

Raw objects come from YAML files or the API server and are typed as ``TypedDict`` only at this
edge. Parsing is pure and collects every problem (unknown fields, negative replicas, bad
quantities) with the object and field path, so one run reports all of them. An object's
components are read by ``component`` (their pods by ``pod_spec``) against the fields listed in
``kserve_fields``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from placement.quantity import QuantityError, parse_bytes
from planner.diagnostics import Problem
from planner.inputs.component import Component, read_component
from planner.inputs.kserve_fields import OBJECT_META, SPEC, TOP
from planner.inputs.raw import ReadContext, mapping, unknown_fields

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
    """An InferenceService as the planner needs it."""

    namespace: str
    name: str
    origin: str
    annotations: tuple[tuple[str, str], ...] = ()
    deployment_mode: str = ""
    autoscaler_class: str = ""
    components: tuple[Component, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

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


def parse_inference_service(
    doc: Mapping[str, Any], origin: str, problems: list[Problem]
) -> InferenceService | None:
    """Read one raw InferenceService; append every problem found to ``problems``.

    Pure. Returns ``None`` when the object is too broken to plan (its problems are listed).
    """
    meta_raw = doc.get("metadata")
    meta = meta_raw if isinstance(meta_raw, Mapping) else {}
    name = str(meta.get("name", "") or "")
    namespace = str(meta.get("namespace", "") or "default")
    ctx = ReadContext(f"{origin}: InferenceService {namespace}/{name or '<unnamed>'}")
    before = len(ctx.problems)
    unknown_fields(ctx, doc, TOP, "")
    if not isinstance(meta_raw, Mapping):
        ctx.add("metadata", "missing or not an object")
    else:
        unknown_fields(ctx, meta_raw, OBJECT_META, "metadata")
    if not name:
        ctx.add("metadata.name", "missing")
    api = str(doc.get("apiVersion", ""))
    if api != f"{KSERVE_GROUP}/{ISVC_VERSION}":
        ctx.add("apiVersion", f"{api!r} is not read; expected {KSERVE_GROUP}/{ISVC_VERSION}")
    annotations_raw = mapping(ctx, meta.get("annotations"), "metadata.annotations") or {}
    annotations = tuple(sorted((str(k), str(v)) for k, v in annotations_raw.items()))
    spec = mapping(ctx, doc.get("spec"), "spec")
    components: list[Component] = []
    notes: list[str] = []
    if spec is None:
        ctx.add("spec", "missing")
    else:
        unknown_fields(ctx, spec, SPEC, "spec")
        if spec.get("predictor") is None:
            ctx.add("spec.predictor", "missing")
        for cname in ("predictor", "transformer", "explainer"):
            comp = mapping(ctx, spec.get(cname), f"spec.{cname}")
            if comp is not None:
                c = read_component(ctx, cname, comp, f"spec.{cname}")
                if c is not None:
                    components.append(c)
        if spec.get("canary"):
            notes.append(
                "spec.canary (named canaries) is not sized; the rollout scenario uses "
                "canaryTrafficPercent"
            )
    mode_raw = annotations_raw.get(A_DEPLOYMENT_MODE)
    mode = ""
    if mode_raw is not None:
        m = normalize_deployment_mode(str(mode_raw))
        if m is None:
            ctx.add(
                f"metadata.annotations[{A_DEPLOYMENT_MODE}]",
                f"unknown deployment mode {mode_raw!r}",
            )
        else:
            mode = m
    problems.extend(ctx.problems)
    if len(ctx.problems) > before or not name:
        return None
    return InferenceService(
        namespace=namespace,
        name=name,
        origin=origin,
        annotations=annotations,
        deployment_mode=mode,
        autoscaler_class=str(annotations_raw.get(A_AUTOSCALER_CLASS, "")),
        components=tuple(components),
        notes=tuple(notes),
    )


def parse_local_model_cache(
    doc: Mapping[str, Any], origin: str, problems: list[Problem]
) -> LocalModelCache | None:
    """Read a raw LocalModelCache (``serving.kserve.io/v1alpha1``). Pure."""
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), Mapping) else {}
    assert isinstance(meta, Mapping)
    name = str(meta.get("name", "<unnamed>"))
    ctx = ReadContext(f"{origin}: LocalModelCache {name}")
    spec = mapping(ctx, doc.get("spec"), "spec") or {}
    uri = spec.get("sourceModelUri")
    if not isinstance(uri, str) or not uri:
        ctx.add("spec.sourceModelUri", "missing")
    size = 0
    if "modelSize" in spec:
        try:
            size = parse_bytes(spec["modelSize"], "spec.modelSize")
        except QuantityError as exc:
            ctx.add("spec.modelSize", exc.detail)
    groups = spec.get("nodeGroups") or []
    if not isinstance(groups, list):
        ctx.add("spec.nodeGroups", "expected a list")
        groups = []
    problems.extend(ctx.problems)
    if ctx.problems:
        return None
    return LocalModelCache(name, str(uri), size, tuple(str(g) for g in groups))


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
        deploy = json.loads(str(raw))
    except ValueError as exc:
        problems.append(Problem(f"{where}: data.deploy", f"not JSON ({exc})"))
        return ClusterConfig()
    mode_raw = deploy.get("defaultDeploymentMode", "") if isinstance(deploy, Mapping) else ""
    mode = normalize_deployment_mode(str(mode_raw))
    if mode is None:
        problems.append(
            Problem(f"{where}: data.deploy.defaultDeploymentMode", f"unknown mode {mode_raw!r}")
        )
        return ClusterConfig()
    return ClusterConfig(default_deployment_mode=mode, source=where)
