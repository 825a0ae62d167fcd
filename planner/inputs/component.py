"""One component (predictor, transformer or explainer) of an InferenceService, read whole.

A predictor comes in two shapes, the ``model:`` field or a legacy per-framework field
(``huggingface:``, ``pytorch:``, ...), and may add ``containers`` and a ``workerSpec`` for a
multi-node group; a transformer or explainer is a pod spec. The reader finds the container
that serves the model, its storage URI, its resources and parallelism, and the replica and
rollout settings KServe scales it by. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from placement.fields import Fields
from planner.inputs.kserve_fields import LEGACY_FRAMEWORKS, MODEL, PREDICTOR_EXTENSION, WORKER
from planner.inputs.pod_spec import (
    DEFAULT_CPU_MILLI,
    DEFAULT_MEMORY,
    Placement,
    PodResources,
    engine_args,
    read_containers,
    read_placement,
    read_resources,
)


@dataclass(frozen=True, slots=True)
class Component:
    """One component (predictor, transformer, explainer) of an InferenceService.

    ``gpus_per_pod`` is the head pod's ``nvidia.com/gpu``; for a multi-node group the workers
    ask for ``worker_gpus_per_pod`` each and the group needs ``tensor_parallel *
    pipeline_parallel`` GPUs in all. ``min_replicas`` is ``None`` when the manifest leaves it
    out (KServe then writes 1).

    An LLMInferenceService workload (decode, prefill, or its only workload) states its group
    size: ``pods_per_replica`` is the LeaderWorkerSet's size (1 leader and the rest workers),
    and ``data_parallel`` and ``expert_parallel`` say how its weights spread over the GPUs;
    ``model_name`` is the name it serves the model under (``spec.model.name``).
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
    placement: Placement = field(default_factory=Placement)
    gpu_memory_utilization: float | None = None
    other_accelerators: tuple[str, ...] = ()
    pods_per_replica: int | None = None
    data_parallel: int = 1
    expert_parallel: bool = False
    model_name: str = ""


@dataclass(frozen=True, slots=True)
class _Serving:
    """How a predictor names what it serves: its shape (``model``, a legacy framework, or
    ``containers``), the model format and runtime, and the container that loads the model."""

    shape: str
    model_format: str
    runtime: str
    main: Fields | None


def _serving(comp: Fields, name: str, containers: list[Fields]) -> _Serving | None:
    """The serving shape of component ``name``; the model or framework container goes first
    in ``containers``. ``None`` (a problem) for a predictor with nothing to serve."""
    if name != "predictor":
        return _Serving("containers", "", "", containers[0] if containers else None)
    frameworks = [fw for fw in LEGACY_FRAMEWORKS if comp.has(fw)]
    if comp.has("model") and frameworks:
        comp.bad("", f"sets both model and the legacy {frameworks[0]}; use one")
    if len(frameworks) > 1:
        comp.bad("", f"sets several legacy frameworks ({', '.join(frameworks)}); use one")
    if comp.has("model"):
        model = comp.child("model", MODEL)
        containers.insert(0, model)
        model_format = str(model.child("modelFormat").get("name") or "")
        return _Serving("model", model_format, str(model.get("runtime") or ""), model)
    if frameworks:
        framework = comp.child(frameworks[0], PREDICTOR_EXTENSION)
        containers.insert(0, framework)
        return _Serving(frameworks[0], frameworks[0], "", framework)
    if not containers:
        comp.bad("", "has no model, legacy framework or containers")
        return None
    return _Serving("containers", "", "", containers[0])


def storage_uri(main: Mapping[str, Any]) -> str:
    """Where the serving container loads its model from: ``storageUri``, else the first of
    ``storageUris``, else its ``STORAGE_URI`` environment variable ("" when none). Pure."""
    uri = main.get("storageUri")
    listed = main.get("storageUris")
    if uri is None and isinstance(listed, list) and listed:
        uri = listed[0].get("uri") if isinstance(listed[0], Mapping) else listed[0]
    if uri is None:
        for env in main.get("env") or []:
            if isinstance(env, Mapping) and env.get("name") == "STORAGE_URI":
                uri = env.get("value")
    return str(uri or "")


@dataclass(frozen=True, slots=True)
class _Engine:
    """What the engine's command line says: tensor and pipeline parallelism, and the share of
    each GPU it may use."""

    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    gpu_memory_utilization: float | None = None


def _engine(comp: Fields, main: Fields | None) -> _Engine:
    """The vLLM arguments of the serving container; a bad one is a problem of ``comp``."""
    args = engine_args(main.raw) if main is not None else {}

    def count(key: str) -> int:
        if key not in args:
            return 1
        try:
            v = int(args[key])
        except ValueError:
            comp.bad("", f"--{key}={args[key]!r} is not an integer")
            return 1
        if v < 1:
            comp.bad("", f"--{key} must be at least 1, got {v}")
            return 1
        return v

    util: float | None = None
    if "gpu-memory-utilization" in args:
        raw = args["gpu-memory-utilization"]
        try:
            util = float(raw)
        except ValueError:
            util = None
        if util is None or not 0 < util <= 1:
            comp.bad("", f"--gpu-memory-utilization={raw!r} must be in (0, 1]")
            util = None
    return _Engine(count("tensor-parallel-size"), count("pipeline-parallel-size"), util)


@dataclass(frozen=True, slots=True)
class _Worker:
    """A multi-node group's worker pods (``workerSpec``): their resources and the group's
    parallelism."""

    resources: PodResources
    tensor_parallel: int
    pipeline_parallel: int


def _worker(comp: Fields, head: PodResources) -> _Worker:
    """The ``workerSpec`` of a predictor; workers without containers ask what the head asks."""
    worker = comp.child("workerSpec", WORKER)
    tp = worker.integer("tensorParallelSize", 1, minimum=1)
    pp = worker.integer("pipelineParallelSize", 1, minimum=1)
    containers = read_containers(worker)
    resources = read_resources(containers) if containers else head
    return _Worker(resources, tp, pp)


def read_component(comp: Fields, name: str) -> Component | None:
    """Read component ``name`` (predictor, transformer, explainer) from ``comp``; ``None``
    when it has nothing to serve. Problems go to ``comp``'s list."""
    containers = read_containers(comp)
    serving = _serving(comp, name, containers)
    if serving is None:
        return None
    main = serving.main
    resources = read_resources(containers)
    engine = _engine(comp, main)
    tp, pp = engine.tensor_parallel, engine.pipeline_parallel
    worker: _Worker | None = None
    others = resources.other_accelerators
    if name == "predictor" and comp.has("workerSpec"):
        worker = _worker(comp, resources)
        tp, pp = worker.tensor_parallel, worker.pipeline_parallel
        others = tuple(sorted(set(others) | set(worker.resources.other_accelerators)))
    min_r = comp.integer("minReplicas", None)
    max_r = comp.integer("maxReplicas", 0)
    if min_r is not None and max_r and max_r < min_r:
        comp.bad("maxReplicas", f"{max_r} is below minReplicas {min_r}")
    canary = comp.integer("canaryTrafficPercent", None, maximum=100)
    target = comp.integer("scaleTarget", None, minimum=1)
    concurrency = comp.integer("containerConcurrency", None)
    return Component(
        name=name,
        shape=serving.shape,
        model_format=serving.model_format,
        runtime=serving.runtime,
        storage_uri=storage_uri(main.raw) if main is not None else "",
        gpus_per_pod=resources.gpus,
        cpu_milli=resources.cpu_milli,
        memory_bytes=resources.memory_bytes,
        min_replicas=min_r,
        max_replicas=max_r,
        scale_target=target,
        scale_metric=str(comp.get("scaleMetric") or ""),
        container_concurrency=concurrency,
        canary_traffic_percent=canary,
        tensor_parallel=tp,
        pipeline_parallel=pp,
        multi_node=worker is not None,
        worker_gpus_per_pod=worker.resources.gpus if worker else 0,
        worker_cpu_milli=worker.resources.cpu_milli if worker else 0,
        worker_memory_bytes=worker.resources.memory_bytes if worker else 0,
        placement=read_placement(comp),
        gpu_memory_utilization=engine.gpu_memory_utilization,
        other_accelerators=others,
    )
