"""What the chart tests share: where things are, ``helm template`` as documents, and the value
variants every chart test walks through."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from controlplane.manifests import Document, parse_documents

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
CHART_DIR: Final = REPO_ROOT / "charts" / "vramfit"
DEPLOY_DIR: Final = REPO_ROOT / "deploy"
ALERTS_DIR: Final = CHART_DIR / "files" / "alerts"
RULES_FILE: Final = ALERTS_DIR / "vramfit.rules.yaml"
RULES_TEST_FILE: Final = ALERTS_DIR / "vramfit.rules.test.yaml"
DASHBOARD_FILE: Final = CHART_DIR / "files" / "dashboards" / "vramfit.json"
RELEASE: Final = "vramfit"

# Labels Helm's conventions add to every object; deploy/ has none of them.
HELM_LABELS: Final = frozenset(
    {
        "app.kubernetes.io/instance",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/version",
        "helm.sh/chart",
    }
)

TLS: Final = {"enabled": True, "secretName": "vramfit-extender-tls"}

# Named value sets: each is linted, rendered and applied to the real API server.
VARIANTS: Final[Mapping[str, Mapping[str, Any]]] = {
    "defaults": {},
    "default-scheduler": {"scheduler": {"mode": "defaultScheduler"}},
    "second-profile-tls": {"extender": {"tls": {**TLS, "serverName": "localhost"}}},
    "default-scheduler-tls": {
        "scheduler": {"mode": "defaultScheduler", "extenderHost": "10.96.0.50"},
        "extender": {"tls": {**TLS, "serverName": "vramfit-extender.vramfit-system.svc"}},
    },
    "prometheus-rule": {
        "monitoring": {
            "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            "grafanaDashboard": {"annotations": {"grafana_folder": "GPU"}},
        }
    },
    "no-monitoring": {
        "monitoring": {"scrapeAnnotations": False, "grafanaDashboard": {"enabled": False}}
    },
    "admission-cert-manager": {"admission": {"certificates": "certManager", "replicas": 3}},
    "no-admission": {"admission": {"enabled": False}},
    "agent-only": {"extender": {"enabled": False}, "admission": {"enabled": False}},
    "extender-only": {"agent": {"enabled": False}},
    "own-image-and-placement": {
        "image": {"repository": "registry.example.com/gpu/vramfit", "tag": "0.2.0"},
        "imagePullSecrets": [{"name": "registry-credentials"}],
        "agent": {
            "nodeSelector": {"node.kubernetes.io/instance-type": "p5.48xlarge"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu"}],
            "resources": {"requests": {"cpu": "50m", "memory": "96Mi"}},
            "runtimeClassName": "nvidia",
            "modelCacheHostPath": "",
            "extraArgs": ["--max-report-age=90"],
            "admissionPolicy": {"enabled": False},
            "podAnnotations": {"example.com/team": "ml-platform"},
        },
        "scheduler": {"name": "gpu-scheduler", "replicas": 3, "verbosity": 4},
        "extender": {
            "policy": "spread",
            "mode": "all-feasible",
            "nvlink": "required",
            "logLevel": "debug",
            "ignorable": True,
            "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": "kubernetes.io/os",
                                        "operator": "In",
                                        "values": ["linux"],
                                    }
                                ]
                            }
                        ]
                    }
                }
            },
        },
    },
}


def deploy_manifests() -> list[Path]:
    """deploy/'s manifests: its YAML files, less the kustomization (its optional kustomize
    components live in a folder below and are not among them)."""
    return sorted(p for p in DEPLOY_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


def helm_run(
    helm: Path, *args: str, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run helm (never raises on its exit code: the tests look at it)."""
    return subprocess.run(
        [str(helm), *args],
        input=input_text,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def values_args(values: Mapping[str, Any]) -> tuple[list[str], str]:
    """Arguments and standard input that hand ``values`` to helm."""
    return ["--values", "-"], yaml.safe_dump(dict(values))


def template(
    helm: Path,
    values: Mapping[str, Any],
    namespace: str,
    *,
    include_crds: bool = True,
) -> list[Document]:
    """``helm template`` of the chart as parsed documents; fails the test on a helm error."""
    args, stdin = values_args(values)
    crds = ["--include-crds"] if include_crds else []
    result = helm_run(
        helm,
        "template",
        RELEASE,
        str(CHART_DIR),
        "--namespace",
        namespace,
        *crds,
        *args,
        input_text=stdin,
    )
    assert result.returncode == 0, result.stderr
    return parse_documents(result.stdout, Path(f"helm template ({namespace})"))


def by_key(documents: Sequence[Document]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """Documents by (kind, name); a duplicate is a failure."""
    found: dict[tuple[str, str], Mapping[str, Any]] = {}
    for document in documents:
        key = (document.kind, document.name)
        assert key not in found, f"{key} rendered twice"
        found[key] = document.body
    return found


def without_helm_metadata(value: Any) -> Any:
    """Pure: ``value`` less Helm's own labels and the pod templates' checksum annotations."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            kept = item
            if key == "labels" and isinstance(item, Mapping):
                kept = {k: v for k, v in item.items() if k not in HELM_LABELS}
            elif key == "annotations" and isinstance(item, Mapping):
                kept = {k: v for k, v in item.items() if not k.startswith("checksum/")}
                if not kept:
                    continue
            out[key] = without_helm_metadata(kept)
        return out
    if isinstance(value, list):
        return [without_helm_metadata(item) for item in value]
    return value


def dig(body: Mapping[str, Any], path: str) -> Any:
    """Pure: the value at a dotted path with list indexes and ConfigMap YAML keys, e.g.
    ``spec.template.spec.containers.0.args`` or ``data.config.yaml:extenders.0.urlPrefix``."""
    current: Any = body
    document_key, _, inner = path.partition(":")
    for part in _split(document_key):
        current = current[int(part)] if isinstance(current, list) else current[part]
    if inner:
        current = yaml.safe_load(current)
        for part in inner.split("."):
            current = current[int(part)] if isinstance(current, list) else current[part]
    return current


def _split(path: str) -> list[str]:
    """``data.config.yaml`` names the key ``config.yaml``: a key that holds a file keeps its dot."""
    parts = path.split(".")
    merged: list[str] = []
    for part in parts:
        if merged and part in ("yaml", "json"):
            merged[-1] += "." + part
        else:
            merged.append(part)
    return merged
