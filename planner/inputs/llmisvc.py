"""Read KServe LLMInferenceServices (``serving.kserve.io/v1alpha2``, and ``v1alpha1``) with
their LLMInferenceServiceConfig presets into the shape the planner sizes.

The effective spec is the presets merged as KServe merges them (``llm_merge``). Each workload
becomes a component: ``workload`` alone, or ``decode`` and ``prefill`` when ``spec.prefill``
splits them. Pods and GPUs follow KServe's controller (``workload_single_node.go``,
``workload_multi_node.go``, ``ParallelismSpec.GetSize``):

- without ``worker``, a Deployment of ``replicas`` pods built from ``template``;
- with ``worker``, a LeaderWorkerSet of ``replicas`` groups, each of ``size`` pods: one leader
  (``template``, or ``worker`` when there is no template) and ``size - 1`` workers, where
  ``size`` is ``max(data / dataLocal, 1)`` (integer division, each 1 when unset) for data
  parallelism, else ``pipeline``;
- KServe derives no GPU count: each pod asks for the ``nvidia.com/gpu`` its containers name.
  vLLM runs ``tensor x dataLocal`` ranks per pod, so a different count is noted.

``replicas`` is a fixed count (1 when unset); ``scaling`` ranges from ``minReplicas`` (1 when
unset) to ``maxReplicas``, down to zero only when KEDA's ``idleReplicaCount`` is 0. The model
is ``spec.model.uri``, served as ``spec.model.name``. The router asks for no GPU and is not
planned. Unknown fields are notes; the fields read are checked as KServe's webhook checks them.
Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from placement.fields import Fields, Problem
from planner.inputs.component import Component
from planner.inputs.kserve import InferenceService, object_key, under
from planner.inputs.kserve_fields import OBJECT_META, TOP
from planner.inputs.llm_fields import (
    BASE_REF,
    KEDA,
    LLM_CONFIG_KIND,
    LLM_KIND,
    MODEL,
    PARALLELISM,
    POD,
    SCALING,
    SPEC,
    WORKLOAD,
    WVA,
)
from planner.inputs.llm_merge import merge_all, preset_names
from planner.inputs.pod_spec import (
    PodResources,
    engine_args,
    read_containers,
    read_placement,
    read_resources,
)


@dataclass(frozen=True, slots=True)
class LLMConfig:
    """An LLMInferenceServiceConfig: a partial spec other services merge in by name."""

    namespace: str
    name: str
    origin: str
    spec: Mapping[str, Any] = field(default_factory=dict)


Configs = Mapping[tuple[str, str], LLMConfig]


def parse_llm_config(
    doc: Mapping[str, Any], origin: str, problems: list[Problem], notes: list[Problem]
) -> LLMConfig | None:
    """Read one raw LLMInferenceServiceConfig: its own fields are checked (notes for unknown
    ones), its spec kept raw for merging. ``None`` when it is broken. Pure."""
    namespace, name = object_key(doc)
    where = f"{origin}: {LLM_CONFIG_KIND} {namespace}/{name or '<unnamed>'}"
    found: list[Problem] = []
    f = _object(doc, found)
    if not name:
        f.bad("metadata.name", "missing")
    _read_spec(f.child("spec", SPEC), service=False)
    problems.extend(under(where, f.problems))
    notes.extend(under(where, found))
    if f.problems or not name:
        return None
    spec = doc.get("spec")
    return LLMConfig(namespace, name, origin, spec if isinstance(spec, Mapping) else {})


def _object(doc: Mapping[str, Any], notes: list[Problem]) -> Fields:
    f = Fields(doc, "", known=TOP, unknown="note", notes=notes)
    if not isinstance(doc.get("metadata"), Mapping):
        f.bad("metadata", "missing or not an object")
    else:
        f.child("metadata", OBJECT_META).string_map("annotations")
    return f


@dataclass(frozen=True, slots=True)
class _Spec:
    """What one read of a spec found: its components, the autoscaler class, and notes."""

    components: tuple[Component, ...]
    autoscaler_class: str
    notes: tuple[str, ...]


def _resolve(
    doc: Mapping[str, Any], configs: Configs, kserve_namespace: str, notes: list[str]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The effective spec (presets, baseRefs, own spec merged) and the presets merged in."""
    namespace, _ = object_key(doc)
    own = doc.get("spec") if isinstance(doc.get("spec"), Mapping) else {}
    assert isinstance(own, Mapping)

    def find(name: str) -> LLMConfig | None:
        return configs.get((namespace, name)) or configs.get((kserve_namespace, name))

    refs = [
        str(r.get("name"))
        for r in own.get("baseRefs") or []
        if isinstance(r, Mapping) and r.get("name")
    ]
    found: list[LLMConfig] = []
    for ref in refs:
        cfg = find(ref)
        if cfg is None:
            notes.append(
                f"baseRef {ref}: no {LLM_CONFIG_KIND} of that name in {namespace} or "
                f"{kserve_namespace} among the inputs (KServe would not deploy it); planned "
                "without it"
            )
        else:
            found.append(cfg)
    shape = merge_all([*(c.spec for c in found), own])
    status = doc.get("status") if isinstance(doc.get("status"), Mapping) else {}
    assert isinstance(status, Mapping)
    pinned = status.get("annotations") if isinstance(status.get("annotations"), Mapping) else {}
    assert isinstance(pinned, Mapping)
    presets = [c for n in preset_names(shape, pinned) if (c := find(n)) is not None]
    used = [*presets, *found]
    return merge_all([*(c.spec for c in used), own]), tuple(c.name for c in used)


def read_llm_service(
    doc: Mapping[str, Any],
    origin: str,
    *,
    configs: Configs,
    kserve_namespace: str,
    problems: list[Problem],
    notes: list[Problem],
) -> InferenceService | None:
    """Read one raw LLMInferenceService with its presets from ``configs`` (keyed by namespace
    and name; a name is looked up in the service's namespace, then ``kserve_namespace``).

    Unknown fields of its own spec are notes; the merged spec's values are checked, each
    problem under ``origin: LLMInferenceService namespace/name``. ``None`` when it is broken.
    Pure.
    """
    namespace, name = object_key(doc)
    where = f"{origin}: {LLM_KIND} {namespace}/{name or '<unnamed>'}"
    found: list[Problem] = []
    own = _object(doc, found)
    if not name:
        own.bad("metadata.name", "missing")
    # A preset may supply the model's URI: only the merged spec must name one.
    _read_spec(own.child("spec", SPEC, required=True), service=False)
    notes.extend(under(where, found))
    kept: list[str] = []
    spec, used = _resolve(doc, configs, kserve_namespace, kept)
    merged = Fields({"spec": spec}, "", unknown="ignore")
    read = _read_spec(merged.child("spec", SPEC), service=True)
    problems.extend(under(where, own.problems))
    # What only the merge brings (a preset's bad value, a URI no one names), said once.
    extra = [p for p in merged.problems if p not in own.problems]
    problems.extend(under(f"{where} (merged with {', '.join(used)})" if used else where, extra))
    if own.problems or extra:
        return None
    meta = doc.get("metadata")
    assert isinstance(meta, Mapping)
    annotations = {
        **_strings(meta.get("annotations")),
        **_strings(spec.get("annotations")),
    }
    if used:
        kept.append(f"spec merged over the {LLM_CONFIG_KIND}s {', '.join(used)}, in that order")
    kept.extend(read.notes)
    return InferenceService(
        namespace=namespace,
        name=name,
        origin=origin,
        annotations=tuple(sorted(annotations.items())),
        deployment_mode="Standard",
        autoscaler_class=read.autoscaler_class,
        components=read.components,
        notes=tuple(kept),
        kind=LLM_KIND,
    )


def _strings(raw: object) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): str(v) for k, v in raw.items() if isinstance(v, str | int | float)}


def _read_spec(spec: Fields, *, service: bool) -> _Spec:
    """Read a spec's model and workloads. A service must name its model's URI."""
    model = spec.child("model", MODEL)
    uri = model.text("uri", "", required=service)
    served = model.text("name", "")
    for i, ref in enumerate(spec.children("baseRefs", BASE_REF)):
        if not ref.text("name", ""):
            spec.bad(f"baseRefs[{i}].name", "missing")
    prefill = spec.child("prefill", WORKLOAD)
    notes: list[str] = []
    main = "decode" if spec.has("prefill") else "workload"
    decode, autoscaler = _workload(spec, main, uri, served, notes)
    comps = [c for c in (decode,) if c is not None]
    if spec.has("prefill"):
        comp, _ = _workload(prefill, "prefill", uri, served, notes)
        comps.extend(c for c in (comp,) if c is not None)
    for section in ("router", "tracing", "storageInitializer", "kvCacheOffloading"):
        spec.child(section, unknown="ignore")
    return _Spec(tuple(comps), autoscaler, tuple(notes))


@dataclass(frozen=True, slots=True)
class _Parallelism:
    tensor: int
    pipeline: int
    data: int
    data_local: int
    expert: bool
    size: int
    data_parallel: bool


def _parallelism(w: Fields) -> _Parallelism:
    """``parallelism`` as KServe's webhook checks it, and the LeaderWorkerSet size."""
    p = w.child("parallelism", PARALLELISM)
    tensor = p.integer("tensor", None, minimum=1)
    pipeline = p.integer("pipeline", None, minimum=1)
    data = p.integer("data", None, minimum=1)
    local = p.integer("dataLocal", None, minimum=1)
    expert = p.flag("expert", False)
    dp = data is not None or local is not None
    if dp and pipeline is not None:
        p.bad("", "cannot set both pipeline and data (or dataLocal) parallelism")
    if (data is None) != (local is None):
        p.bad("dataLocal" if local is None else "data", "data and dataLocal must be set together")
    if w.has("worker") and not dp and pipeline is None:
        w.bad("worker", "needs data or pipeline parallelism in parallelism")
    # ParallelismSpec.GetSize: data / dataLocal for data parallelism, else pipeline.
    size = max(max(data or 1, 1) // max(local or 1, 1), 1) if dp else pipeline or 1
    return _Parallelism(tensor or 1, pipeline or 1, data or 1, local or 1, bool(expert), size, dp)


def _replicas(w: Fields) -> tuple[int, int, str]:
    """``(min, max, autoscaler class)`` of a workload: ``replicas`` fixed, or ``scaling``."""
    fixed = w.integer("replicas", None, minimum=0)
    if not w.has("scaling"):
        n = 1 if fixed is None else fixed
        return n, n, ""
    if fixed is not None:
        w.bad("scaling", "replicas and scaling are mutually exclusive")
    scaling = w.child("scaling", SCALING)
    low = scaling.integer("minReplicas", 1, minimum=1)
    high = scaling.integer("maxReplicas", low, minimum=1, required=True)
    if high < low:
        scaling.bad("minReplicas", f"{low} exceeds maxReplicas {high}")
    wva = scaling.child("wva", WVA)
    keda = scaling.child("keda", KEDA) if scaling.has("keda") else wva.child("keda", KEDA)
    idle = keda.integer("idleReplicaCount", None, minimum=0)
    if idle is not None and idle >= low:
        keda.bad("idleReplicaCount", f"{idle} must be below minReplicas {low}")
    uses_keda = scaling.has("keda") or wva.has("keda")
    return (0 if idle == 0 else low), high, ("keda" if uses_keda else "hpa")


def _pod(w: Fields, key: str) -> tuple[PodResources, Fields] | None:
    """A pod template's resources (summed over its containers) and the template itself."""
    if not w.has(key):
        return None
    pod = w.child(key, POD)
    containers = read_containers(pod)
    if not containers:
        return PodResources(0, 0, 0, ()), pod
    return read_resources(containers), pod


def _memory_utilization(pod: Fields) -> float | None:
    """``--gpu-memory-utilization`` of the main container's args or ``VLLM_ADDITIONAL_ARGS``
    (a value that is no number, such as a preset's template text, is left alone)."""
    for c in pod.children("containers"):
        words = [str(w) for w in (c.get("command") or []) + (c.get("args") or [])]
        for env in c.get("env") or []:
            if isinstance(env, Mapping) and env.get("name") == "VLLM_ADDITIONAL_ARGS":
                words.append(str(env.get("value") or ""))
        raw = engine_args({"args": words}).get("gpu-memory-utilization")
        try:
            value = float(raw) if raw is not None else None
        except ValueError:
            value = None
        if value is not None and 0 < value <= 1:
            return value
    return None


def _workload(
    w: Fields, name: str, uri: str, served: str, notes: list[str]
) -> tuple[Component | None, str]:
    """One workload (decode, prefill or the only one) as a component, and its autoscaler;
    a GPU count that differs from what vLLM runs per pod is noted."""
    low, high, autoscaler = _replicas(w)
    par = _parallelism(w)
    leader = _pod(w, "template")
    worker = _pod(w, "worker")
    if leader is None:
        leader = worker
    if leader is None:
        return None, autoscaler
    head, pod = leader
    work = worker[0] if worker is not None else head
    if worker is not None and par.data_parallel and par.data % par.data_local:
        notes.append(
            f"{name}: data {par.data} is not a multiple of dataLocal {par.data_local}: KServe "
            f"runs {par.size} pods per replica"
        )
    expected = par.tensor * (par.data_local if par.data_parallel else 1)
    if head.gpus and head.gpus != expected:
        ranks = f"tensor {par.tensor}" + (
            f" x dataLocal {par.data_local}" if par.data_parallel else ""
        )
        notes.append(
            f"{name} pods ask for {head.gpus} GPUs; its parallelism runs {expected} vLLM "
            f"ranks per pod ({ranks}): planned with {head.gpus}"
        )
    comp = Component(
        name=name,
        shape="llm",
        storage_uri=uri,
        gpus_per_pod=head.gpus,
        cpu_milli=head.cpu_milli,
        memory_bytes=head.memory_bytes,
        min_replicas=low,
        max_replicas=high,
        tensor_parallel=par.tensor,
        pipeline_parallel=par.pipeline if not par.data_parallel else 1,
        multi_node=worker is not None,
        worker_gpus_per_pod=work.gpus if worker is not None else 0,
        worker_cpu_milli=work.cpu_milli if worker is not None else 0,
        worker_memory_bytes=work.memory_bytes if worker is not None else 0,
        placement=read_placement(pod),
        gpu_memory_utilization=_memory_utilization(pod),
        other_accelerators=tuple(
            sorted(set(head.other_accelerators) | set(work.other_accelerators))
        ),
        pods_per_replica=par.size if worker is not None else 1,
        data_parallel=par.data,
        expert_parallel=par.expert,
        model_name=served,
    )
    return comp, autoscaler
