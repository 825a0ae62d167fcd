"""Keeps the webhook's certificate: the Secret, the serving file, and the configuration's caBundle.

Every replica runs the same loop (no leader): read the Secret; if ``certs.renewed`` says it
needs a change, write it with the resourceVersion read (create when absent), so when two
replicas renew at once one wins and the other reads the winner's; then write the serving
certificate to the local file the TLS listener loads on each new connection (atomically, one file
holding certificate and key), and make every webhook of the configuration trust the bundle.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from admission.certs import Bundle, Lifetimes, renewed
from admission.config import Settings
from admission.metrics import AdmissionMetrics

log = logging.getLogger(__name__)

ATTEMPTS = 3
RETRY_S = 10.0


def write_atomically(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one rename (mode 0600), so no reader sees half a file."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".serving-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _decoded(secret: Any) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}


class CertificateKeeper:
    """Reconciles the certificate Secret, the serving file and the caBundle."""

    def __init__(
        self,
        api: k8s.ApiClient,
        settings: Settings,
        metrics: AdmissionMetrics,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.core = k8s.CoreV1Api(api)
        self.registration = k8s.AdmissionregistrationV1Api(api)
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        ca, serving = settings.lifetimes
        self.lifetimes = Lifetimes(ca=ca, serving=serving)

    def _read(self) -> tuple[Bundle | None, str | None]:
        s = self.settings
        try:
            secret = self.core.read_namespaced_secret(
                s.secret_name, s.secret_namespace, _request_timeout=s.api_timeout_s
            )
        except ApiException as exc:
            if exc.status == 404:
                return None, None
            raise
        return Bundle.from_data(_decoded(secret)), secret.metadata.resource_version

    def _store(self, bundle: Bundle, resource_version: str | None) -> None:
        s = self.settings
        body = k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(
                name=s.secret_name,
                namespace=s.secret_namespace,
                resource_version=resource_version,
                labels={"app.kubernetes.io/name": "vramfit-admission"},
            ),
            type="Opaque",
            data={k: base64.b64encode(v).decode("ascii") for k, v in bundle.data().items()},
        )
        if resource_version is None:
            self.core.create_namespaced_secret(
                s.secret_namespace, body, _request_timeout=s.api_timeout_s
            )
        else:
            self.core.replace_namespaced_secret(
                s.secret_name, s.secret_namespace, body, _request_timeout=s.api_timeout_s
            )

    def secret(self) -> Bundle:
        """The stored bundle, renewed first where it needs it."""
        for _ in range(ATTEMPTS):
            current, version = self._read()
            wanted = renewed(current, self.settings.hosts, self.clock(), self.lifetimes)
            if wanted is None and current is not None:
                return current
            assert wanted is not None
            try:
                self._store(wanted, version)
            except ApiException as exc:
                if exc.status in (409, 422):  # another replica wrote first: read theirs
                    continue
                raise
            what = "ca" if current is None or wanted.ca_cert != current.ca_cert else "serving"
            self.metrics.certificate_rotations.labels(what).inc()
            log.info("stored a new %s certificate in %s", what, self.settings.secret_name)
            return wanted
        raise RuntimeError(f"the Secret {self.settings.secret_name} kept changing; retrying later")

    def inject(self, trusted: bytes) -> int:
        """Make every webhook of the configuration trust ``trusted``; returns how many changed.
        A configuration that does not exist (yet) is left for the next round."""
        s = self.settings
        try:
            config = self.registration.read_mutating_webhook_configuration(
                s.webhook_configuration, _request_timeout=s.api_timeout_s
            )
        except ApiException as exc:
            if exc.status == 404:
                log.warning("no MutatingWebhookConfiguration %s yet", s.webhook_configuration)
                return 0
            raise
        wanted = base64.b64encode(trusted).decode("ascii")
        ops: list[dict[str, Any]] = [
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": config.metadata.resource_version,
            }
        ]
        for i, webhook in enumerate(config.webhooks or []):
            if webhook.client_config.ca_bundle != wanted:
                ops.append(
                    {"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": wanted}
                )
        if len(ops) > 1:
            self.registration.patch_mutating_webhook_configuration(
                s.webhook_configuration, ops, _request_timeout=s.api_timeout_s
            )
        return len(ops) - 1

    def reconcile(self) -> Bundle:
        """One round: the Secret, then the serving file, then the caBundle."""
        bundle = self.secret()
        write_atomically(self.settings.serving_file, bundle.serving_pem)
        self.metrics.certificate_not_after.set(bundle.not_after.timestamp())
        self.inject(bundle.trusted)
        return bundle

    def run(self, stop: threading.Event) -> None:
        """Reconcile every ``check_interval_s`` (sooner after a failure) until ``stop``."""
        while True:
            try:
                self.reconcile()
                wait = self.settings.check_interval_s
            except Exception as exc:  # the API may be away for a while: keep the old files
                log.warning("certificate round failed, retrying in %.0f s: %s", RETRY_S, exc)
                wait = min(RETRY_S, self.settings.check_interval_s)
            if stop.wait(wait):
                return
