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

from planner.inputs.kserve_fields import (
    COMPONENTS,
    LEGACY_FRAMEWORKS,
    MODEL,
    PREDICTOR_EXTENSION,
    WORKER,
)
from planner.inputs.pod_spec import (
    DEFAULT_CPU_MILLI,
    DEFAULT_MEMORY,
    Placement,
    engine_args,
    read_containers,
    read_placement,
    read_resources,
)
from planner.inputs.raw import ReadContext, integer, mapping, unknown_fields


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
    placement: Placement = field(default_factory=Placement)
    gpu_memory_utilization: float | None = None
    other_accelerators: tuple[str, ...] = ()


def read_component(
    ctx: ReadContext, name: str, comp: Mapping[str, Any], path: str
) -> Component | None:
    """Read component ``name`` (predictor, transformer, explainer) at ``path``; ``None``
    when it has nothing to serve. Problems go to ``ctx``."""
    known = COMPONENTS[name]
    unknown_fields(ctx, comp, known, path)
    containers = read_containers(ctx, comp, path)
    shape = "containers"
    model_format = runtime = storage_uri = ""
    main: Mapping[str, Any] | None = None
    if name == "predictor":
        model = mapping(ctx, comp.get("model"), f"{path}.model")
        frameworks = [f for f in LEGACY_FRAMEWORKS if comp.get(f) is not None]
        if model is not None and frameworks:
            ctx.add(path, f"sets both model and the legacy {frameworks[0]}; use one")
        if len(frameworks) > 1:
            ctx.add(path, f"sets several legacy frameworks ({', '.join(frameworks)}); use one")
        if model is not None:
            shape = "model"
            unknown_fields(ctx, model, MODEL, f"{path}.model")
            fmt = mapping(ctx, model.get("modelFormat"), f"{path}.model.modelFormat") or {}
            model_format = str(fmt.get("name", ""))
            runtime = str(model.get("runtime", ""))
            main = model
            containers.insert(0, (f"{path}.model", model))
        elif frameworks:
            shape = frameworks[0]
            fw = mapping(ctx, comp.get(shape), f"{path}.{shape}")
            if fw is not None:
                unknown_fields(ctx, fw, PREDICTOR_EXTENSION, f"{path}.{shape}")
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
    gpus, cpu, mem, others = read_resources(ctx, containers)
    args = engine_args(main) if main is not None else {}

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
        mapping(ctx, comp.get("workerSpec"), f"{path}.workerSpec") if name == "predictor" else None
    )
    if worker is not None:
        multi = True
        unknown_fields(ctx, worker, WORKER, f"{path}.workerSpec")
        tp = integer(ctx, worker, "tensorParallelSize", f"{path}.workerSpec", 1) or 1
        pp = integer(ctx, worker, "pipelineParallelSize", f"{path}.workerSpec", 1) or 1
        wc = read_containers(ctx, worker, f"{path}.workerSpec")
        if wc:
            w_gpus, w_cpu, w_mem, w_others = read_resources(ctx, wc)
            others = tuple(sorted(set(others) | set(w_others)))
        else:
            w_gpus, w_cpu, w_mem = gpus, cpu, mem
    min_r = integer(ctx, comp, "minReplicas", path)
    max_r = integer(ctx, comp, "maxReplicas", path) or 0
    if min_r is not None and max_r and max_r < min_r:
        ctx.add(f"{path}.maxReplicas", f"{max_r} is below minReplicas {min_r}")
    canary = integer(ctx, comp, "canaryTrafficPercent", path)
    if canary is not None and canary > 100:
        ctx.add(f"{path}.canaryTrafficPercent", f"must be at most 100, got {canary}")
        canary = None
    target = integer(ctx, comp, "scaleTarget", path, 1)
    cc = integer(ctx, comp, "containerConcurrency", path)
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
        placement=read_placement(ctx, comp, path),
        gpu_memory_utilization=util,
        other_accelerators=others,
    )
