"""deploy/kustomization.yaml: it lists every manifest in deploy/, ``kubectl kustomize`` renders
exactly those objects, and ``kubectl apply --server-side -k deploy/`` works on the real API
server. The cert-manager component renders what the chart renders with cert-manager."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.harness import ControlPlane
from controlplane.manifests import FIELD_MANAGER, is_api_object, load_documents, parse_documents
from tests.deploy.chart import DEPLOY_DIR, VARIANTS, by_key, deploy_manifests, template

KUSTOMIZATION = DEPLOY_DIR / "kustomization.yaml"
COMPONENT = DEPLOY_DIR / "components" / "cert-manager"


def test_the_kustomization_lists_every_manifest_and_nothing_else() -> None:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text(encoding="utf-8"))
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == [p.name for p in deploy_manifests()]


@pytest.mark.integration
def test_kubectl_kustomize_renders_exactly_the_manifests(control_plane: ControlPlane) -> None:
    built = control_plane.kubectl("kustomize", str(DEPLOY_DIR))
    rendered = parse_documents(built.stdout, Path("kubectl kustomize deploy/"))
    expected = [d for d in load_documents(deploy_manifests()) if is_api_object(d)]
    assert {(d.kind, d.name): _spaced(d.body) for d in rendered} == {
        (d.kind, d.name): _spaced(d.body) for d in expected
    }


@pytest.mark.integration
def test_kubectl_apply_k_deploy_works_server_side(control_plane: ControlPlane) -> None:
    objects = [d for d in load_documents(deploy_manifests()) if is_api_object(d)]
    result = control_plane.kubectl(
        "apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-k", str(DEPLOY_DIR)
    )
    lines = [line for line in result.stdout.splitlines() if line]
    assert len(lines) == len(objects), lines
    assert all(line.endswith("serverside-applied") for line in lines), lines


@pytest.mark.integration
def test_the_cert_manager_component_matches_the_chart(
    control_plane: ControlPlane, helm: Path, tmp_path: Path
) -> None:
    """An overlay of deploy/ with the component renders what the chart renders with
    admission.certificates=certManager (the chart's labels aside)."""
    overlay = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # kustomize takes relative paths only.
        "resources": [os.path.relpath(DEPLOY_DIR, tmp_path)],
        "components": [os.path.relpath(COMPONENT, tmp_path)],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay), encoding="utf-8")
    built = control_plane.kubectl("kustomize", str(tmp_path))
    kustomized = by_key(parse_documents(built.stdout, Path("kubectl kustomize overlay")))
    chart = by_key(template(helm, VARIANTS["admission-cert-manager"], "vramfit-system"))
    for key in [
        ("Issuer", "vramfit-admission"),
        ("Certificate", "vramfit-admission"),
        ("MutatingWebhookConfiguration", "vramfit-admission"),
    ]:
        assert _unlabelled(chart[key]) == _unlabelled(kustomized[key]), key
    chart_pod = chart[("Deployment", "vramfit-admission")]["spec"]["template"]["spec"]
    kustomized_pod = kustomized[("Deployment", "vramfit-admission")]["spec"]["template"]["spec"]
    assert chart_pod["containers"][0]["command"] == kustomized_pod["containers"][0]["command"]
    assert chart_pod["volumes"] == kustomized_pod["volumes"]


def _unlabelled(body: Mapping[str, Any]) -> dict[str, Any]:
    """Pure: ``body`` without its labels (the chart labels what the component leaves bare)."""
    metadata = {k: v for k, v in body["metadata"].items() if k != "labels"}
    return {**body, "metadata": metadata}


def _spaced(value: Any) -> Any:
    """Pure: every string with its runs of white space made one space, YAML files in ConfigMaps
    parsed first. kustomize's YAML writer adds a blank line inside a folded scalar that has a
    more-indented line (the admission policy's CEL, where white space means nothing); YAML
    embedded in a ConfigMap keeps its indentation, which does mean something, by being parsed.
    """
    if isinstance(value, Mapping):
        if value.get("kind") == "ConfigMap" and isinstance(value.get("data"), Mapping):
            value = {**value, "data": {k: yaml.safe_load(v) for k, v in value["data"].items()}}
        return {k: _spaced(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_spaced(item) for item in value]
    if isinstance(value, str):
        return " ".join(value.split())
    return value
