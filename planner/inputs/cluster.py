"""Reading a live cluster: InferenceServices, LLMInferenceServices and their
LLMInferenceServiceConfigs, the ``inferenceservice-config`` ConfigMap, LocalModelCaches and
the ResourceClaimTemplates their pods may claim GPUs from.

The kubernetes client follows kubectl's rules for the kubeconfig (``--kubeconfig``, else
``$KUBECONFIG``, else ``~/.kube/config``, else in-cluster) and ``--context``. A cluster without
one of KServe's CRDs is a note, not an error: a cluster may run only LLMInferenceServices, or
only InferenceServices; only a cluster with neither is an error. LLMInferenceServices are asked
for at the stored version (``v1alpha2``), then ``v1alpha1`` where a KServe release serves only
that. LLMInferenceServiceConfigs are listed in every namespace, since a service finds its
presets in its own namespace or KServe's. What is listed goes through the same ``collect`` as
files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError

from placement.fields import InputError, Problem
from planner.inputs.claims import TEMPLATE_API, TEMPLATE_KIND, TEMPLATE_PLURAL
from planner.inputs.kserve import (
    CONFIGMAP_NAME,
    ISVC_PLURAL,
    ISVC_VERSION,
    KSERVE_GROUP,
    LMC_PLURAL,
    LMC_VERSION,
)
from planner.inputs.llm_fields import (
    LLM_CONFIG_KIND,
    LLM_CONFIG_PLURAL,
    LLM_KIND,
    LLM_PLURAL,
    LLM_VERSIONS,
)
from planner.inputs.sources import ISVC_KIND, LMC_KIND, Inputs, collect


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


class _Lister:
    """Lists custom objects of one server, and says what it could not list."""

    def __init__(self, api: Any, namespace: str | None) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.server = str(getattr(api.configuration, "host", "the API server"))
        self.notes: list[Problem] = []

    def list(
        self,
        kind: str,
        versions: tuple[str, ...],
        plural: str,
        *,
        cluster_wide: bool = False,
        group: str = KSERVE_GROUP,
    ) -> list[tuple[str, Any]] | None:
        """Every object of ``kind`` (the namespace's, unless ``cluster_wide``), at the first of
        ``versions`` the server serves, with ``apiVersion`` and ``kind`` set; ``None`` (and a
        note) when the CRD is not installed or listing is forbidden."""
        for version in versions:
            try:
                if self.namespace and not cluster_wide:
                    listed = self.custom.list_namespaced_custom_object(
                        group, version, self.namespace, plural
                    )
                else:
                    listed = self.custom.list_cluster_custom_object(group, version, plural)
            except ApiException as exc:
                if exc.status == 404:
                    continue
                if exc.status == 403:
                    self.notes.append(Problem(self.server, f"listing {kind}s is forbidden"))
                    return None
                raise InputError(
                    self.server,
                    [Problem("", f"listing {kind}s failed: {exc.status} {exc.reason}")],
                ) from None
            except (HTTPError, OSError) as exc:
                raise InputError(
                    self.server, [Problem("", f"cannot reach the API server ({exc})")]
                ) from None
            items = []
            for item in listed.get("items", []):
                item.setdefault("apiVersion", f"{group}/{version}")
                item.setdefault("kind", kind)
                items.append((self.server, item))
            return items
        api = " or ".join(f"{group}/{v}" for v in versions)
        what = "CRD" if group == KSERVE_GROUP else "API"
        gone = "is not installed" if group == KSERVE_GROUP else "is not served"
        self.notes.append(Problem(self.server, f"the {kind} {what} ({api}) {gone}"))
        return None


def read_cluster(api: Any, namespace: str | None, kserve_namespace: str) -> Inputs:
    """InferenceServices and LLMInferenceServices (one namespace or all) with their presets,
    the ``inferenceservice-config`` ConfigMap and LocalModelCaches from the API server behind
    ``api`` (a kubernetes ``ApiClient``). Raises ``InputError`` when the server cannot be
    read, or serves neither kind of service."""
    lister = _Lister(api, namespace)
    isvcs = lister.list(ISVC_KIND, (ISVC_VERSION,), ISVC_PLURAL)
    llms = lister.list(LLM_KIND, LLM_VERSIONS, LLM_PLURAL)
    if isvcs is None and llms is None:
        raise InputError("", lister.notes)
    configs = lister.list(LLM_CONFIG_KIND, LLM_VERSIONS, LLM_CONFIG_PLURAL, cluster_wide=True)
    caches = lister.list(LMC_KIND, (LMC_VERSION,), LMC_PLURAL, cluster_wide=True)
    group, version = TEMPLATE_API.split("/")
    templates = lister.list(TEMPLATE_KIND, (version,), TEMPLATE_PLURAL, group=group)
    docs = [
        *(isvcs or []),
        *(configs or []),
        *(llms or []),
        *(caches or []),
        *(templates or []),
    ]
    try:
        cm = client.CoreV1Api(api).read_namespaced_config_map(CONFIGMAP_NAME, kserve_namespace)
        docs.append(
            (
                f"{lister.server} {kserve_namespace}",
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": CONFIGMAP_NAME, "namespace": kserve_namespace},
                    "data": cm.data or {},
                },
            )
        )
    except ApiException as exc:
        if exc.status not in (403, 404):
            raise InputError(
                "",
                [
                    Problem(
                        lister.server,
                        f"reading ConfigMap {kserve_namespace}/{CONFIGMAP_NAME}: {exc.status}",
                    )
                ],
            ) from None
    where = f"{lister.server} ({'namespace ' + namespace if namespace else 'all namespaces'})"
    return collect(docs, where, kserve_namespace=kserve_namespace, notes=lister.notes)
