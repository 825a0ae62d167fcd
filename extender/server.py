"""Serve the extender with gunicorn: one worker process, many threads, watches in the worker.

The state lives in one process, so there is exactly one worker (``gthread``). The app, its
API client and its watch threads are built in ``load()``, which gunicorn calls inside the
worker after the fork (``preload_app`` stays off): threads started before a fork would stay
behind in the master.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from prometheus_client import CollectorRegistry

from extender.app import create_app
from extender.bind import Binder
from extender.config import Settings
from extender.kubeapi import KubeAPI
from extender.metrics import ExtenderMetrics
from extender.requeue import CapacitySignals, Requeuer
from extender.state import LEASES, PODS, REPORTS, ClusterState, lease_times
from extender.watch import Watcher, WatchTarget
from placement.nodegpustate import GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)


def api_client(settings: Settings) -> k8s.ApiClient:
    """An API client from the kubeconfig, or the pod's service account when none is given."""
    configuration = k8s.Configuration()
    if settings.kubeconfig:
        k8s_config.load_kube_config(
            config_file=settings.kubeconfig, client_configuration=configuration
        )
    else:
        k8s_config.load_incluster_config(client_configuration=configuration)
    # Watches hold three connections; binds and their re-reads run in parallel threads.
    configuration.connection_pool_maxsize = max(8, settings.threads + 4)
    return k8s.ApiClient(configuration)


def build(settings: Settings, *, stop: threading.Event | None = None) -> Flask:
    """The running extender: API client, state, watches (started here), binder and app."""
    api = KubeAPI(api_client(settings), timeout_s=settings.api_timeout_s)
    state = ClusterState(assumed_ttl_s=settings.assumed_ttl_s, lease_prefix=settings.lease_prefix)
    metrics = ExtenderMetrics(CollectorRegistry())
    stop = stop or threading.Event()
    requeuer = Requeuer(api.patch_pod, on_nudge=lambda _uid: metrics.requeues.inc())
    signals = CapacitySignals(lease_times, max_report_age_s=settings.fit.max_report_age_s)

    def signalled(
        apply: Callable[[str, Mapping[str, Any]], None],
        grew: Callable[[str, Mapping[str, Any]], bool],
    ) -> Callable[[str, Mapping[str, Any]], None]:
        def on_event(event: str, raw: Mapping[str, Any]) -> None:
            apply(event, raw)
            if grew(event, raw):
                requeuer.capacity_changed()

        return on_event

    targets = (
        WatchTarget(
            REPORTS,
            f"/apis/{GROUP}/{VERSION}/{PLURAL}",
            lambda items, _at: state.replace_reports(items),
            signalled(state.apply_report, signals.report),
        ),
        WatchTarget(
            LEASES,
            f"/apis/coordination.k8s.io/v1/namespaces/{settings.agent_namespace}/leases",
            lambda items, _at: state.replace_leases(items),
            signalled(state.apply_lease, signals.lease),
        ),
        WatchTarget(
            PODS,
            "/api/v1/pods",
            lambda items, at: state.replace_pods(items, listed_at=at),
            signalled(state.apply_pod, signals.pod),
        ),
    )
    threading.Thread(target=requeuer.run, args=(stop,), name="requeue", daemon=True).start()
    for target in targets:
        Watcher(
            api,
            target,
            on_synced=state.mark_synced,
            metrics=metrics,
            stop=stop,
            timeout_s=settings.watch_timeout_s,
        ).start()
    binder = Binder(state, api, settings)
    return create_app(settings, state, binder, metrics, requeuer=requeuer)


class ExtenderServer(BaseApplication):  # type: ignore[misc]
    """gunicorn, configured from ``Settings`` rather than its own command line."""

    def __init__(self, settings: Settings, app_factory: Callable[[], Flask] | None = None) -> None:
        self.settings = settings
        self.app_factory = app_factory or (lambda: build(settings))
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        options: dict[str, Any] = {
            "bind": [s.listen] + ([s.metrics_listen] if s.metrics_listen else []),
            "workers": 1,
            "worker_class": "gthread",
            "threads": s.threads,
            "preload_app": False,
            "timeout": 60,
            "graceful_timeout": 10,
            # kube-scheduler keeps its connection open between calls; keep it open too.
            "keepalive": 120,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": s.log_level,
            "proc_name": "vramfit-extender",
            "limit_request_line": 8190,
        }
        if os.path.isdir("/dev/shm"):
            # The worker's heartbeat touches a file on every turn of its loop; on a disk-backed
            # filesystem (a container's overlay) that can stall the loop between requests.
            options["worker_tmp_dir"] = "/dev/shm"
        if s.tls_cert and s.tls_key:
            options["certfile"] = s.tls_cert
            options["keyfile"] = s.tls_key
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        """Called by gunicorn in the worker, after the fork: watches start here."""
        log.info(
            "vramfit extender: mode %s, policy %s, listening on %s",
            self.settings.mode,
            self.settings.policy,
            self.settings.listen,
        )
        return self.app_factory()


def serve(settings: Settings) -> None:
    """Run until gunicorn is told to stop."""
    ExtenderServer(settings).run()
