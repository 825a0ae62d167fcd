"""Pure: what each process of the test control plane is given, and in which order it stops.

The harness starts etcd, kube-apiserver, kube-controller-manager and kube-schedulers; their
command lines, the ``KubeSchedulerConfiguration`` a scheduler runs with, the admin kubeconfig
and the stop order are decided here, with no I/O, so that they read as one place and are tested
without the binaries. :mod:`controlplane.harness` re-exports the public names.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

CONTROLLERS: Final = "*,-nodelifecycle"
"""kube-controller-manager's default controllers but node lifecycle (see the harness docstring)."""
SERVICE_ACCOUNT_ISSUER: Final = "https://kubernetes.default.svc.cluster.local"
SCHEDULER_CONFIG_API: Final = "kubescheduler.config.k8s.io/v1"
ALWAYS_ALLOW_PATHS: Final = "/healthz,/readyz,/livez,/metrics"


class ControlPlaneError(RuntimeError):
    """The control plane (or one of its schedulers) could not start; the message has its log."""


def stop_order(names: Sequence[str]) -> list[set[str]]:
    """Pure: which processes to stop together, in order: everything that uses the API server
    (all at once), then kube-apiserver, then etcd; so no client outlives the API it talks to."""
    core = ("kube-apiserver", "etcd")
    groups = [{n for n in names if n not in core}, *({n} for n in core if n in names)]
    return [group for group in groups if group]


def scheduler_configuration(
    config: Mapping[str, Any],
    kubeconfig: Path,
    *,
    leader_elect: bool = False,
    fast_backoff: bool = True,
) -> dict[str, Any]:
    """Pure: ``config`` made to run against this plane.

    Always sets ``clientConnection.kubeconfig`` (kube-scheduler ignores ``--kubeconfig`` when
    ``--config`` is given). Unless ``leader_elect``, turns leader election off, so that several
    schedulers in one test run never wait for each other's lease. With ``fast_backoff``, and
    when the caller set neither, retries unschedulable pods after 1-2 s instead of 1-10 s.
    """
    result: dict[str, Any] = copy.deepcopy(dict(config))
    result.setdefault("apiVersion", SCHEDULER_CONFIG_API)
    result.setdefault("kind", "KubeSchedulerConfiguration")
    if result["kind"] != "KubeSchedulerConfiguration":
        raise ControlPlaneError(
            f"scheduler configuration: kind is {result['kind']!r}, expected KubeSchedulerConfiguration"
        )
    connection = dict(result.get("clientConnection") or {})
    connection["kubeconfig"] = str(kubeconfig)
    result["clientConnection"] = connection
    if not leader_elect:
        election = dict(result.get("leaderElection") or {})
        election["leaderElect"] = False
        result["leaderElection"] = election
    backoff_keys = ("podInitialBackoffSeconds", "podMaxBackoffSeconds")
    if fast_backoff and not any(key in result for key in backoff_keys):
        result["podInitialBackoffSeconds"] = 1
        result["podMaxBackoffSeconds"] = 2
    return result


def kubeconfig_document(server: str, ca_file: Path, token: str, name: str) -> dict[str, Any]:
    """Pure: a kubeconfig for one cluster, one token user, one context."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": server, "certificate-authority": str(ca_file)}}
        ],
        "users": [{"name": f"{name}-admin", "user": {"token": token}}],
        "contexts": [
            {
                "name": name,
                "context": {"cluster": name, "user": f"{name}-admin", "namespace": "default"},
            }
        ],
        "current-context": name,
    }


def pairs(values: Mapping[str, str]) -> str:
    """Pure: ``k1=v1,k2=v2`` in key order, as kube components take gates and API versions."""
    return ",".join(f"{k}={v}" for k, v in sorted(values.items()))


def gate_flags(feature_gates: Mapping[str, bool]) -> list[str]:
    """``--feature-gates`` for every component, when the plane has gates."""
    gates = {k: str(v).lower() for k, v in feature_gates.items()}
    return [f"--feature-gates={pairs(gates)}"] if gates else []


def etcd_command(etcd: Path, data_dir: Path, ports: tuple[int, ...]) -> list[str]:
    """etcd serving clients on ``ports[0]`` and its one peer on ``ports[1]``."""
    client_url, peer_url = (f"http://127.0.0.1:{p}" for p in ports)
    return [
        str(etcd),
        "--name=vramfit",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=vramfit={peer_url}",
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def apiserver_command(
    kube_apiserver: Path,
    *,
    port: int,
    etcd_port: int,
    cert_dir: Path,
    client_ca_file: Path,
    token_file: Path,
    service_account_key: Path,
    feature_gates: Mapping[str, bool],
    runtime_config: Mapping[str, str],
) -> list[str]:
    """kube-apiserver on ``port`` over the etcd on ``etcd_port``, authorizing as a real
    cluster does (Node, RBAC) for the admin token, client certificates and service accounts."""
    return [
        str(kube_apiserver),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        "--bind-address=127.0.0.1",
        # Needed where the host has no default route; a loopback address is only
        # accepted without the endpoint reconciler (nothing here needs it).
        "--advertise-address=127.0.0.1",
        "--endpoint-reconciler-type=none",
        f"--secure-port={port}",
        f"--cert-dir={cert_dir}",
        "--service-cluster-ip-range=10.0.0.0/24",
        # Node: kubelets (the simulated ones included) get a kubelet's rights, no more.
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        f"--client-ca-file={client_ca_file}",
        f"--token-auth-file={token_file}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={service_account_key}",
        f"--service-account-signing-key-file={service_account_key}",
        # No controller-manager: nothing would make service-account tokens, nor
        # lift the not-ready taint that TaintNodesByCondition puts on new nodes.
        "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
        "--allow-privileged=true",
        *gate_flags(feature_gates),
        *([f"--runtime-config={pairs(runtime_config)}"] if runtime_config else []),
    ]


def controller_manager_command(
    kube_controller_manager: Path,
    *,
    port: int,
    kubeconfig: Path,
    cert_dir: Path,
    service_account_key: Path,
    root_ca_file: Path,
    verbosity: int,
    feature_gates: Mapping[str, bool],
) -> list[str]:
    """kube-controller-manager on ``port``: every controller but node lifecycle, signing
    service-account tokens with ``service_account_key`` and publishing ``root_ca_file``."""
    return [
        str(kube_controller_manager),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--authorization-always-allow-paths={ALWAYS_ALLOW_PATHS}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={cert_dir}",
        f"--controllers={CONTROLLERS}",
        f"--service-account-private-key-file={service_account_key}",
        f"--root-ca-file={root_ca_file}",
        "--use-service-account-credentials=false",
        "--leader-elect=false",
        # The defaults (20 and 5 writes a second) queue a 500-pod burst for many seconds.
        "--kube-api-qps=200",
        "--kube-api-burst=400",
        "--concurrent-replicaset-syncs=10",
        "--concurrent-deployment-syncs=10",
        f"--v={verbosity}",
        *gate_flags(feature_gates),
    ]


def scheduler_command(
    kube_scheduler: Path,
    *,
    port: int,
    config_path: Path,
    verbosity: int,
    feature_gates: Mapping[str, bool],
) -> list[str]:
    """kube-scheduler on ``port`` with the configuration file ``config_path``."""
    return [
        str(kube_scheduler),
        f"--config={config_path}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--authorization-always-allow-paths={ALWAYS_ALLOW_PATHS}",
        f"--v={verbosity}",
        *gate_flags(feature_gates),
    ]
