"""Least privilege, proven: what each ServiceAccount in deploy/ may do, held to an allow-list.

deploy/'s ServiceAccounts and RBAC are applied to the real API server; each account gets a
token from the TokenRequest API, and ``kubectl auth can-i --list`` run with that token (a
SelfSubjectRulesReview) says what it may do, in vramfit-system and in a workload namespace.
That must be exactly: what any account may do (a fresh account with no binding: discovery,
reviews of itself), the upstream roles the table names for it (read from the cluster), and
the table's own rows. A permission more is an excess, one less a missing one, and a
ServiceAccount in deploy/ without a row fails too. Each row is a verb the component's code
uses (the comments in deploy/ say which call).

The agent DaemonSet's security context is held to what NVML and ``/proc`` need.
"""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import pytest
import yaml
from kubernetes import client as k8s_client

from controlplane.harness import ControlPlane
from controlplane.manifests import load_documents, server_side_apply, yaml_files

DEPLOY: Final = Path(__file__).resolve().parents[2] / "deploy"
SYSTEM: Final = "vramfit-system"
RBAC_KINDS: Final = frozenset(
    {
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
    }
)

_AGENT_ANYWHERE = frozenset(
    {
        "get nodegpustates.vramfit.io",
        "create nodegpustates.vramfit.io",
        "patch nodegpustates.vramfit.io/status",
        "list pods",
        "watch pods",
        "list localmodelcaches.serving.kserve.io",
        "get localmodelnodes.serving.kserve.io",
    }
)
_SCHEDULER_ANYWHERE = frozenset(
    {
        # the extender: its view from watches, the reservation annotation, the binding
        "get pods",
        "list pods",
        "watch pods",
        "patch pods",
        "create pods/binding",
        "list nodegpustates.vramfit.io",
        "watch nodegpustates.vramfit.io",
        "list nodes",
        "watch nodes",
        # the extender: the ResourceClaims and ResourceSlices of pods that claim GPUs (DRA)
        "list resourceclaims.resource.k8s.io",
        "watch resourceclaims.resource.k8s.io",
        "list resourceslices.resource.k8s.io",
        "watch resourceslices.resource.k8s.io",
    }
)
ALLOWED: Final[Mapping[str, Mapping[str, frozenset[str]]]] = {
    "vramfit-agent": {
        SYSTEM: _AGENT_ANYWHERE
        | {"create leases.coordination.k8s.io", "patch leases.coordination.k8s.io"},
        "elsewhere": _AGENT_ANYWHERE,
    },
    "vramfit-scheduler": {
        SYSTEM: _SCHEDULER_ANYWHERE
        | {
            # kube-scheduler's leader election, with a Lease of its own
            "create leases.coordination.k8s.io",
            "get leases.coordination.k8s.io/vramfit-scheduler",
            "update leases.coordination.k8s.io/vramfit-scheduler",
            # the extender reads the agents' Leases
            "list leases.coordination.k8s.io",
            "watch leases.coordination.k8s.io",
        },
        "elsewhere": _SCHEDULER_ANYWHERE,
    },
    "vramfit-admission": {
        SYSTEM: frozenset(
            {
                "create secrets",
                "get secrets/vramfit-admission-tls",
                "update secrets/vramfit-admission-tls",
                "get mutatingwebhookconfigurations.admissionregistration.k8s.io/vramfit-admission",
                "patch mutatingwebhookconfigurations.admissionregistration.k8s.io/vramfit-admission",
                "create events",
            }
        ),
        "elsewhere": frozenset(
            {
                "get mutatingwebhookconfigurations.admissionregistration.k8s.io/vramfit-admission",
                "patch mutatingwebhookconfigurations.admissionregistration.k8s.io/vramfit-admission",
                "create events",
            }
        ),
    },
}
UPSTREAM: Final[Mapping[str, tuple[str, ...]]] = {
    "vramfit-scheduler": ("system:kube-scheduler", "system:volume-scheduler"),
}
"""Upstream ClusterRoles deploy/ binds an account to: granted as upstream defines them."""

_ROW = re.compile(r"^(\S*)\s+\[([^\]]*)\]\s+\[([^\]]*)\]\s+\[([^\]]*)\]\s*$")


def parse_can_i(text: str) -> frozenset[str]:
    """Pure: ``kubectl auth can-i --list --no-headers`` output as ``"verb resource[/name]"``
    (non-resource URLs as ``"verb /url"``)."""
    atoms = set()
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _ROW.match(line)
        if match is None:
            raise ValueError(f"unexpected kubectl auth can-i line: {line!r}")
        resource, urls, names, verbs = (match.group(i) for i in range(1, 5))
        targets = [resource] if resource else urls.split()
        for verb in verbs.split():
            for target in targets:
                for name in names.split() or [""]:
                    atoms.add(f"{verb} {target}/{name}" if name else f"{verb} {target}")
    return frozenset(atoms)


def _resource(group: str, resource: str) -> str:
    base, _, sub = resource.partition("/")
    qualified = f"{base}.{group}" if group else base
    return f"{qualified}/{sub}" if sub else qualified


def rule_atoms(rules: list[Any]) -> frozenset[str]:
    """Pure: RBAC rules (``V1PolicyRule``) in the notation of :func:`parse_can_i`."""
    atoms = set()
    for rule in rules:
        for verb in rule.verbs or []:
            for url in rule.non_resource_ur_ls or []:
                atoms.add(f"{verb} {url}")
            for group in rule.api_groups or []:
                for resource in rule.resources or []:
                    target = _resource(group, resource)
                    for name in rule.resource_names or [""]:
                        atoms.add(f"{verb} {target}/{name}" if name else f"{verb} {target}")
    return frozenset(atoms)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "pods   []   []   [get list]\n",
            {"get pods", "list pods"},
            id="core-resource",
        ),
        pytest.param(
            "leases.coordination.k8s.io   []   [vramfit-scheduler]   [get update]\n",
            {
                "get leases.coordination.k8s.io/vramfit-scheduler",
                "update leases.coordination.k8s.io/vramfit-scheduler",
            },
            id="named",
        ),
        pytest.param(
            "                [/healthz /livez]   []   [get]\n",
            {"get /healthz", "get /livez"},
            id="non-resource-urls",
        ),
        pytest.param(
            "nodegpustates.vramfit.io/status   []   []   [patch]\n",
            {"patch nodegpustates.vramfit.io/status"},
            id="subresource",
        ),
    ],
)
def test_parse_can_i(text: str, expected: set[str]) -> None:
    assert parse_can_i(text) == expected


def test_rule_atoms_write_rules_as_kubectl_prints_them() -> None:
    rules = [
        k8s_client.V1PolicyRule(
            api_groups=["resource.k8s.io"], resources=["resourceclaims/status"], verbs=["patch"]
        ),
        k8s_client.V1PolicyRule(api_groups=[""], resources=["pods/binding"], verbs=["create"]),
        k8s_client.V1PolicyRule(non_resource_ur_ls=["/metrics"], verbs=["get"]),
    ]
    assert rule_atoms(rules) == {
        "patch resourceclaims.resource.k8s.io/status",
        "create pods/binding",
        "get /metrics",
    }


# ----- against the real API server -------------------------------------------------------------


def deploy_service_accounts() -> list[str]:
    documents = load_documents(yaml_files(DEPLOY))
    return sorted(d.name for d in documents if d.kind == "ServiceAccount")


@pytest.fixture(scope="module")
def rbac(control_plane: ControlPlane) -> ControlPlane:
    """deploy/'s namespaces, CRDs, ServiceAccounts and RBAC, as shipped."""
    documents = [d for d in load_documents(yaml_files(DEPLOY)) if d.kind in RBAC_KINDS]
    server_side_apply(control_plane.kubectl, documents)
    return control_plane


def can_i(plane: ControlPlane, kubeconfig: Path, namespace: str) -> frozenset[str]:
    result = subprocess.run(
        [str(plane.binaries.kubectl), f"--kubeconfig={kubeconfig}", "auth", "can-i", "--list",
         f"--namespace={namespace}", "--no-headers"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return parse_can_i(result.stdout)


@pytest.fixture(scope="module")
def baseline_account(rbac: ControlPlane) -> Iterator[Path]:
    """A kubeconfig of a fresh ServiceAccount bound to nothing."""
    name = f"rbac-baseline-{secrets.token_hex(3)}"
    with rbac.api_client() as api:
        core = k8s_client.CoreV1Api(api)
        core.create_namespaced_service_account(SYSTEM, {"metadata": {"name": name}})
        try:
            yield rbac.service_account_identity(SYSTEM, name).kubeconfig
        finally:
            core.delete_namespaced_service_account(name, SYSTEM)


def upstream_atoms(plane: ControlPlane, roles: tuple[str, ...]) -> frozenset[str]:
    with plane.api_client() as api:
        rbac_api = k8s_client.RbacAuthorizationV1Api(api)
        return frozenset().union(*(rule_atoms(rbac_api.read_cluster_role(r).rules) for r in roles))


def test_every_service_account_in_deploy_has_an_allow_list() -> None:
    assert deploy_service_accounts() == sorted(ALLOWED)


@pytest.mark.integration
@pytest.mark.parametrize("where", [SYSTEM, "elsewhere"])
@pytest.mark.parametrize("account", sorted(ALLOWED))
def test_each_account_may_do_exactly_its_allow_list(
    rbac: ControlPlane, baseline_account: Path, namespace: str, account: str, where: str
) -> None:
    target = SYSTEM if where == SYSTEM else namespace
    identity = rbac.service_account_identity(SYSTEM, account, label="rbac")
    granted = can_i(rbac, identity.kubeconfig, target)
    baseline = can_i(rbac, baseline_account, target)
    expected = baseline | upstream_atoms(rbac, UPSTREAM.get(account, ())) | ALLOWED[account][where]
    assert sorted(granted - expected) == [], f"{account} may do more than its allow-list"
    assert sorted(expected - granted) == [], f"{account} may not do all its allow-list says"


# ----- the agent DaemonSet's security context --------------------------------------------------


def agent_pod_spec() -> dict[str, Any]:
    daemonset = yaml.safe_load((DEPLOY / "agent-daemonset.yaml").read_text())
    spec: dict[str, Any] = daemonset["spec"]["template"]["spec"]
    return spec


def test_the_agent_keeps_no_capability_and_writes_nothing_of_the_host() -> None:
    spec = agent_pod_spec()
    (container,) = spec["containers"]
    context = container["securityContext"]
    assert context["capabilities"] == {"drop": ["ALL"]}  # none added back
    assert context["privileged"] is False
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    # hostPID (NVML's process ids are the host's; /proc/<pid>/cgroup maps them to pods) and
    # nothing else of the host's namespaces.
    assert spec["hostPID"] is True
    assert not spec.get("hostNetwork") and not spec.get("hostIPC")
    host_paths = {v["name"] for v in spec["volumes"] if "hostPath" in v}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert host_paths and all(mounts[name].get("readOnly") is True for name in host_paths)
    # The token mounted is the pod's own bound token: it carries the node's name.
    assert spec["serviceAccountName"] == "vramfit-agent"


def test_every_privilege_the_agent_keeps_is_justified_in_the_manifest() -> None:
    lines = (DEPLOY / "agent-daemonset.yaml").read_text().splitlines()
    for kept in ("hostPID: true", "runAsUser: 0", "capabilities:"):
        index = next(i for i, line in enumerate(lines) if kept in line)
        above = lines[index - 1].strip()
        assert "#" in lines[index] or above.startswith("#"), f"{kept!r} has no comment saying why"
