"""deploy/'s NetworkPolicies: each selects the pods of the workload it guards, opens only the
ports those pods serve to Prometheus, lets them reach only the API server, and the real API
server accepts them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from controlplane.cluster import DEPLOY_DIR
from controlplane.harness import ControlPlane
from controlplane.manifests import Document, load_documents, server_side_apply

# NetworkPolicy: (the workload it guards, the ports Prometheus may reach)
GUARDS = {
    "vramfit-scheduler": (("Deployment", "vramfit-scheduler"), {9888, 10259}),
    "vramfit-agent": (("DaemonSet", "vramfit-agent"), {9402}),
}
API_SERVER_PORTS = {443, 6443}


def documents() -> dict[tuple[str, str], Mapping[str, Any]]:
    found: list[Document] = load_documents(sorted(DEPLOY_DIR.glob("*.yaml")))
    return {(d.kind, d.name): d.body for d in found}


def _ports(rule: Mapping[str, Any]) -> set[int]:
    return {int(p["port"]) for p in rule.get("ports", [])}


@pytest.mark.parametrize("name", GUARDS, ids=GUARDS)
def test_the_policy_guards_its_workload_and_opens_only_its_metrics(name: str) -> None:
    bodies = documents()
    policy = bodies[("NetworkPolicy", name)]
    workload_key, metrics_ports = GUARDS[name]
    workload = bodies[workload_key]
    template = workload["spec"]["template"]
    labels = template["metadata"]["labels"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert policy["metadata"]["namespace"] == workload["metadata"]["namespace"]
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    served = {
        int(p["containerPort"]) for c in template["spec"]["containers"] for p in c.get("ports", [])
    }
    (ingress,) = policy["spec"]["ingress"]
    assert _ports(ingress) == metrics_ports <= served
    (source,) = ingress["from"]
    assert source["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    assert "kubernetes.io/metadata.name" in source["namespaceSelector"]["matchLabels"]
    (egress,) = policy["spec"]["egress"]
    assert _ports(egress) == API_SERVER_PORTS and "to" not in egress


@pytest.mark.integration
def test_the_real_api_server_accepts_the_policies(control_plane: ControlPlane) -> None:
    files = [DEPLOY_DIR / "namespace.yaml", *sorted(DEPLOY_DIR.glob("*-network-policy.yaml"))]
    applied = server_side_apply(control_plane.kubectl, load_documents(files))
    assert sum("networkpolicy" in line for line in applied) == len(GUARDS), applied
    for name in GUARDS:
        got = control_plane.kubectl(
            "get",
            "networkpolicy",
            name,
            "-n",
            "vramfit-system",
            "-o",
            "jsonpath={.spec.podSelector}",
        )
        assert name in got.stdout
