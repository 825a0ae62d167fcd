"""What a pod that KServe created says about the model it serves, read from the pod alone.

The admission webhook sees only the pod (no InferenceService object), so everything it derives
comes from what KServe puts on the pod (``reference/cluster-agreement.md`` §4):

- which object owns it: an InferenceService predictor has the label
  ``serving.kserve.io/inferenceservice``; an LLMInferenceService workload has
  ``app.kubernetes.io/part-of: llminferenceservice`` and its name in ``app.kubernetes.io/name``;
- where the weights come from: the annotation ``internal.serving.kserve.io/storage-initializer-
  sourceuri``, the ``storage-initializer`` init container's first argument, or ``STORAGE_URI``
  on ``kserve-container`` (when it is not already rewritten to the local mount);
- names of the model the server is told to load (``--model``, ``--model_id``,
  ``--served-model-name``), tried against the catalog when the URI says nothing it knows;
- how many ways the weights are split: vLLM's ``--tensor-parallel-size`` times
  ``--pipeline-parallel-size`` when given, else the pod's GPU count (tensor parallel over the
  GPUs of one pod is what a single-node server does).

Pure: a raw pod in, a frozen value out; nothing here fails on a field it does not know.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

L_ISVC: Final = "serving.kserve.io/inferenceservice"
L_PART_OF: Final = "app.kubernetes.io/part-of"
L_NAME: Final = "app.kubernetes.io/name"
LLMISVC_PART_OF: Final = "llminferenceservice"
A_SOURCE_URI: Final = "internal.serving.kserve.io/storage-initializer-sourceuri"
STORAGE_INITIALIZER: Final = "storage-initializer"
KSERVE_CONTAINER: Final = "kserve-container"
LOCAL_MODEL_PATH: Final = "/mnt/models"
MAX_TOKENS: Final = 512
"""Arguments read per container: a pathological command line costs no more than this."""

_MODEL_FLAGS: Final = ("--model", "--model_id", "--model-id", "--served-model-name")
_TP_FLAGS: Final = ("--tensor-parallel-size", "-tp")
_PP_FLAGS: Final = ("--pipeline-parallel-size", "-pp")


@dataclass(frozen=True, slots=True)
class KServeRef:
    """What the pod says about its model. ``kind`` is ``""`` for a pod KServe did not make."""

    kind: str
    name: str
    storage_uri: str
    model_names: tuple[str, ...]
    shards: int | None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _strings(value: object) -> list[str]:
    return [v for v in _list(value) if isinstance(v, str)]


def _tokens(container: Mapping[str, Any]) -> list[str]:
    """The container's command and args as words (a ``bash -c`` script split like a shell)."""
    words: list[str] = []
    for part in _strings(container.get("command")) + _strings(container.get("args")):
        if len(words) >= MAX_TOKENS:
            break
        if any(c.isspace() for c in part):
            try:
                words.extend(shlex.split(part, comments=False))
            except ValueError:
                words.extend(part.split())
        else:
            words.append(part)
    return words[:MAX_TOKENS]


def _flag_values(words: list[str], flags: tuple[str, ...]) -> Iterator[str]:
    """Values of ``--flag value`` and ``--flag=value`` for any of ``flags``."""
    for i, word in enumerate(words):
        name, eq, value = word.partition("=")
        if name not in flags:
            continue
        if eq:
            yield value
        elif i + 1 < len(words) and not words[i + 1].startswith("-"):
            yield words[i + 1]


def _positive(values: Iterator[str]) -> int | None:
    for value in values:
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def _is_uri(value: str) -> bool:
    return "://" in value


def _owner(labels: Mapping[str, Any]) -> tuple[str, str]:
    """(kind, name) of the KServe object the labels name, ``("", "")`` for none."""
    if isinstance(labels.get(L_ISVC), str):
        return "InferenceService", labels[L_ISVC]
    if labels.get(L_PART_OF) == LLMISVC_PART_OF and isinstance(labels.get(L_NAME), str):
        return "LLMInferenceService", labels[L_NAME]
    return "", ""


def _storage_uris(
    annotations: Mapping[str, Any],
    containers: list[Mapping[str, Any]],
    inits: list[Mapping[str, Any]],
) -> list[str]:
    """Storage URIs in the order KServe's own records are trusted."""
    uris: list[str] = []
    source = annotations.get(A_SOURCE_URI)
    if isinstance(source, str) and source.strip():
        uris.append(source.strip())
    for init in inits:
        args = _strings(init.get("args")) if init.get("name") == STORAGE_INITIALIZER else []
        if args and args[0].strip():
            uris.append(args[0].strip())
    for container in (c for c in containers if c.get("name") == KSERVE_CONTAINER):
        for env in map(_mapping, _list(container.get("env"))):
            value = env.get("value")
            if env.get("name") == "STORAGE_URI" and isinstance(value, str) and _is_uri(value):
                uris.append(value.strip())
    return uris


def _command_lines(
    containers: list[Mapping[str, Any]],
) -> tuple[list[str], list[str], int | None, int | None]:
    """(URIs, model names, tensor parallel size, pipeline parallel size) from the command lines."""
    uris: list[str] = []
    names: list[str] = []
    tensor = pipeline = None
    for container in containers:
        words = _tokens(container)
        for value in (v.strip() for v in _flag_values(words, _MODEL_FLAGS)):
            if not value or value.rstrip("/") == LOCAL_MODEL_PATH or value in names:
                continue
            (uris if _is_uri(value) else names).append(value)
        tensor = tensor or _positive(_flag_values(words, _TP_FLAGS))
        pipeline = pipeline or _positive(_flag_values(words, _PP_FLAGS))
    return uris, names, tensor, pipeline


def kserve_ref(pod: Mapping[str, Any], gpus: int) -> KServeRef:
    """Read the model a pod serves (pure); ``gpus`` is the pod's GPU count, the default split."""
    meta = _mapping(pod.get("metadata"))
    spec = _mapping(pod.get("spec"))
    kind, name = _owner(_mapping(meta.get("labels")))
    containers = [_mapping(c) for c in _list(spec.get("containers"))]
    inits = [_mapping(c) for c in _list(spec.get("initContainers"))]
    uris = _storage_uris(_mapping(meta.get("annotations")), containers, inits)
    flag_uris, names, tensor, pipeline = _command_lines(containers)
    uris += flag_uris
    shards = (tensor or 1) * (pipeline or 1) if tensor or pipeline else (gpus or None)
    return KServeRef(
        kind=kind,
        name=name,
        storage_uri=uris[0] if uris else "",
        model_names=tuple(names),
        shards=shards,
    )
