"""charts/vramfit: ``helm lint`` with every variant, the schema refusing bad values, and what
``helm template`` renders (the defaults are deploy/; the switches do what they say)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.manifests import load_documents
from tests.deploy.chart import (
    CHART_DIR,
    DASHBOARD_FILE,
    DEPLOY_DIR,
    RULES_FILE,
    VARIANTS,
    by_key,
    deploy_manifests,
    dig,
    helm_run,
    template,
    values_args,
    without_helm_metadata,
)

pytestmark = pytest.mark.integration

NAMESPACE = "vramfit-system"


@pytest.mark.parametrize("values", list(VARIANTS.values()), ids=list(VARIANTS))
def test_helm_lint_passes_strict(helm: Path, values: Mapping[str, Any]) -> None:
    args, stdin = values_args(values)
    result = helm_run(helm, "lint", "--strict", str(CHART_DIR), *args, input_text=stdin)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@dataclass(frozen=True)
class Rejected:
    values: Mapping[str, Any]
    message: str  # part of helm's message that points at the bad value


REJECTED = {
    "unknown-mode": Rejected({"scheduler": {"mode": "both"}}, "/scheduler/mode"),
    "misspelt-key": Rejected({"agent": {"nodeSelectors": {}}}, "'nodeSelectors' not allowed"),
    "unknown-policy": Rejected({"extender": {"policy": "fastest"}}, "/extender/policy"),
    "unknown-nvlink-mode": Rejected({"extender": {"nvlink": "always"}}, "/extender/nvlink"),
    "port-out-of-range": Rejected({"extender": {"port": 70000}}, "/extender/port"),
    "tls-without-secret": Rejected(
        {"extender": {"tls": {"enabled": True, "serverName": "x"}}}, "/extender/tls/secretName"
    ),
    "tls-without-server-name": Rejected(
        {"extender": {"tls": {"enabled": True, "secretName": "s"}}}, "/extender/tls/serverName"
    ),
    "timeout-not-a-duration": Rejected(
        {"extender": {"httpTimeout": "ten"}}, "/extender/httpTimeout"
    ),
    "flag-without-dashes": Rejected({"agent": {"extraArgs": ["verbose"]}}, "/agent/extraArgs/0"),
    "relative-cache-path": Rejected(
        {"agent": {"modelCacheHostPath": "models"}}, "/agent/modelCacheHostPath"
    ),
    "node-selector-not-strings": Rejected(
        {"agent": {"nodeSelector": {"gpu": True}}}, "/agent/nodeSelector/gpu"
    ),
    "bad-quantity": Rejected(
        {"extender": {"resources": {"limits": {"memory": "two gigs"}}}},
        "/extender/resources/limits/memory",
    ),
    "bad-toleration-operator": Rejected(
        {"agent": {"tolerations": [{"key": "a", "operator": "Maybe"}]}},
        "/agent/tolerations/0/operator",
    ),
    "no-scheduler-replicas": Rejected({"scheduler": {"replicas": 0}}, "/scheduler/replicas"),
    "empty-image": Rejected({"image": {"repository": ""}}, "/image/repository"),
}


@pytest.mark.parametrize("case", list(REJECTED.values()), ids=list(REJECTED))
def test_the_schema_rejects_bad_values(helm: Path, case: Rejected) -> None:
    args, stdin = values_args(case.values)
    lint = helm_run(helm, "lint", str(CHART_DIR), *args, input_text=stdin)
    assert lint.returncode != 0
    assert case.message in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    rendered = helm_run(helm, "template", "v", str(CHART_DIR), *args, input_text=stdin)
    assert rendered.returncode != 0
    assert case.message in rendered.stderr, rendered.stderr


def test_template_refuses_one_port_for_verbs_and_probes(helm: Path) -> None:
    args, stdin = values_args({"extender": {"port": 9888, "metricsPort": 9888}})
    result = helm_run(helm, "template", "v", str(CHART_DIR), *args, input_text=stdin)
    assert result.returncode != 0
    assert "extender.port and extender.metricsPort must differ" in result.stderr


def test_the_defaults_render_exactly_what_deploy_holds(helm: Path) -> None:
    chart = by_key(template(helm, {}, NAMESPACE))
    deploy = {
        (d.kind, d.name): d.body
        for d in load_documents(deploy_manifests())
        if d.kind != "Namespace"
    }
    # The chart adds the dashboard; Helm creates the namespace (--create-namespace).
    assert set(chart) - set(deploy) == {("ConfigMap", "vramfit-grafana-dashboard")}
    assert set(deploy) - set(chart) == set()
    for key, body in deploy.items():
        assert without_helm_metadata(chart[key]) == body, key


def test_the_chart_crd_is_the_deploy_crd() -> None:
    (chart_crd,) = load_documents([CHART_DIR / "crds" / "nodegpustate.yaml"])
    (deploy_crd,) = load_documents([DEPLOY_DIR / "crd-nodegpustate.yaml"])
    assert chart_crd.body == deploy_crd.body


@dataclass(frozen=True)
class Rendered:
    values: Mapping[str, Any]
    kind: str
    name: str
    path: str  # see tests.deploy.chart.dig
    expected: Any


NS = "t-render"
EXTENDER_ARGS = "spec.template.spec.containers.1.command"
RENDERED = {
    "namespace-reaches-the-agent-lease": Rendered(
        {},
        "DaemonSet",
        "vramfit-agent",
        "spec.template.spec.containers.0.args.4",
        f"--lease-namespace={NS}",
    ),
    "namespace-reaches-the-extender": Rendered(
        {}, "Deployment", "vramfit-scheduler", f"{EXTENDER_ARGS}.6", f"--agent-namespace={NS}"
    ),
    "nominating-ahead-is-on": Rendered(
        {}, "Deployment", "vramfit-scheduler", f"{EXTENDER_ARGS}.5", "--nominate-ahead"
    ),
    "nominating-ahead-turned-off": Rendered(
        {"extender": {"nominateAhead": False}},
        "Deployment",
        "vramfit-scheduler",
        f"{EXTENDER_ARGS}.5",
        f"--agent-namespace={NS}",
    ),
    "namespace-reaches-the-admission-policy": Rendered(
        {},
        "ValidatingAdmissionPolicy",
        "vramfit-agent-own-node",
        "spec.matchConditions.0.expression",
        f'request.userInfo.username == "system:serviceaccount:{NS}:vramfit-agent"',
    ),
    "namespace-reaches-leader-election": Rendered(
        {},
        "ConfigMap",
        "vramfit-scheduler-config",
        "data.config.yaml:leaderElection.resourceNamespace",
        NS,
    ),
    "profile-name": Rendered(
        {"scheduler": {"name": "gpu"}},
        "ConfigMap",
        "vramfit-scheduler-config",
        "data.config.yaml:profiles.0.schedulerName",
        "gpu",
    ),
    "preempt-verb": Rendered(
        {},
        "ConfigMap",
        "vramfit-scheduler-config",
        "data.config.yaml:extenders.0.preemptVerb",
        "preempt",
    ),
    "default-scheduler-preempt-verb": Rendered(
        VARIANTS["default-scheduler"],
        "ConfigMap",
        "vramfit-default-scheduler-extender",
        "data.config.yaml:extenders.0.preemptVerb",
        "preempt",
    ),
    "tls-url-on-loopback": Rendered(
        VARIANTS["second-profile-tls"],
        "ConfigMap",
        "vramfit-scheduler-config",
        "data.config.yaml:extenders.0.urlPrefix",
        "https://127.0.0.1:8888/scheduler",
    ),
    "tls-ca-from-the-secret": Rendered(
        VARIANTS["second-profile-tls"],
        "ConfigMap",
        "vramfit-scheduler-config",
        "data.config.yaml:extenders.0.tlsConfig",
        {"caFile": "/etc/vramfit-tls/ca.crt", "serverName": "localhost"},
    ),
    "tls-secret-mounted-in-the-scheduler": Rendered(
        VARIANTS["second-profile-tls"],
        "Deployment",
        "vramfit-scheduler",
        "spec.template.spec.containers.0.volumeMounts.1",
        {"name": "tls", "mountPath": "/etc/vramfit-tls", "readOnly": True},
    ),
    "tls-serves-the-certificate": Rendered(
        VARIANTS["second-profile-tls"],
        "Deployment",
        "vramfit-scheduler",
        f"{EXTENDER_ARGS}.7",
        "--tls-cert=/etc/vramfit-tls/tls.crt",
    ),
    "default-scheduler-url-is-the-service": Rendered(
        VARIANTS["default-scheduler"],
        "ConfigMap",
        "vramfit-default-scheduler-extender",
        "data.config.yaml:extenders.0.urlPrefix",
        f"http://vramfit-extender.{NS}.svc:8888/scheduler",
    ),
    "default-scheduler-url-with-a-given-host": Rendered(
        VARIANTS["default-scheduler-tls"],
        "ConfigMap",
        "vramfit-default-scheduler-extender",
        "data.config.yaml:extenders.0.urlPrefix",
        "https://10.96.0.50:8888/scheduler",
    ),
    "default-scheduler-extender-listens-for-the-service": Rendered(
        VARIANTS["default-scheduler"],
        "Deployment",
        "vramfit-extender",
        "spec.template.spec.containers.0.command.1",
        "--listen=0.0.0.0:8888",
    ),
    "default-scheduler-one-extender": Rendered(
        VARIANTS["default-scheduler"], "Deployment", "vramfit-extender", "spec.replicas", 1
    ),
    "default-scheduler-extender-identity": Rendered(
        VARIANTS["default-scheduler"],
        "ClusterRoleBinding",
        "vramfit-extender",
        "subjects.0",
        {"kind": "ServiceAccount", "name": "vramfit-extender", "namespace": NS},
    ),
    "own-image": Rendered(
        VARIANTS["own-image-and-placement"],
        "DaemonSet",
        "vramfit-agent",
        "spec.template.spec.containers.0.image",
        "registry.example.com/gpu/vramfit:0.2.0",
    ),
    "extender-flags": Rendered(
        VARIANTS["own-image-and-placement"],
        "Deployment",
        "vramfit-scheduler",
        f"{EXTENDER_ARGS}",
        [
            "vramfit-extender",
            "--listen=127.0.0.1:8888",
            "--metrics-listen=0.0.0.0:9888",
            "--policy=spread",
            "--mode=all-feasible",
            "--nominate-ahead",
            "--nvlink=required",
            f"--agent-namespace={NS}",
            "--log-level=debug",
        ],
    ),
    "agent-without-model-cache": Rendered(
        VARIANTS["own-image-and-placement"],
        "DaemonSet",
        "vramfit-agent",
        "spec.template.spec.containers.0.args",
        [
            "--backend=nvml",
            "--node-name=$(NODE_NAME)",
            "--listen=0.0.0.0:9402",
            f"--lease-namespace={NS}",
            "--max-report-age=90",
        ],
    ),
    "agent-runtime-class": Rendered(
        VARIANTS["own-image-and-placement"],
        "DaemonSet",
        "vramfit-agent",
        "spec.template.spec.runtimeClassName",
        "nvidia",
    ),
    "agent-annotations-kept-beside-scrape-ones": Rendered(
        VARIANTS["own-image-and-placement"],
        "DaemonSet",
        "vramfit-agent",
        "spec.template.metadata.annotations",
        {
            "example.com/team": "ml-platform",
            "prometheus.io/port": "9402",
            "prometheus.io/scrape": "true",
        },
    ),
    "ignorable-extender": Rendered(
        VARIANTS["own-image-and-placement"],
        "ConfigMap",
        "vramfit-scheduler-config",
        "data.config.yaml:extenders.0.ignorable",
        True,
    ),
    "rule-selector-labels": Rendered(
        VARIANTS["prometheus-rule"],
        "PrometheusRule",
        "vramfit",
        "metadata.labels.release",
        "kube-prometheus-stack",
    ),
    "dashboard-sidecar-label": Rendered(
        {}, "ConfigMap", "vramfit-grafana-dashboard", "metadata.labels.grafana_dashboard", "1"
    ),
}


@pytest.mark.parametrize("case", list(RENDERED.values()), ids=list(RENDERED))
def test_template_renders(helm: Path, case: Rendered) -> None:
    rendered = by_key(template(helm, case.values, NS))
    assert dig(rendered[(case.kind, case.name)], case.path) == case.expected


ABSENT = {
    "no-model-cache-volume": (
        VARIANTS["own-image-and-placement"],
        "DaemonSet",
        "vramfit-agent",
        "model-cache",
    ),
    "no-admission-policy": (
        VARIANTS["own-image-and-placement"],
        "ValidatingAdmissionPolicy",
        "vramfit-agent-own-node",
        None,
    ),
    "no-scrape-annotations": (
        VARIANTS["no-monitoring"],
        "DaemonSet",
        "vramfit-agent",
        "prometheus.io/scrape",
    ),
    "no-dashboard": (VARIANTS["no-monitoring"], "ConfigMap", "vramfit-grafana-dashboard", None),
    "no-prometheus-rule-by-default": ({}, "PrometheusRule", "vramfit", None),
    "no-scheduler-beside-the-default-one": (
        VARIANTS["default-scheduler"],
        "Deployment",
        "vramfit-scheduler",
        None,
    ),
    "no-extender-when-disabled": (VARIANTS["agent-only"], "ClusterRole", "vramfit-extender", None),
    "no-agent-when-disabled": (VARIANTS["extender-only"], "DaemonSet", "vramfit-agent", None),
}


@pytest.mark.parametrize(
    ("values", "kind", "name", "text"), list(ABSENT.values()), ids=list(ABSENT)
)
def test_template_leaves_out(
    helm: Path, values: Mapping[str, Any], kind: str, name: str, text: str | None
) -> None:
    """An object left out entirely (text None), or an object whose rendering lacks ``text``."""
    rendered = by_key(template(helm, values, NS))
    if text is None:
        assert (kind, name) not in rendered
    else:
        assert text not in json.dumps(rendered[(kind, name)])


def test_the_prometheus_rule_holds_the_rules_file(helm: Path) -> None:
    rendered = by_key(template(helm, VARIANTS["prometheus-rule"], NS))
    rules = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    assert rendered[("PrometheusRule", "vramfit")]["spec"] == rules


def test_the_dashboard_configmap_holds_the_dashboard_file(helm: Path) -> None:
    rendered = by_key(template(helm, {}, NS))
    data = rendered[("ConfigMap", "vramfit-grafana-dashboard")]["data"]
    assert json.loads(data["vramfit.json"]) == json.loads(DASHBOARD_FILE.read_text("utf-8"))
