"""Model weights already on the node's disk, found under configured folders.

A warm load from local disk takes seconds where a remote one takes minutes, so the extender
prefers nodes that hold a pod's weights. Each configured folder (for example the host path of
KServe's LocalModelCache, or a Hugging Face hub cache) is scanned for model folders:

- ``models--<org>--<name>/`` (Hugging Face hub cache) is model ``<org>/<name>``;
- a folder holding ``config.json`` or weight files is a model named by its path below the
  configured folder (``<org>/<name>/`` or ``<name>/``);

and the model's bytes are the sizes of its regular files (symbolic links are not followed, so
hub snapshots that link to blobs count once). Scans are rate-limited: disks are slow.

KServe's LocalModelCache keeps each model in ``<folder>/models/<storage key or cache name>/``,
names that say nothing of the model. Those folders are named by KServe's objects
(``nodeagent.kservecache``): one they name is the model of its cache's source URI, published
once KServe says its download finished; a storage-key folder they do not name is not published
(a download KServe has not recorded, or one it is removing).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from placement.model import CachedModel

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".ckpt", ".onnx")
MAX_DEPTH = 2
MODELS_FOLDER = "models"
"""The folder under KServe's host folder that holds one folder per cached model."""
_STORAGE_KEY = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True, slots=True)
class KServeFolder:
    """A folder of KServe's models folder: the model it holds, whether KServe says its
    download finished, and the cache that names it (for logs)."""

    model_id: str
    downloaded: bool
    cache: str


def is_storage_key(name: str) -> bool:
    """Whether a folder name has the shape of KServe's storage key (16 hex digits). Pure."""
    return _STORAGE_KEY.fullmatch(name) is not None


def _tree_bytes(path: Path) -> int:
    total = 0
    stack = [path]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(Path(e.path))
                    elif e.is_file(follow_symlinks=False):
                        total += e.stat(follow_symlinks=False).st_size
        except OSError as exc:
            log.debug("model cache: cannot read %s: %s", d, exc)
    return total


def _is_model(path: Path) -> bool:
    try:
        with os.scandir(path) as it:
            for e in it:
                if e.name == "config.json" or e.name.endswith(WEIGHT_SUFFIXES):
                    return True
    except OSError:
        return False
    return False


def scan_models(root: Path, kserve: Mapping[str, KServeFolder] | None = None) -> list[CachedModel]:
    """The models under ``root`` (see the module docstring), the folders of
    ``<root>/models/`` that KServe's objects name read by ``kserve``; an unreadable root has
    none."""
    found: list[CachedModel] = []
    kserve_dir = root / MODELS_FOLDER
    named = kserve or {}

    def visit(d: Path, depth: int) -> None:
        try:
            entries = sorted(
                (e for e in os.scandir(d) if e.is_dir(follow_symlinks=False)), key=lambda e: e.name
            )
        except OSError as exc:
            log.debug("model cache: cannot list %s: %s", d, exc)
            return
        for e in entries:
            p = Path(e.path)
            if d == kserve_dir and (e.name in named or is_storage_key(e.name)):
                folder = named.get(e.name)
                if folder is not None and folder.downloaded and folder.model_id:
                    found.append(CachedModel(folder.model_id, _tree_bytes(p)))
            elif e.name.startswith("models--"):
                model_id = "/".join(e.name.split("--")[1:])
                found.append(CachedModel(model_id, _tree_bytes(p)))
            elif _is_model(p):
                found.append(CachedModel(p.relative_to(root).as_posix(), _tree_bytes(p)))
            elif depth < MAX_DEPTH and not e.name.startswith("."):
                visit(p, depth + 1)

    visit(root, 1)
    return found


class ModelCacheScanner:
    """Scans ``roots`` at most every ``rescan_s`` seconds and serves the last result;
    ``kserve`` gives the folders KServe's objects name (``KServeCaches.folders``)."""

    def __init__(
        self,
        roots: Sequence[Path],
        rescan_s: float = 60.0,
        kserve: Callable[[], Mapping[str, KServeFolder]] | None = None,
    ) -> None:
        self._roots = list(roots)
        self._rescan_s = rescan_s
        self._kserve = kserve
        self._at: float | None = None
        self._models: tuple[CachedModel, ...] = ()
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Rescan on the next call (KServe's objects changed)."""
        with self._lock:
            self._at = None

    def models(self, now: float) -> tuple[CachedModel, ...]:
        """Cached models, rescanned when the last scan is older than ``rescan_s``."""
        with self._lock:
            if self._at is None or now - self._at >= self._rescan_s:
                named = self._kserve() if self._kserve is not None else None
                merged: dict[str, int] = {}
                for root in self._roots:
                    for m in scan_models(root, named):
                        merged[m.model_id] = max(merged.get(m.model_id, 0), m.bytes)
                self._models = tuple(CachedModel(k, v) for k, v in sorted(merged.items()))
                self._at = now
            return self._models
