"""How KServe builds an LLMInferenceService's effective spec from its presets.

KServe (``pkg/controller/v1alpha2/llmisvc/config_merge.go``, ``combineBaseRefsConfig`` and
``mergeSpecs``) merges, in order: the well-known preset of the workload's shape
(``kserve-config-llm-template`` for one pod, ``...-worker-data-parallel`` or
``...-worker-pipeline-parallel`` with a worker, ``decode-``/``prefill-`` variants when the
service splits prefill and decode), then the ``spec.baseRefs`` in their order, then the
service's own spec, each later one over the earlier. Each step is a Kubernetes strategic merge
patch (``strategicpatch.StrategicMergePatch`` over the spec's Go type): mappings merge key by
key, lists whose field carries a patch merge key (``containers`` and ``env`` by ``name``,
``volumeMounts`` by ``mountPath``, ...) merge entry by entry, and every other list or value is
replaced. A preset is found by name in the service's namespace, else in KServe's namespace;
the service's status may pin the name of a well-known preset (``serving.kserve.io/<preset>``
in ``status.annotations``).

What this reproduces, and where it differs: KServe patches from Go structs, so a field the
later spec leaves out, sets to null, or sets to an empty string or list keeps the earlier
value; here too. KServe also drops a ``false`` or ``0`` of a non-pointer field (``expert``);
here they are kept. Patch directives (``$patch``, ``$setElementOrder``) are ignored, and the
router and tracing presets, which ask for no GPU, are not applied. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

PRESET_PREFIX = "kserve-"
"""KServe's default ``LLM_INFERENCE_SERVICE_CONFIG_PREFIX``."""
PINNED_PREFIX = "serving.kserve.io/"
"""Status annotation prefix under which KServe pins the well-known preset names it used."""

MERGE_KEYS: Mapping[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "resourceClaims": "name",
    "claims": "name",
    "schedulingGates": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
}
"""List fields of the pod spec merged entry by entry, by their patch merge key
(``k8s.io/api/core/v1/types.go`` ``patchMergeKey`` tags)."""


def _absent(value: Any) -> bool:
    return value is None or value in ("", [])


def _merge_list(key: str, base: list[Any], override: list[Any]) -> list[Any]:
    merge_key = MERGE_KEYS.get(key)
    if merge_key is None:
        return list(override)
    out = list(base)
    for entry in override:
        if not isinstance(entry, Mapping) or merge_key not in entry:
            out.append(entry)
            continue
        for i, have in enumerate(out):
            if isinstance(have, Mapping) and have.get(merge_key) == entry[merge_key]:
                out[i] = merge(have, entry)
                break
        else:
            out.append(merge({}, entry))
    return out


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` strategically merged over ``base`` (neither is changed). Pure."""
    out: dict[str, Any] = dict(base)
    for key, value in override.items():
        if not isinstance(key, str) or key.startswith("$") or _absent(value):
            continue
        have = out.get(key)
        if isinstance(value, Mapping):
            out[key] = merge(have if isinstance(have, Mapping) else {}, value)
        elif isinstance(value, list):
            out[key] = _merge_list(key, have if isinstance(have, list) else [], value)
        else:
            out[key] = value
    return out


def merge_all(specs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Each spec merged over the ones before it. Pure."""
    out: dict[str, Any] = {}
    for spec in specs:
        out = merge(out, spec)
    return out


def _parallel(workload: Mapping[str, Any]) -> str:
    p = workload.get("parallelism")
    p = p if isinstance(p, Mapping) else {}
    if p.get("data") or p.get("dataLocal"):
        return "data-parallel"
    if p.get("pipeline"):
        return "pipeline-parallel"
    return ""


def _workload_preset(workload: Mapping[str, Any], role: str) -> str | None:
    if workload.get("worker") is None:
        return f"config-llm-{role}template"
    shape = _parallel(workload)
    return f"config-llm-{role}worker-{shape}" if shape else None


def preset_names(spec: Mapping[str, Any], pinned: Mapping[str, str]) -> list[str]:
    """The well-known presets KServe puts before the baseRefs of a service whose spec (merged
    with its baseRefs) is ``spec``: prefill's then decode's, or the one workload's. A name the
    service's status pins (``pinned``: its status annotations) wins. Pure."""
    prefill = spec.get("prefill")
    if isinstance(prefill, Mapping):
        wanted = [_workload_preset(prefill, "prefill-"), _workload_preset(spec, "decode-")]
    else:
        wanted = [_workload_preset(spec, "")]
    return [pinned.get(PINNED_PREFIX + s, PRESET_PREFIX + s) for s in wanted if s is not None]
