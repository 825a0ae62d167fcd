"""Serve the webhook: gunicorn on the TLS listener, a probe listener, the certificate keeper.

The certificate must exist before gunicorn starts (it refuses a missing file), so in ``self``
mode the first keeper round runs in the master, retried until the API server answers. gunicorn
builds a TLS context from the file for every new connection, so a renewed certificate written
over it is served from the next connection on, without a restart. The worker (one process, many
threads: the catalog and the Event queue live in one process) starts the keeper's loop, the Event
writer and the probe listener in ``load()``, after the fork.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from importlib import resources
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from flask import Flask
from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from prometheus_client import CollectorRegistry

from admission.app import Mutator, create_app, probe_app
from admission.config import Settings
from admission.events import EventSink
from admission.keeper import CertificateKeeper
from admission.metrics import AdmissionMetrics
from documents import load_document, parse_document
from placement.models import BUILTIN_CATALOG, ModelCatalog, parse_model_catalog

log = logging.getLogger(__name__)

FIRST_ROUND_RETRY_S = 2.0


def load_catalog(path: str | None) -> ModelCatalog:
    """The model catalog: the core's shipped one, or the file given with ``--model-catalog``."""
    if path is None:
        where = "built-in model catalog"
        text = resources.files("placement").joinpath(BUILTIN_CATALOG).read_text(encoding="utf-8")
        return parse_model_catalog(parse_document(text, where), where)
    return parse_model_catalog(load_document(path), path)


def api_client(settings: Settings) -> k8s.ApiClient:
    """An API client from the kubeconfig, or the pod's service account when none is given."""
    configuration = k8s.Configuration()
    if settings.kubeconfig:
        k8s_config.load_kube_config(
            config_file=settings.kubeconfig, client_configuration=configuration
        )
    else:
        k8s_config.load_incluster_config(client_configuration=configuration)
    return k8s.ApiClient(configuration)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("probe: " + format, *args)


def start_probe_server(
    settings: Settings, metrics: AdmissionMetrics, ready: Callable[[], bool]
) -> None:
    """The plain-HTTP probe and metrics listener, on a daemon thread."""
    server = make_server(
        settings.metrics_host,
        settings.metrics_port,
        probe_app(metrics, ready),
        server_class=_ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    threading.Thread(target=server.serve_forever, name="probes", daemon=True).start()


def first_round(settings: Settings, keeper: CertificateKeeper) -> None:
    """Block until a serving certificate is on disk (``self`` mode)."""
    while True:
        try:
            keeper.reconcile()
            return
        except Exception as exc:
            log.warning("no serving certificate yet (%s); retrying", exc)
            time.sleep(FIRST_ROUND_RETRY_S)


def build(settings: Settings, *, stop: threading.Event | None = None) -> Flask:
    """The running webhook in the worker: catalog, metrics, Events, keeper loop, probes."""
    stop = stop or threading.Event()
    metrics = AdmissionMetrics(CollectorRegistry())
    api = api_client(settings)
    core = k8s.CoreV1Api(api)
    events = EventSink(
        lambda namespace, body: core.create_namespaced_event(
            namespace, body, _request_timeout=settings.api_timeout_s
        ),
        metrics,
    )
    threading.Thread(target=events.run, args=(stop,), name="events", daemon=True).start()
    if settings.cert_mode == "self":
        keeper = CertificateKeeper(api, settings, metrics)
        threading.Thread(target=keeper.run, args=(stop,), name="certificates", daemon=True).start()
    serving = settings.serving_file if settings.cert_mode == "self" else settings.tls_cert or ""
    start_probe_server(settings, metrics, lambda: os.path.isfile(serving))
    mutator = Mutator(load_catalog(settings.model_catalog), settings.headroom, metrics, events)
    return create_app(mutator, settings.max_body_bytes)


class AdmissionServer(BaseApplication):  # type: ignore[misc]
    """gunicorn, configured from ``Settings`` rather than its own command line."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        certfile: str | None = s.serving_file
        keyfile: str | None = s.serving_file
        if s.cert_mode != "self":
            certfile, keyfile = s.tls_cert, s.tls_key
        options: dict[str, Any] = {
            "bind": [s.listen],
            "workers": 1,
            "worker_class": "gthread",
            "threads": s.threads,
            "preload_app": False,
            # A review is CPU work on an in-memory catalog: anything slower is stuck.
            "timeout": max(1, int(s.request_timeout_s)),
            "graceful_timeout": 10,
            # The API server reuses its connections to webhooks.
            "keepalive": 75,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": s.log_level,
            "proc_name": "vramfit-admission",
            "limit_request_line": 8190,
            "limit_request_fields": 100,
            "certfile": certfile,
            "keyfile": keyfile,
        }
        if os.path.isdir("/dev/shm"):
            options["worker_tmp_dir"] = "/dev/shm"
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        log.info(
            "vramfit admission webhook on %s (certificates: %s)",
            self.settings.listen,
            self.settings.cert_mode,
        )
        return build(self.settings)


def serve(settings: Settings) -> None:
    """Obtain the first certificate (``self`` mode), then run until gunicorn is told to stop."""
    if settings.cert_mode == "self":
        api = api_client(settings)
        first_round(
            settings, CertificateKeeper(api, settings, AdmissionMetrics(CollectorRegistry()))
        )
        api.close()
    AdmissionServer(settings).run()
