"""Certificate rotation against the real API server: the Secret renewed in place, the caBundle
trusting old and new CA across a CA rotation, and a running webhook serving a renewed
certificate on its next connection without a restart."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from kubernetes import client as k8s_client
from prometheus_client import CollectorRegistry

from admission.certs import K_BUNDLE, K_CA_CERT, K_TLS_CERT, K_TLS_KEY, Bundle, new_serving
from admission.config import build_settings
from admission.keeper import CertificateKeeper
from admission.metrics import AdmissionMetrics
from controlplane.harness import ControlPlane
from controlplane.pytest_plugin import wait_for
from tests.admission.harness import admission_webhook, registration

pytestmark = pytest.mark.integration

T0 = dt.datetime.now(dt.UTC)


@pytest.fixture
def space(control_plane: ControlPlane) -> Iterator[tuple[k8s_client.ApiClient, str, str]]:
    """A namespace for the Secret and a registration (for no namespace) whose caBundle is kept."""
    name = f"rot-{secrets.token_hex(3)}"
    with control_plane.api_client() as api:
        core = k8s_client.CoreV1Api(api)
        registrations = k8s_client.AdmissionregistrationV1Api(api)
        core.create_namespace({"metadata": {"name": name}})
        registrations.create_mutating_webhook_configuration(
            registration(name, "https://127.0.0.1:9/mutate", ["no-such-namespace"])
        )
        try:
            yield api, name, name
        finally:
            registrations.delete_mutating_webhook_configuration(name)
            core.delete_namespace(name)


def _keeper(
    api: k8s_client.ApiClient, namespace: str, config: str, at: dt.datetime, folder: Path
) -> CertificateKeeper:
    settings = build_settings(
        listen="127.0.0.1:1",
        metrics_listen="127.0.0.1:2",
        secret=f"{namespace}/webhook-tls",
        webhook_configuration=config,
        hosts="127.0.0.1",
        cert_dir=str(folder),
        ca_days=300,
        serving_days=30,
    )
    return CertificateKeeper(api, settings, AdmissionMetrics(CollectorRegistry()), clock=lambda: at)


def _ca_bundle(api: k8s_client.ApiClient, config: str) -> list[x509.Certificate]:
    found = k8s_client.AdmissionregistrationV1Api(api).read_mutating_webhook_configuration(config)
    return x509.load_pem_x509_certificates(
        base64.b64decode(found.webhooks[0].client_config.ca_bundle)
    )


@pytest.mark.parametrize(
    ("days", "new_ca"),
    [
        pytest.param(25, False, id="serving-renewed-same-ca"),
        pytest.param(250, True, id="ca-rotated"),
    ],
)
def test_renewal_through_the_api(
    space: tuple[k8s_client.ApiClient, str, str], tmp_path: Path, days: int, new_ca: bool
) -> None:
    api, namespace, config = space
    first = _keeper(api, namespace, config, T0, tmp_path).reconcile()
    assert _ca_bundle(api, config) == [x509.load_pem_x509_certificate(first.ca_cert)]
    assert (tmp_path / "serving.pem").read_bytes() == first.serving_pem
    later = _keeper(api, namespace, config, T0 + dt.timedelta(days=days), tmp_path).reconcile()
    assert later.tls_cert != first.tls_cert
    assert (later.ca_cert != first.ca_cert) is new_ca
    assert (tmp_path / "serving.pem").read_bytes() == later.serving_pem
    trusted = _ca_bundle(api, config)
    assert x509.load_pem_x509_certificate(later.ca_cert) in trusted
    assert x509.load_pem_x509_certificate(first.ca_cert) in trusted  # kept until it expires
    assert len(trusted) == (2 if new_ca else 1)
    # Another replica finds nothing to do.
    again = _keeper(api, namespace, config, T0 + dt.timedelta(days=days), tmp_path)
    assert again.reconcile() == later


def _served_serial(port: int, ca_pem: bytes) -> int:
    context = ssl.create_default_context(cadata=ca_pem.decode())
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_a_running_webhook_serves_a_renewed_certificate_without_a_restart(
    control_plane: ControlPlane, space: tuple[k8s_client.ApiClient, str, str], tmp_path: Path
) -> None:
    api, namespace, _ = space
    core = k8s_client.CoreV1Api(api)
    with admission_webhook(
        control_plane,
        [namespace],
        tmp_path,
        secret_namespace=namespace,
        extra_args=["--check-interval=1"],
    ) as running:
        secret = core.read_namespaced_secret(running.secret, namespace)
        data = {k: base64.b64decode(v) for k, v in secret.data.items()}
        bundle = Bundle.from_data(data)
        assert bundle is not None
        before = _served_serial(running.port, bundle.trusted)
        cert, key = new_serving(
            bundle.ca_cert,
            bundle.ca_key,
            ["127.0.0.1"],
            dt.datetime.now(dt.UTC),
            dt.timedelta(days=90),
        )
        data.update({K_TLS_CERT: cert, K_TLS_KEY: key})
        secret.data = {k: base64.b64encode(v).decode() for k, v in data.items()}
        core.replace_namespaced_secret(running.secret, namespace, secret)
        renewed = x509.load_pem_x509_certificate(cert).serial_number
        assert renewed != before
        wait_for(
            "the webhook to serve the renewed certificate",
            lambda: _served_serial(running.port, data[K_BUNDLE]) == renewed,
            timeout=30,
        )
        assert data[K_CA_CERT] == bundle.ca_cert
