"""Read KServe objects (InferenceService, the ``inferenceservice-config`` ConfigMap,
LocalModelCache) from raw JSON into frozen values the planner sizes.

Raw objects come from YAML files or the API server and are typed as ``TypedDict`` only at this
edge. Parsing is pure and collects every problem (unknown fields, negative replicas, bad
quantities) with the object and field path, so one run reports all of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from placement.demand import DemandError, gpu_count
from placement.quantity import QuantityError, parse_bytes, parse_milli
from planner.diagnostics import Problem

KSERVE_GROUP = "serving.kserve.io"
ISVC_VERSION = "v1beta1"
ISVC_PLURAL = "inferenceservices"
LMC_VERSION = "v1alpha1"
LMC_PLURAL = "localmodelcaches"
CONFIGMAP_NAME = "inferenceservice-config"

A_DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
A_AUTOSCALER_CLASS = "serving.kserve.io/autoscalerClass"
A_GPU_RESOURCE_TYPES = "serving.kserve.io/gpu-resource-types"

OTHER_GPU_RESOURCES = ("amd.com/gpu", "intel.com/gpu", "habana.ai/gaudi")

# KServe runtime defaults when a component leaves CPU and memory out
# (config/runtimes/kserve-huggingfaceserver.yaml: cpu 1, memory 2Gi).
DEFAULT_CPU_MILLI = 1000
DEFAULT_MEMORY = 2 * 1024**3

LEGACY_FRAMEWORKS = (
    "sklearn",
    "xgboost",
    "tensorflow",
    "pytorch",
    "triton",
    "onnx",
    "huggingface",
    "pmml",
    "lightgbm",
    "paddle",
)

_OBJECT_META = frozenset(
    {
        "name",
        "namespace",
        "labels",
        "annotations",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "finalizers",
        "ownerReferences",
        "managedFields",
        "generateName",
        "selfLink",
    }
)
_POD_SPEC = frozenset(
    {
        "containers",
        "initContainers",
        "ephemeralContainers",
        "volumes",
        "nodeSelector",
        "affinity",
        "tolerations",
        "serviceAccountName",
        "serviceAccount",
        "automountServiceAccountToken",
        "imagePullSecrets",
        "priorityClassName",
        "priority",
        "preemptionPolicy",
        "schedulerName",
        "securityContext",
        "hostNetwork",
        "hostIPC",
        "hostPID",
        "hostUsers",
        "nodeName",
        "runtimeClassName",
        "dnsPolicy",
        "dnsConfig",
        "restartPolicy",
        "terminationGracePeriodSeconds",
        "activeDeadlineSeconds",
        "enableServiceLinks",
        "hostAliases",
        "hostname",
        "subdomain",
        "overhead",
        "readinessGates",
        "shareProcessNamespace",
        "topologySpreadConstraints",
        "setHostnameAsFQDN",
        "os",
        "schedulingGates",
        "resourceClaims",
        "resources",
    }
)
_COMPONENT_EXTENSION = frozenset(
    {
        "minReplicas",
        "maxReplicas",
        "scaleTarget",
        "scaleMetric",
        "scaleMetricType",
        "autoScaling",
        "containerConcurrency",
        "timeout",
        "canaryTrafficPercent",
        "logger",
        "batcher",
        "labels",
        "annotations",
        "deploymentStrategy",
    }
)
_CONTAINER = frozenset(
    {
        "name",
        "image",
        "command",
        "args",
        "workingDir",
        "ports",
        "envFrom",
        "env",
        "resources",
        "resizePolicy",
        "restartPolicy",
        "volumeMounts",
        "volumeDevices",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "lifecycle",
        "terminationMessagePath",
        "terminationMessagePolicy",
        "imagePullPolicy",
        "securityContext",
        "stdin",
        "stdinOnce",
        "tty",
    }
)
_PREDICTOR_EXTENSION = _CONTAINER | {
    "storageUri",
    "storageUris",
    "runtimeVersion",
    "protocolVersion",
    "storage",
}
_MODEL = _PREDICTOR_EXTENSION | {"modelFormat", "runtime"}
_PREDICTOR = _POD_SPEC | _COMPONENT_EXTENSION | {"model", "workerSpec", *LEGACY_FRAMEWORKS}
_TRANSFORMER = _POD_SPEC | _COMPONENT_EXTENSION
_EXPLAINER = _POD_SPEC | _COMPONENT_EXTENSION | {"art"}
_WORKER = _POD_SPEC | {"tensorParallelSize", "pipelineParallelSize"}
_SPEC = frozenset({"predictor", "transformer", "explainer", "canary"})
_TOP = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})


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


@dataclass(frozen=True, slots=True)
class Component:
    """One component (predictor, transformer, explainer) of an InferenceService.

    ``gpus_per_pod`` is the head pod's ``nvidia.com/gpu``; for a multi-node group the workers
    ask for ``worker_gpus_per_pod`` each and the group needs ``tensor_parallel *
    pipeline_parallel`` GPUs in all. ``min_replicas`` is ``None`` when the manifest leaves it
    out (KServe then writes 1).
    """

    name: str
    shape: str
    model_format: str = ""
    runtime: str = ""
    storage_uri: str = ""
    gpus_per_pod: int = 0
    cpu_milli: int = DEFAULT_CPU_MILLI
    memory_bytes: int = DEFAULT_MEMORY
    min_replicas: int | None = None
    max_replicas: int = 0
    scale_target: int | None = None
    scale_metric: str = ""
    container_concurrency: int | None = None
    canary_traffic_percent: int | None = None
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    multi_node: bool = False
    worker_gpus_per_pod: int = 0
    worker_cpu_milli: int = 0
    worker_memory_bytes: int = 0
    placement: Placement = Placement()
    gpu_memory_utilization: float | None = None
    other_accelerators: tuple[str, ...] = ()


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

    default_deployment_mode: str = "Knative"
    source: str = "default (the shipped inferenceservice-config sets Serverless)"


@dataclass
class _Ctx:
    """Where we are while parsing one object, and the list problems go to."""

    where: str
    problems: list[Problem] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(f"{self.where}: {path}" if path else self.where, message))


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


def _mapping(ctx: _Ctx, value: object, path: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        ctx.add(path, f"expected an object, got {type(value).__name__}")
        return None
    return value


def _unknown(ctx: _Ctx, obj: Mapping[str, Any], known: frozenset[str], path: str) -> None:
    for k in obj:
        if k not in known:
            ctx.add(f"{path}.{k}" if path else str(k), "unknown field")


def _int(ctx: _Ctx, obj: Mapping[str, Any], key: str, path: str, minimum: int = 0) -> int | None:
    if key not in obj or obj[key] is None:
        return None
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, int):
        ctx.add(f"{path}.{key}", f"expected an integer, got {v!r}")
        return None
    if v < minimum:
        ctx.add(f"{path}.{key}", f"must be at least {minimum}, got {v}")
        return None
    return int(v)


def _cpu_milli(ctx: _Ctx, value: object, path: str) -> int:
    try:
        return parse_milli(value, path)
    except QuantityError as exc:
        ctx.add(path, f"{value!r} is not a valid CPU quantity ({exc.why})")
        return 0


def _resources(
    ctx: _Ctx, containers: Sequence[tuple[str, Mapping[str, Any]]]
) -> tuple[int, int, int, tuple[str, ...]]:
    """GPUs, CPU (millicores) and memory of a pod made of ``containers`` (path, container)."""
    cpu = mem = 0
    saw_cpu = saw_mem = False
    others: list[str] = []
    for path, c in containers:
        res = _mapping(ctx, c.get("resources"), f"{path}.resources") or {}
        requests = _mapping(ctx, res.get("requests"), f"{path}.resources.requests") or {}
        limits = _mapping(ctx, res.get("limits"), f"{path}.resources.limits") or {}
        for name in OTHER_GPU_RESOURCES:
            if name in requests or name in limits:
                others.append(name)
        if "cpu" in requests or "cpu" in limits:
            saw_cpu = True
            kind = "requests" if "cpu" in requests else "limits"
            raw_cpu = requests["cpu"] if kind == "requests" else limits["cpu"]
            cpu += _cpu_milli(ctx, raw_cpu, f"{path}.resources.{kind}.cpu")
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


def _engine_args(container: Mapping[str, Any]) -> dict[str, str]:
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


def _placement(ctx: _Ctx, comp: Mapping[str, Any], path: str) -> Placement:
    selector: list[tuple[str, str]] = []
    ns = _mapping(ctx, comp.get("nodeSelector"), f"{path}.nodeSelector") or {}
    for k, v in ns.items():
        selector.append((str(k), str(v)))
    terms: list[tuple[Requirement, ...]] = []
    aff = _mapping(ctx, comp.get("affinity"), f"{path}.affinity") or {}
    node_aff = _mapping(ctx, aff.get("nodeAffinity"), f"{path}.affinity.nodeAffinity") or {}
    req = (
        _mapping(
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
        t = _mapping(ctx, term, tpath) or {}
        reqs: list[Requirement] = []
        for ei, expr in enumerate(t.get("matchExpressions") or []):
            e = _mapping(ctx, expr, f"{tpath}.matchExpressions[{ei}]") or {}
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
        t = _mapping(ctx, tol, f"{path}.tolerations[{i}]") or {}
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


def _containers(
    ctx: _Ctx, comp: Mapping[str, Any], path: str
) -> list[tuple[str, Mapping[str, Any]]]:
    out: list[tuple[str, Mapping[str, Any]]] = []
    raw = comp.get("containers") or []
    if not isinstance(raw, list):
        ctx.add(f"{path}.containers", "expected a list")
        return out
    for i, c in enumerate(raw):
        cp = f"{path}.containers[{i}]"
        m = _mapping(ctx, c, cp)
        if m is not None:
            _unknown(ctx, m, _CONTAINER, cp)
            out.append((cp, m))
    return out


def _component(ctx: _Ctx, name: str, comp: Mapping[str, Any], path: str) -> Component | None:
    known = {"predictor": _PREDICTOR, "transformer": _TRANSFORMER, "explainer": _EXPLAINER}[name]
    _unknown(ctx, comp, known, path)
    containers = _containers(ctx, comp, path)
    shape = "containers"
    model_format = runtime = storage_uri = ""
    main: Mapping[str, Any] | None = None
    if name == "predictor":
        model = _mapping(ctx, comp.get("model"), f"{path}.model")
        frameworks = [f for f in LEGACY_FRAMEWORKS if comp.get(f) is not None]
        if model is not None and frameworks:
            ctx.add(path, f"sets both model and the legacy {frameworks[0]}; use one")
        if len(frameworks) > 1:
            ctx.add(path, f"sets several legacy frameworks ({', '.join(frameworks)}); use one")
        if model is not None:
            shape = "model"
            _unknown(ctx, model, _MODEL, f"{path}.model")
            fmt = _mapping(ctx, model.get("modelFormat"), f"{path}.model.modelFormat") or {}
            model_format = str(fmt.get("name", ""))
            runtime = str(model.get("runtime", ""))
            main = model
            containers.insert(0, (f"{path}.model", model))
        elif frameworks:
            shape = frameworks[0]
            fw = _mapping(ctx, comp.get(shape), f"{path}.{shape}")
            if fw is not None:
                _unknown(ctx, fw, _PREDICTOR_EXTENSION, f"{path}.{shape}")
                model_format = shape
                main = fw
                containers.insert(0, (f"{path}.{shape}", fw))
        elif not containers:
            ctx.add(path, "has no model, legacy framework or containers")
            return None
    if main is None and containers:
        main = containers[0][1]
    if main is not None:
        uri = main.get("storageUri")
        if uri is None and isinstance(main.get("storageUris"), list) and main["storageUris"]:
            first = main["storageUris"][0]
            uri = first.get("uri") if isinstance(first, Mapping) else first
        if uri is None:
            for env in main.get("env") or []:
                if isinstance(env, Mapping) and env.get("name") == "STORAGE_URI":
                    uri = env.get("value")
        storage_uri = str(uri or "")
    gpus, cpu, mem, others = _resources(ctx, containers)
    args = _engine_args(main) if main is not None else {}

    def arg_int(key: str) -> int | None:
        if key not in args:
            return None
        try:
            v = int(args[key])
        except ValueError:
            ctx.add(path, f"--{key}={args[key]!r} is not an integer")
            return None
        if v < 1:
            ctx.add(path, f"--{key} must be at least 1, got {v}")
            return None
        return v

    tp = arg_int("tensor-parallel-size") or 1
    pp = arg_int("pipeline-parallel-size") or 1
    util: float | None = None
    if "gpu-memory-utilization" in args:
        try:
            util = float(args["gpu-memory-utilization"])
            if not 0 < util <= 1:
                raise ValueError
        except ValueError:
            ctx.add(
                path,
                f"--gpu-memory-utilization={args['gpu-memory-utilization']!r} must be in (0, 1]",
            )
            util = None
    multi = False
    w_gpus = w_cpu = w_mem = 0
    worker = (
        _mapping(ctx, comp.get("workerSpec"), f"{path}.workerSpec") if name == "predictor" else None
    )
    if worker is not None:
        multi = True
        _unknown(ctx, worker, _WORKER, f"{path}.workerSpec")
        tp = _int(ctx, worker, "tensorParallelSize", f"{path}.workerSpec", 1) or 1
        pp = _int(ctx, worker, "pipelineParallelSize", f"{path}.workerSpec", 1) or 1
        wc = _containers(ctx, worker, f"{path}.workerSpec")
        if wc:
            w_gpus, w_cpu, w_mem, w_others = _resources(ctx, wc)
            others = tuple(sorted(set(others) | set(w_others)))
        else:
            w_gpus, w_cpu, w_mem = gpus, cpu, mem
    min_r = _int(ctx, comp, "minReplicas", path)
    max_r = _int(ctx, comp, "maxReplicas", path) or 0
    if min_r is not None and max_r and max_r < min_r:
        ctx.add(f"{path}.maxReplicas", f"{max_r} is below minReplicas {min_r}")
    canary = _int(ctx, comp, "canaryTrafficPercent", path)
    if canary is not None and canary > 100:
        ctx.add(f"{path}.canaryTrafficPercent", f"must be at most 100, got {canary}")
        canary = None
    target = _int(ctx, comp, "scaleTarget", path, 1)
    cc = _int(ctx, comp, "containerConcurrency", path)
    return Component(
        name=name,
        shape=shape,
        model_format=model_format,
        runtime=runtime,
        storage_uri=storage_uri,
        gpus_per_pod=gpus,
        cpu_milli=cpu,
        memory_bytes=mem,
        min_replicas=min_r,
        max_replicas=max_r,
        scale_target=target,
        scale_metric=str(comp.get("scaleMetric", "")),
        container_concurrency=cc,
        canary_traffic_percent=canary,
        tensor_parallel=tp,
        pipeline_parallel=pp,
        multi_node=multi,
        worker_gpus_per_pod=w_gpus,
        worker_cpu_milli=w_cpu,
        worker_memory_bytes=w_mem,
        placement=_placement(ctx, comp, path),
        gpu_memory_utilization=util,
        other_accelerators=others,
    )


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
    ctx = _Ctx(f"{origin}: InferenceService {namespace}/{name or '<unnamed>'}")
    before = len(ctx.problems)
    _unknown(ctx, doc, _TOP, "")
    if not isinstance(meta_raw, Mapping):
        ctx.add("metadata", "missing or not an object")
    else:
        _unknown(ctx, meta_raw, _OBJECT_META, "metadata")
    if not name:
        ctx.add("metadata.name", "missing")
    api = str(doc.get("apiVersion", ""))
    if api != f"{KSERVE_GROUP}/{ISVC_VERSION}":
        ctx.add("apiVersion", f"{api!r} is not read; expected {KSERVE_GROUP}/{ISVC_VERSION}")
    annotations_raw = _mapping(ctx, meta.get("annotations"), "metadata.annotations") or {}
    annotations = tuple(sorted((str(k), str(v)) for k, v in annotations_raw.items()))
    spec = _mapping(ctx, doc.get("spec"), "spec")
    components: list[Component] = []
    notes: list[str] = []
    if spec is None:
        ctx.add("spec", "missing")
    else:
        _unknown(ctx, spec, _SPEC, "spec")
        if spec.get("predictor") is None:
            ctx.add("spec.predictor", "missing")
        for cname in ("predictor", "transformer", "explainer"):
            comp = _mapping(ctx, spec.get(cname), f"spec.{cname}")
            if comp is not None:
                c = _component(ctx, cname, comp, f"spec.{cname}")
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
    ctx = _Ctx(f"{origin}: LocalModelCache {name}")
    spec = _mapping(ctx, doc.get("spec"), "spec") or {}
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
        return ClusterConfig(source=f"{where} (no deploy key; KServe default Knative)")
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
