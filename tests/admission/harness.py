"""Run the admission webhook against the test control plane, registered as deploy/ registers it.

The registration is ``deploy/admission-webhook.yaml`` with two changes only: the API server
reaches the webhook by URL on loopback (there is no Service network here), and a
namespaceSelector keeps it to the namespaces a test names, so other tests sharing the control
plane never see it. The webhook generates its certificate into a Secret and patches the
caBundle itself, as in a cluster.
"""

from __future__ import annotations

import copy
import secrets
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s_client

from controlplane.cluster import DEPLOY_DIR
from controlplane.harness import ControlPlane
from controlplane.processes import free_ports, http_ok
from controlplane.pytest_plugin import wait_for

WEBHOOK_FILE = DEPLOY_DIR / "admission-webhook.yaml"


@dataclass(frozen=True)
class RunningWebhook:
    configuration: str
    metrics_url: str
    secret: str
    port: int


def registration(name: str, url: str, namespaces: Sequence[str]) -> dict[str, Any]:
    """deploy/'s MutatingWebhookConfiguration, named ``name``, calling ``url``, for
    ``namespaces`` only."""
    document: dict[str, Any] = copy.deepcopy(yaml.safe_load(WEBHOOK_FILE.read_text()))
    document["metadata"]["name"] = name
    for webhook in document["webhooks"]:
        webhook["clientConfig"] = {"url": url}
        webhook["namespaceSelector"] = {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "In",
                    "values": list(namespaces),
                }
            ]
        }
    return document


@contextmanager
def admission_webhook(
    plane: ControlPlane,
    namespaces: Sequence[str],
    workdir: Path,
    *,
    secret_namespace: str,
    extra_args: Sequence[str] = (),
) -> Iterator[RunningWebhook]:
    """Register and start the webhook; both go away afterwards."""
    name = f"vramfit-admission-{secrets.token_hex(3)}"
    port, metrics_port = free_ports(2)
    with plane.api_client() as api:
        registrations = k8s_client.AdmissionregistrationV1Api(api)
        registrations.create_mutating_webhook_configuration(
            registration(name, f"https://127.0.0.1:{port}/mutate", namespaces)
        )
        process = plane.start_process(
            name,
            [
                sys.executable,
                "-m",
                "admission.cli",
                f"--kubeconfig={plane.kubeconfig}",
                f"--listen=127.0.0.1:{port}",
                f"--metrics-listen=127.0.0.1:{metrics_port}",
                f"--secret={secret_namespace}/{name}-tls",
                f"--webhook-configuration={name}",
                "--hosts=127.0.0.1",
                f"--cert-dir={workdir / name}",
                "--log-level=debug",
                *extra_args,
            ],
            lambda: http_ok(f"http://127.0.0.1:{metrics_port}/readyz", lambda b: b == b"ok\n"),
        )
        try:
            wait_for(
                "the webhook to patch its caBundle",
                lambda: all(
                    w.client_config.ca_bundle
                    for w in registrations.read_mutating_webhook_configuration(name).webhooks
                ),
            )
            yield RunningWebhook(
                name, f"http://127.0.0.1:{metrics_port}/metrics", f"{name}-tls", port
            )
        finally:
            registrations.delete_mutating_webhook_configuration(name)
            process.stop()
