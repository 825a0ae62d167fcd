"""Where InferenceServices come from: YAML files and folders, or a live cluster's API server.

Files may hold many documents and ``kind: List`` objects; folders are read recursively in name
order. A live cluster is read with the kubernetes client, following kubectl's rules for the
kubeconfig (``--kubeconfig``, else ``$KUBECONFIG``, else ``~/.kube/config``, else in-cluster) and
``--context``. Both end in the same pure ``collect`` step.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError

from documents import load_documents
from placement.fields import DocumentError, InputError, Problem
from planner.inputs.kserve import (
    CONFIGMAP_NAME,
    ISVC_PLURAL,
    ISVC_VERSION,
    KSERVE_GROUP,
    LMC_PLURAL,
    LMC_VERSION,
    ClusterConfig,
    InferenceService,
    LocalModelCache,
    is_inference_service,
    parse_cluster_config,
    parse_inference_service,
    parse_local_model_cache,
)

SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, slots=True)
class Inputs:
    """Everything read: InferenceServices, LocalModelCaches, the KServe config, and what else
    was seen and skipped (kind to count)."""

    services: tuple[InferenceService, ...]
    caches: tuple[LocalModelCache, ...] = ()
    config: ClusterConfig | None = None
    skipped: Mapping[str, int] = field(default_factory=dict)
    source: str = ""


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


def collect(
    docs: Iterable[tuple[str, Any]], source: str, earlier: Iterable[Problem] = ()
) -> Inputs:
    """Parse raw documents into ``Inputs``; raises ``InputError`` with every problem (after
    ``earlier`` ones, such as files that could not be read). Pure."""
    problems: list[Problem] = list(earlier)
    services: list[InferenceService] = []
    caches: list[LocalModelCache] = []
    config: ClusterConfig | None = None
    skipped: Counter[str] = Counter()
    seen: dict[str, str] = {}
    for origin, doc in docs:
        if not isinstance(doc, Mapping):
            problems.append(
                Problem(origin, f"expected a Kubernetes object, got {type(doc).__name__}")
            )
            continue
        kind = str(doc.get("kind", ""))
        if not kind:
            problems.append(Problem(origin, "object has no kind"))
            continue
        if is_inference_service(doc):
            isvc = parse_inference_service(doc, origin, problems)
            if isvc is not None:
                if isvc.key in seen:
                    problems.append(
                        Problem(
                            origin, f"InferenceService {isvc.key} also defined in {seen[isvc.key]}"
                        )
                    )
                    continue
                seen[isvc.key] = origin
                services.append(isvc)
        elif kind == "LocalModelCache":
            cache = parse_local_model_cache(doc, origin, problems)
            if cache is not None:
                caches.append(cache)
        elif kind == "ConfigMap" and (doc.get("metadata") or {}).get("name") == CONFIGMAP_NAME:
            config = parse_cluster_config(doc, origin, problems)
        else:
            skipped[kind] += 1
    if problems:
        raise InputError("", problems)
    return Inputs(tuple(services), tuple(caches), config, dict(skipped), source)


def read_files(paths: Iterable[Path]) -> Inputs:
    """InferenceServices (and LocalModelCaches, the KServe ConfigMap) from files and folders."""
    paths = list(paths)
    docs, problems = read_paths(paths)
    return collect(docs, ", ".join(str(p) for p in paths), problems)


def kube_client(kubeconfig: str | None, context: str | None) -> Any:
    """An ApiClient the way kubectl picks its config; raises ``InputError`` when there is none."""
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    default = Path("~/.kube/config").expanduser()
    try:
        if path is None and not default.exists() and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()
            return client.ApiClient()
        return config.new_client_from_config(config_file=path, context=context)
    except (ConfigException, OSError, TypeError, ValueError) as exc:
        where = path or str(default)
        raise InputError(f"kubeconfig {where}", [Problem("", f"cannot load ({exc})")]) from None


def read_cluster(api: Any, namespace: str | None, kserve_namespace: str) -> Inputs:
    """InferenceServices (one namespace or all), the ``inferenceservice-config`` ConfigMap and
    LocalModelCaches from the API server behind ``api`` (a kubernetes ``ApiClient``)."""
    custom = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    server = getattr(api.configuration, "host", "the API server")
    try:
        if namespace:
            listed = custom.list_namespaced_custom_object(
                KSERVE_GROUP, ISVC_VERSION, namespace, ISVC_PLURAL
            )
        else:
            listed = custom.list_cluster_custom_object(KSERVE_GROUP, ISVC_VERSION, ISVC_PLURAL)
    except ApiException as exc:
        if exc.status == 404:
            raise InputError(
                "",
                [
                    Problem(
                        server,
                        "the InferenceService CRD (serving.kserve.io/v1beta1) is not installed",
                    )
                ],
            ) from None
        raise InputError(
            server, [Problem("", f"listing InferenceServices failed: {exc.status} {exc.reason}")]
        ) from None
    except (HTTPError, OSError) as exc:
        raise InputError(server, [Problem("", f"cannot reach the API server ({exc})")]) from None
    docs: list[tuple[str, Any]] = []
    for item in listed.get("items", []):
        item.setdefault("apiVersion", f"{KSERVE_GROUP}/{ISVC_VERSION}")
        item.setdefault("kind", "InferenceService")
        docs.append((server, item))
    try:
        cm = core.read_namespaced_config_map(CONFIGMAP_NAME, kserve_namespace)
        docs.append(
            (
                f"{server} {kserve_namespace}",
                {"kind": "ConfigMap", "metadata": {"name": CONFIGMAP_NAME}, "data": cm.data or {}},
            )
        )
    except ApiException as exc:
        if exc.status not in (403, 404):
            raise InputError(
                "",
                [
                    Problem(
                        server,
                        f"reading ConfigMap {kserve_namespace}/{CONFIGMAP_NAME}: {exc.status}",
                    )
                ],
            ) from None
    try:
        caches = custom.list_cluster_custom_object(KSERVE_GROUP, LMC_VERSION, LMC_PLURAL)
        for item in caches.get("items", []):
            item.setdefault("kind", "LocalModelCache")
            docs.append((server, item))
    except ApiException as exc:
        if exc.status not in (403, 404):
            raise InputError(
                server, [Problem("", f"listing LocalModelCaches: {exc.status}")]
            ) from None
    where = f"{server} ({'namespace ' + namespace if namespace else 'all namespaces'})"
    return collect(docs, where)
