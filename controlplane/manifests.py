"""The project's manifests in ``deploy/``: read them, order them, and server-side apply them.

Both ``make cluster`` and the deploy test use this, so what the test proves is what the local
cluster gets. Namespaces and CustomResourceDefinitions go first (and the CRDs must become
``Established``) so that the objects that live in them can follow in one apply. Component
configuration files (``*.config.k8s.io`` groups, such as a ``KubeSchedulerConfiguration`` or a
kustomization) are not API objects and are not applied; scheduler configurations are found both
as files and inside ConfigMaps so that a test can start kube-scheduler with each of them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import yaml

FIELD_MANAGER: Final = "vramfit"
FIRST_KINDS: Final = frozenset({"Namespace", "CustomResourceDefinition"})
SCHEDULER_CONFIG_KIND: Final = "KubeSchedulerConfiguration"


class ManifestError(ValueError):
    """A manifest that cannot be read or applied; the message names file and document."""


@dataclass(frozen=True)
class Document:
    """One YAML document of one manifest file."""

    source: Path
    index: int  # position among the file's non-empty documents
    body: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion", ""))

    @property
    def name(self) -> str:
        metadata = self.body.get("metadata")
        return str(metadata.get("name", "")) if isinstance(metadata, Mapping) else ""

    @property
    def where(self) -> str:
        return f"{self.source} (document {self.index + 1})"


@dataclass(frozen=True)
class SchedulerConfigSource:
    """A KubeSchedulerConfiguration found in the manifests, and where."""

    where: str
    config: Mapping[str, Any]


def yaml_files(root: Path) -> list[Path]:
    """Every ``*.yaml``/``*.yml`` under ``root``, sorted; kustomize components (``components/``)
    are optional overlays, applied only where a kustomization enables them, so they are left out.
    """
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix in (".yaml", ".yml")
        and "components" not in p.relative_to(root).parts[:-1]
    )


def parse_documents(text: str, source: Path) -> list[Document]:
    """Pure: the non-empty documents of one file; every malformed document is reported."""
    try:
        raw = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise ManifestError(f"{source}: not valid YAML ({exc})") from None
    documents: list[Document] = []
    problems: list[str] = []
    for body in (b for b in raw if b is not None):
        document_where = f"{source} (document {len(documents) + 1})"
        if not isinstance(body, Mapping):
            problems.append(f"{document_where}: expected a mapping, got {type(body).__name__}")
            continue
        document = Document(source, len(documents), body)
        missing = [key for key in ("apiVersion", "kind") if not body.get(key)]
        if is_api_object(document) and not document.name:
            missing.append("metadata.name")
        if missing:
            problems.append(f"{document_where}: missing {', '.join(missing)}")
        documents.append(document)
    if problems:
        raise ManifestError("; ".join(problems))
    return documents


def load_documents(paths: Iterable[Path]) -> list[Document]:
    """Read and parse every file; all problems of all files in one error."""
    documents, problems = [], []
    for path in paths:
        try:
            documents += parse_documents(path.read_text(encoding="utf-8"), path)
        except OSError as exc:
            problems.append(f"{path}: cannot read ({exc.strerror or exc})")
        except ManifestError as exc:
            problems.append(str(exc))
    if problems:
        raise ManifestError("; ".join(problems))
    return documents


def is_api_object(document: Document) -> bool:
    """Pure: is this an object for the API server, rather than a component's config file?"""
    group = document.api_version.rpartition("/")[0]
    return not group.endswith(".config.k8s.io")


def apply_phases(documents: Sequence[Document]) -> tuple[list[Document], list[Document]]:
    """Pure: (namespaces and CRDs, everything else), component config files left out."""
    objects = [d for d in documents if is_api_object(d)]
    first = [d for d in objects if d.kind in FIRST_KINDS]
    rest = [d for d in objects if d.kind not in FIRST_KINDS]
    return first, rest


def scheduler_configs(documents: Sequence[Document]) -> list[SchedulerConfigSource]:
    """Pure: every KubeSchedulerConfiguration, as a document or as a ConfigMap value."""
    found = []
    for document in documents:
        if document.kind == SCHEDULER_CONFIG_KIND:
            found.append(SchedulerConfigSource(document.where, document.body))
        elif document.kind == "ConfigMap" and isinstance(document.body.get("data"), Mapping):
            for key, value in sorted(document.body["data"].items()):
                if not isinstance(value, str) or SCHEDULER_CONFIG_KIND not in value:
                    continue
                where = f"{document.where}, ConfigMap {document.name} key {key}"
                try:
                    parsed = yaml.safe_load(value)
                except yaml.YAMLError as exc:
                    raise ManifestError(f"{where}: not valid YAML ({exc})") from None
                if not isinstance(parsed, Mapping) or parsed.get("kind") != SCHEDULER_CONFIG_KIND:
                    raise ManifestError(f"{where}: mentions {SCHEDULER_CONFIG_KIND} but is not one")
                found.append(SchedulerConfigSource(where, parsed))
    return found


def render(documents: Sequence[Document]) -> str:
    """Pure: documents as one multi-document YAML stream."""
    return yaml.safe_dump_all([dict(d.body) for d in documents], sort_keys=False)


class Kubectl(Protocol):
    """What :meth:`controlplane.harness.ControlPlane.kubectl` looks like: raises on failure."""

    def __call__(
        self, *args: str, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]: ...


def server_side_apply(kubectl: Kubectl, documents: Sequence[Document]) -> list[str]:
    """Apply ``documents`` in two phases with server-side apply; returns kubectl's lines.

    Raises whatever ``kubectl`` raises when the API server rejects an object.
    """
    first, rest = apply_phases(documents)
    lines: list[str] = []
    if first:
        lines += _apply(kubectl, first)
        crds = [d.name for d in first if d.kind == "CustomResourceDefinition"]
        if crds:
            kubectl(
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                *(f"customresourcedefinition/{name}" for name in crds),
            )
    if rest:
        lines += _apply(kubectl, rest)
    return lines


def _apply(kubectl: Kubectl, documents: Sequence[Document]) -> list[str]:
    result = kubectl(
        "apply",
        "--server-side",
        f"--field-manager={FIELD_MANAGER}",
        "-f",
        "-",
        input_text=render(documents),
    )
    return [line for line in result.stdout.splitlines() if line]
