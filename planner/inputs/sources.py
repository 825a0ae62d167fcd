"""Where InferenceServices and LLMInferenceServices come from: YAML files and folders (this
module), or a live cluster's API server (``cluster``). Both end in the same pure ``collect``.

Files may hold many documents and ``kind: List`` objects; folders are read recursively in name
order. Reading is tolerant, because real manifests are: an object of an apiVersion or kind
vramfit does not read is skipped with a note; an unknown field is a note; an object that cannot
be read (or a file that cannot) is listed in ``broken`` with every problem and never stops the
others. Two objects of one kind, namespace and name: the one read later (a later file, or later
in a file) replaces the earlier, with a note naming both places, as ``kubectl apply`` of the
files in that order would leave it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from documents import load_documents
from placement.fields import DocumentError, Problem, quote
from planner.inputs.claims import TEMPLATE_API, TEMPLATE_KIND, read_templates, with_claimed_gpus
from planner.inputs.kserve import (
    CONFIGMAP_NAME,
    ISVC_VERSION,
    KSERVE_GROUP,
    KSERVE_NAMESPACE,
    LMC_VERSION,
    ClusterConfig,
    InferenceService,
    LocalModelCache,
    object_key,
    parse_cluster_config,
    parse_inference_service,
    parse_local_model_cache,
)
from planner.inputs.llm_fields import LLM_CONFIG_KIND, LLM_KIND, LLM_VERSIONS
from planner.inputs.llmisvc import LLMConfig, parse_llm_config, read_llm_service

SUFFIXES = (".yaml", ".yml", ".json")
ISVC_KIND = "InferenceService"
LMC_KIND = "LocalModelCache"

READ: Mapping[str, tuple[str, ...]] = {
    ISVC_KIND: (f"{KSERVE_GROUP}/{ISVC_VERSION}",),
    LLM_KIND: tuple(f"{KSERVE_GROUP}/{v}" for v in LLM_VERSIONS),
    LLM_CONFIG_KIND: tuple(f"{KSERVE_GROUP}/{v}" for v in LLM_VERSIONS),
    LMC_KIND: (f"{KSERVE_GROUP}/{LMC_VERSION}",),
    "ConfigMap": ("v1",),
    TEMPLATE_KIND: (TEMPLATE_API,),
}
"""The kinds vramfit reads, each at the apiVersions it reads."""


@dataclass(frozen=True, slots=True)
class Broken:
    """An object (or a file) that could not be read, and every problem with it."""

    source: str
    object: str
    problems: tuple[Problem, ...]


@dataclass(frozen=True, slots=True)
class Inputs:
    """Everything read: InferenceServices and LLMInferenceServices (``services``, in the order
    read), LocalModelCaches, the KServe config, the kinds seen and skipped (kind to count),
    notes on what was read, and what could not be read."""

    services: tuple[InferenceService, ...]
    caches: tuple[LocalModelCache, ...] = ()
    config: ClusterConfig | None = None
    skipped: Mapping[str, int] = field(default_factory=dict)
    source: str = ""
    notes: tuple[Problem, ...] = ()
    broken: tuple[Broken, ...] = ()
    llm_configs: int = 0

    def count(self, kind: str) -> int:
        """How many services of ``kind`` were read."""
        return sum(1 for s in self.services if s.kind == kind)

    def problems(self) -> list[Problem]:
        """Every problem of every broken object, in the order read."""
        return [p for b in self.broken for p in b.problems]


def _flatten(doc: Any, origin: str) -> Iterator[tuple[str, Any]]:
    if (
        isinstance(doc, Mapping)
        and str(doc.get("kind", "")).endswith("List")
        and isinstance(doc.get("items"), list)
    ):
        for i, item in enumerate(doc["items"]):
            yield f"{origin} items[{i}]", item
    else:
        yield origin, doc


def read_paths(paths: Iterable[Path]) -> tuple[list[tuple[str, Any]], list[Problem]]:
    """Raw documents from files and folders, each with where it came from, and a problem for
    every missing or unreadable file and every YAML error."""
    problems: list[Problem] = []
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in SUFFIXES)
            if not found:
                problems.append(Problem(str(p), "folder holds no .yaml, .yml or .json file"))
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            problems.append(Problem(str(p), "no such file or folder"))
    docs: list[tuple[str, Any]] = []
    for f in files:
        try:
            loaded = load_documents(f)
        except DocumentError as exc:
            problems.append(Problem(exc.source, exc.detail))
            continue
        for n, doc in enumerate(loaded):
            if doc is None:
                continue
            origin = f"{f}" if len(loaded) == 1 else f"{f} document {n + 1}"
            docs.extend(_flatten(doc, origin))
    return docs, problems


@dataclass
class _Seen:
    """The objects of the kinds vramfit reads, the later of two of one name kept."""

    objects: dict[tuple[str, str, str], tuple[str, Mapping[str, Any]]] = field(default_factory=dict)
    notes: list[Problem] = field(default_factory=list)
    broken: list[Broken] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    unread: Counter[str] = field(default_factory=Counter)

    def add(self, origin: str, doc: Any) -> None:
        if not isinstance(doc, Mapping):
            what = f"expected a Kubernetes object, got {type(doc).__name__}"
            self.broken.append(Broken(origin, "", (Problem(origin, what),)))
            return
        kind, api = str(doc.get("kind") or ""), str(doc.get("apiVersion") or "")
        if not kind:
            self.broken.append(Broken(origin, "", (Problem(origin, "object has no kind"),)))
            return
        namespace, name = object_key(doc)
        if kind not in READ or (kind == "ConfigMap" and name != CONFIGMAP_NAME):
            self.skipped[kind] += 1
            self.unread[f"{api} {kind}".strip()] += 1
            return
        if api not in READ[kind]:
            self.skipped[kind] += 1
            read = " or ".join(READ[kind])
            self.notes.append(
                Problem(
                    f"{origin}: {kind} {namespace}/{name}",
                    f"apiVersion {quote(api)} is not read (vramfit reads {read}): skipped",
                )
            )
            return
        key = (kind, namespace, name)
        if key in self.objects and name:
            earlier = self.objects[key][0]
            self.notes.append(
                Problem(
                    f"{origin}: {kind} {namespace}/{name}",
                    f"also defined in {earlier}; the later one ({origin}) is planned",
                )
            )
            del self.objects[key]
        self.objects[key if name else (kind, namespace, f"<unnamed {origin}>")] = (origin, doc)

    def of(self, kind: str) -> list[tuple[str, Mapping[str, Any]]]:
        return [v for (k, _, _), v in self.objects.items() if k == kind]


def _parse(
    seen: _Seen,
    kind: str,
    read: Callable[[Mapping[str, Any], str, list[Problem], list[Problem]], Any],
) -> list[Any]:
    """Every object of ``kind`` read with ``read``; the broken ones listed in ``seen``."""
    out = []
    for origin, doc in seen.of(kind):
        problems: list[Problem] = []
        value = read(doc, origin, problems, seen.notes)
        if problems or value is None:
            namespace, name = object_key(doc)
            seen.broken.append(Broken(origin, f"{kind} {namespace}/{name}", tuple(problems)))
        else:
            out.append(value)
    return out


def _labelled(services: list[InferenceService]) -> tuple[InferenceService, ...]:
    """Services named ``namespace/name``; an LLMInferenceService that shares its name with
    an InferenceService is named ``namespace/name (LLMInferenceService)``."""
    taken = {s.key for s in services if s.kind == ISVC_KIND}
    return tuple(
        replace(s, label=f"{s.key} ({s.kind})") if s.kind != ISVC_KIND and s.key in taken else s
        for s in services
    )


def collect(
    docs: Iterable[tuple[str, Any]],
    source: str,
    earlier: Iterable[Problem] = (),
    *,
    kserve_namespace: str = KSERVE_NAMESPACE,
    notes: Iterable[Problem] = (),
) -> Inputs:
    """Parse raw documents into ``Inputs``. ``earlier`` problems (files that could not be
    read) are listed as broken, ``notes`` kept first. Never raises. Pure."""
    seen = _Seen(notes=list(notes))
    seen.broken.extend(Broken(p.where, "", (p,)) for p in earlier)
    for origin, doc in docs:
        seen.add(origin, doc)
    valid = _parse(seen, LLM_CONFIG_KIND, parse_llm_config)
    # A broken preset is still merged into the services that name it, so they are broken too:
    # KServe would reject their merged spec.
    configs: dict[tuple[str, str], LLMConfig] = {}
    for origin, doc in seen.of(LLM_CONFIG_KIND):
        namespace, name = object_key(doc)
        spec = doc.get("spec")
        if name:
            raw = spec if isinstance(spec, Mapping) else {}
            configs[(namespace, name)] = LLMConfig(namespace, name, origin, raw)

    def llm(
        doc: Mapping[str, Any], origin: str, problems: list[Problem], found: list[Problem]
    ) -> InferenceService | None:
        return read_llm_service(
            doc,
            origin,
            configs=configs,
            kserve_namespace=kserve_namespace,
            problems=problems,
            notes=found,
        )

    services = _parse(seen, ISVC_KIND, parse_inference_service) + _parse(seen, LLM_KIND, llm)
    # GPUs their pods claim through DRA (ResourceClaimTemplates, KServe's managed DRA).
    templates = read_templates(doc for _, doc in seen.of(TEMPLATE_KIND))
    raw = {(k, ns, n): doc for (k, ns, n), (_, doc) in seen.objects.items()}
    services = [
        with_claimed_gpus(s, raw.get((s.kind, s.namespace, s.name), {}), templates)
        for s in services
    ]
    caches = _parse(seen, LMC_KIND, lambda d, o, p, _: parse_local_model_cache(d, o, p))
    cluster = _parse(seen, "ConfigMap", lambda d, o, p, _: parse_cluster_config(d, o, p))
    if seen.unread:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(seen.unread.items()))
        seen.notes.append(Problem(source, f"skipped objects vramfit does not read: {kinds}"))
    return Inputs(
        services=_labelled(services),
        caches=tuple(caches),
        config=cluster[-1] if cluster else None,
        skipped=dict(seen.skipped),
        source=source,
        notes=tuple(seen.notes),
        broken=tuple(seen.broken),
        llm_configs=len(valid),
    )


def read_files(paths: Iterable[Path], kserve_namespace: str = KSERVE_NAMESPACE) -> Inputs:
    """InferenceServices and LLMInferenceServices (with their presets, LocalModelCaches, the
    KServe ConfigMap) from files and folders."""
    paths = list(paths)
    docs, problems = read_paths(paths)
    return collect(
        docs,
        ", ".join(str(p) for p in paths),
        problems,
        kserve_namespace=kserve_namespace,
    )
