"""KServe's LocalModelCache folders on this node, named by the model their source URI names.

KServe downloads a LocalModelCache's ``spec.sourceModelUri`` onto every node of its node
groups; the folder's name says nothing of the model, so the agent asks KServe's objects.
The layout, in kserve/kserve (commit ``aaac4e29``, 2026-08-21):

- KServe's node agent mounts the host folder ``/models`` at ``/mnt/models``
  (``config/localmodelnodes/manager.yaml``) and keeps models in ``/mnt/models/models``
  (``pkg/controller/v1alpha1/localmodelnode/controller.go``, ``modelsRootFolder``). A
  LocalModelNodeGroup's PersistentVolume names the same host folder (``local.path``). On the
  host a model is therefore ``<host folder>/models/<folder>/``; ``--cache-dir`` names the host
  folder.
- From v0.18.0 ``<folder>`` is the *storage key*, the first 16 hex digits of the SHA-256 of the
  source URI (``pkg/apis/serving/v1alpha1/local_model_cache_types.go``, ``GetStorageKey``;
  the download Job's ``SubPath: models/<storageKey>``), so caches of one URI share a folder.
  Up to v0.17 it was the LocalModelCache's name (``SubPath: models/<ModelName>``, where the
  controller sets ``ModelName`` to the cache's name).
- The LocalModelNode named after the node lists the node's models
  (``spec.localModels[]{modelName, namespace, sourceModelUri}``: LocalModelCaches, and
  LocalModelNamespaceCaches with their namespace) and their state,
  ``status.modelStatus[<name> or <namespace>/<name>]`` = ``ModelDownloaded`` when done
  (``local_model_node_types.go``, ``GetStatusKey``; ``local_model_node_status.go``). Each
  LocalModelCache also says ``status.nodeStatus[<node>]`` = ``NodeDownloaded``.

A folder is published only when KServe says its download finished (KServe itself trusts a
folder only with its download Job done): the LocalModelNode's state when it has one for the
model, else the cache's state for this node. Its model id is the one the planner recommends
for the same URI (``placement.model_ids.model_id_for_uri``), so the extender's cache affinity
matches pods KServe serves from that cache. ``KServeCaches`` reads the objects in a thread of
its own every rescan, so a slow API server never delays a GPU reading.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Final

from documents import load_document, parse_document
from nodeagent.kube import ApiError, KubeClient
from nodeagent.modelcache import KServeFolder
from placement.model_ids import (
    BUILTIN_CATALOG,
    ModelCatalog,
    model_id_for_uri,
    parse_model_catalog,
)

log = logging.getLogger(__name__)

CACHES_PATH: Final = "/apis/serving.kserve.io/v1alpha1/localmodelcaches"
NODES_PATH: Final = "/apis/serving.kserve.io/v1alpha1/localmodelnodes"
MODEL_DOWNLOADED: Final = "ModelDownloaded"
NODE_DOWNLOADED: Final = "NodeDownloaded"


def storage_key(source_uri: str) -> str:
    """KServe's folder name for ``source_uri`` (``GetStorageKey``). Pure."""
    return hashlib.sha256(source_uri.encode()).hexdigest()[:16]


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _entries(
    caches: Iterable[object], node: object, node_name: str
) -> list[tuple[str, str, bool, bool]]:
    """``(cache, source URI, downloaded, cluster-scoped)`` for each model KServe assigns to
    the node or caches cluster-wide; the LocalModelNode's state wins over the cache's."""
    node_obj = _mapping(node)
    model_status = _mapping(_mapping(node_obj.get("status")).get("modelStatus"))
    out: list[tuple[str, str, bool, bool]] = []
    seen: set[str] = set()
    local_models = _mapping(node_obj.get("spec")).get("localModels")
    for item in local_models if isinstance(local_models, list) else []:
        entry = _mapping(item)
        name, uri = _text(entry.get("modelName")), _text(entry.get("sourceModelUri"))
        namespace = _text(entry.get("namespace"))
        if not name or not uri:
            continue
        key = f"{namespace}/{name}" if namespace else name
        seen.add(key)
        out.append((key, uri, model_status.get(key) == MODEL_DOWNLOADED, not namespace))
    for item in caches:
        cache = _mapping(item)
        name = _text(_mapping(cache.get("metadata")).get("name"))
        uri = _text(_mapping(cache.get("spec")).get("sourceModelUri"))
        if not name or not uri or name in seen:
            continue
        node_status = _mapping(_mapping(cache.get("status")).get("nodeStatus"))
        if name in model_status:
            downloaded = model_status[name] == MODEL_DOWNLOADED
        else:
            downloaded = node_status.get(node_name) == NODE_DOWNLOADED
        out.append((name, uri, downloaded, True))
    return out


def kserve_folders(
    caches: Iterable[object], node: object, node_name: str, catalog: ModelCatalog
) -> dict[str, KServeFolder]:
    """The folders of KServe's models folder on ``node_name`` that KServe's objects name,
    from its LocalModelCaches (``items`` of their list) and its LocalModelNode (``None``: it
    has none). A folder is named by the storage key of its URI, and, for a cluster-scoped
    cache, by the cache's name too (KServe up to v0.17). Pure; see the module docstring."""
    found: dict[str, KServeFolder] = {}
    for cache, uri, downloaded, cluster_scoped in _entries(caches, node, node_name):
        model_id, _ = model_id_for_uri(catalog, uri)
        folders = [storage_key(uri), cache] if cluster_scoped else [storage_key(uri)]
        for folder in folders:
            old = found.get(folder)
            if old is None or (downloaded and not old.downloaded):
                found[folder] = KServeFolder(model_id, downloaded, cache)
    return found


def load_model_catalog(path: Path | None) -> ModelCatalog:
    """The model catalog ids are written by: the core's shipped one, or the file at ``path``
    (the planner's ``--models``). Raises ``InputError`` for a file that cannot be used."""
    if path is None:
        where = "built-in model catalog"
        text = resources.files("placement").joinpath(BUILTIN_CATALOG).read_text(encoding="utf-8")
        return parse_model_catalog(parse_document(text, where), where)
    return parse_model_catalog(load_document(path), str(path))


class KServeCaches:
    """KServe's LocalModelCaches and this node's LocalModelNode, read every ``interval_s``
    in a daemon thread; ``folders`` is the last mapping (empty until the first read, and
    while KServe's resources do not exist). ``on_change`` is called when it changes."""

    def __init__(
        self,
        client: KubeClient,
        node: str,
        catalog: ModelCatalog,
        *,
        interval_s: float,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self._node = node
        self._catalog = catalog
        self._interval = interval_s
        self.on_change = on_change
        self._folders: dict[str, KServeFolder] = {}
        self._lock = threading.Lock()
        self._problem = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"kserve-{node}", daemon=True)

    def start(self) -> None:
        """Start reading."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current read."""
        self._stop.set()

    def join(self, timeout: float) -> None:
        """Wait for the thread to end (after ``stop``)."""
        if self._thread.is_alive():
            self._thread.join(timeout)

    def folders(self) -> dict[str, KServeFolder]:
        """The folders KServe's objects name, as last read."""
        with self._lock:
            return dict(self._folders)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self._interval)

    def _say(self, problem: str) -> None:
        """Log a problem once, until it changes or reading works again."""
        if problem and problem != self._problem:
            log.warning("KServe model caches on %s: %s", self._node, problem)
        elif not problem and self._problem:
            log.info("KServe model caches on %s: read again", self._node)
        self._problem = problem

    def refresh(self) -> None:
        """Read KServe's objects once; keep the last mapping when the API cannot answer."""
        try:
            listing = self._client.request("GET", CACHES_PATH, query={"resourceVersion": "0"})
        except ApiError as exc:
            if exc.status == 404:
                self._say("")  # KServe's LocalModelCache is not installed: nothing is KServe's
                self._set({})
            else:
                self._say(str(exc))
            return
        try:
            node: dict[str, Any] | None = self._client.request("GET", f"{NODES_PATH}/{self._node}")
        except ApiError as exc:
            if exc.status != 404:
                self._say(str(exc))
                return
            node = None
        self._say("")
        items = listing.get("items")
        found = kserve_folders(
            items if isinstance(items, list) else [], node, self._node, self._catalog
        )
        self._set(found)

    def _set(self, found: dict[str, KServeFolder]) -> None:
        with self._lock:
            changed = found != self._folders
            self._folders = found
        if changed and self.on_change is not None:
            self.on_change()
