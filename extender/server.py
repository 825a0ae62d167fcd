"""Serve the extender with gunicorn: one worker process, many threads, watches in the worker.

The state lives in one process, so there is exactly one worker (``gthread``). The app, its
API client, its watch threads and the probe listener are built in ``load()``, which gunicorn
calls inside the worker after the fork (``preload_app`` stays off): threads started before a
fork would stay behind in the master.

gunicorn serves only the scheduler's verbs (and probes when no probe listener is given). Its
threads read a request with no deadline of their own, so every verb connection gets a socket
timeout (``--read-timeout``): a client that sends half a request loses its thread after it,
and idle keep-alive connections are closed after ``keepalive`` seconds. The probe listener
(``serving``) has threads of its own, so whoever reaches it never holds a verb's.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flask import Flask
from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]
from gunicorn.workers.gthread import ThreadWorker  # type: ignore[import-untyped]
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from prometheus_client import CollectorRegistry

from extender.ahead import AheadNominator
from extender.app import create_app, probe_routes
from extender.bind import Binder
from extender.claims_watch import DraView, reconcile_reservation
from extender.config import Settings
from extender.gate import RequestGate
from extender.groups import GroupTable
from extender.kubeapi import KubeAPI
from extender.metrics import ExtenderMetrics
from extender.objects import PodInfo, read_lease, read_pod, read_report
from extender.requeue import CapacitySignals, Requeuer
from extender.state import LEASES, PODS, REPORTS, ClusterState
from extender.watch import Watcher, WatchTarget
from placement.nodegpustate import GROUP, PLURAL, VERSION
from serving import BoundedServer

log = logging.getLogger(__name__)

T = TypeVar("T")

GIVE_WAY = frozenset((REPORTS, LEASES))
"""The watches that wait for the scheduler's requests in flight (``extender.gate``): the
agents' churn, in no hurry. Pods, nodes and DRA objects do not wait: in a burst their events
are the scheduling's own (nominations ahead, bound pods), which a request may be waiting on."""


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


def _target(
    resource: str,
    path: str,
    *,
    read: Callable[[Mapping[str, Any]], T | None],
    replace: Callable[[list[T], float], None],
    apply: Callable[[str, T], None],
    grew: Callable[[str, T], bool],
    on_growth: Callable[[], None],
    observe: Callable[[str, T, Mapping[str, Any]], None] | None = None,
) -> WatchTarget:
    """A watched collection whose objects are read once, here, into the values ``replace``
    and ``apply`` take; ``on_growth`` runs after an event that may have freed capacity, and
    ``observe`` after every event, with the value read and the raw object."""

    def replace_raw(items: list[Mapping[str, Any]], listed_at: float) -> None:
        replace([v for v in map(read, items) if v is not None], listed_at)

    def apply_raw(event: str, raw: Mapping[str, Any]) -> None:
        value = read(raw)
        if value is None:
            return
        apply(event, value)
        if grew(event, value):
            on_growth()
        if observe is not None:
            observe(event, value, raw)

    return WatchTarget(resource, path, replace_raw, apply_raw)


def build(settings: Settings, *, stop: threading.Event | None = None) -> Flask:
    """The running extender: API client, state, watches (started here), binder and app."""
    api = KubeAPI(api_client(settings), timeout_s=settings.api_timeout_s)
    state = ClusterState(assumed_ttl_s=settings.assumed_ttl_s)
    metrics = ExtenderMetrics(CollectorRegistry())
    stop = stop or threading.Event()
    gate = RequestGate()  # the agents' watches wait at it for the requests in flight
    requeuer = Requeuer(api.patch_pod, on_nudge=lambda _uid: metrics.requeues.inc())
    signals = CapacitySignals(max_report_age_s=settings.fit.max_report_age_s)
    prefix = settings.lease_prefix
    # Multi-node groups: their members from the pod watch, node topology from a Node watch.
    groups = GroupTable(state)
    replace_pods, apply_pods = groups.following(
        lambda pods, at: state.replace_pods(pods, listed_at=at), state.apply_pod
    )
    # Pods that claim GPUs through DRA: their claims and the GPU driver's slices, watched; an
    # allocation reconciles the pod's reservation, also after a pod event rebuilt it.
    dra = None
    if settings.dra_device_classes:
        dra = DraView(
            settings.dra_device_classes,
            on_allocated=lambda uid, node, gpus: reconcile_reservation(
                state, uid, node, gpus, time.time()
            ),
        )
        replace_pods, apply_pods = _following_claims(dra, replace_pods, apply_pods)
    claimed = dra.claimed_count if dra is not None else None
    ahead = None
    if settings.nominate_ahead:
        ahead = AheadNominator(
            state,
            api,
            scheduler_name=settings.scheduler_name,
            policy=settings.policy,
            fit=settings.fit,
            count=lambda outcome: metrics.nominations_ahead.labels(outcome.value).inc(),
        )
        threading.Thread(target=ahead.run, args=(stop,), name="ahead", daemon=True).start()
    targets = (
        _target(
            REPORTS,
            f"/apis/{GROUP}/{VERSION}/{PLURAL}",
            read=read_report,
            replace=lambda reports, _at: state.replace_reports(reports),
            apply=state.apply_report,
            grew=signals.report,
            on_growth=requeuer.capacity_changed,
        ),
        _target(
            LEASES,
            f"/apis/coordination.k8s.io/v1/namespaces/{settings.agent_namespace}/leases",
            read=lambda raw: read_lease(raw, prefix),
            replace=lambda leases, _at: state.replace_leases(leases),
            apply=state.apply_lease,
            grew=signals.lease,
            on_growth=requeuer.capacity_changed,
        ),
        _target(
            PODS,
            "/api/v1/pods",
            read=lambda raw: read_pod(
                raw, now=time.time(), scheduler_name=settings.scheduler_name, claimed=claimed
            ),
            replace=replace_pods,
            apply=apply_pods,
            grew=signals.pod,
            on_growth=requeuer.capacity_changed,
            observe=ahead.offer if ahead is not None else None,
        ),
        groups.node_target(),
    )
    threading.Thread(target=requeuer.run, args=(stop,), name="requeue", daemon=True).start()
    for target in targets:
        Watcher(
            api,
            target,
            on_synced=state.mark_synced,
            on_lost=state.mark_lost,
            metrics=metrics,
            stop=stop,
            timeout_s=settings.watch_timeout_s,
            gate=gate if target.resource in GIVE_WAY else None,
        ).start()
    for target in dra.targets() if dra is not None else ():
        # Not part of readiness: a cluster without resource.k8s.io/v1 runs as before.
        assert dra is not None
        Watcher(
            api,
            target,
            on_synced=dra.mark_synced,
            on_lost=dra.mark_lost,
            metrics=metrics,
            stop=stop,
            timeout_s=settings.watch_timeout_s,
        ).start()
    binder = Binder(state, api, settings, dra=dra)
    if settings.metrics_host is not None and settings.metrics_port is not None:
        probes = BoundedServer(
            settings.metrics_host, settings.metrics_port, probe_routes(state, metrics)
        )
        probes.start()
        log.info("probes and metrics on %s", settings.metrics_listen)
    return create_app(
        settings,
        state,
        binder,
        metrics,
        requeuer=requeuer,
        groups=groups,
        dra=dra,
        ahead=ahead,
        gate=gate,
    )


def _following_claims(
    dra: DraView,
    replace: Callable[[list[PodInfo], float], None],
    apply: Callable[[str, PodInfo], None],
) -> tuple[Callable[[list[PodInfo], float], None], Callable[[str, PodInfo], None]]:
    """The pod watch's handlers, each followed by the reconciliation of what the DRA plugin
    allocated (a pod event rebuilds the pod's reservation from its annotation)."""

    def replace_then(pods: list[PodInfo], at: float) -> None:
        replace(pods, at)
        dra.reconcile_all()

    def apply_then(event: str, info: PodInfo) -> None:
        apply(event, info)
        if event != "DELETED":
            dra.reconcile_pod(info.uid)

    return replace_then, apply_then


class _QuietTimeouts(logging.Filter):
    """gunicorn logs a socket timeout with a traceback; a client that stalled is no fault."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], TimeoutError))


class TimedThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker with a timeout on every read and write of a verb connection."""

    read_timeout_s = 10.0

    def init_process(self) -> None:
        logging.getLogger("gunicorn.error").addFilter(_QuietTimeouts())
        super().init_process()

    def handle(self, conn: Any) -> Any:
        # The connection was just made blocking (without a timeout) for this thread.
        conn.sock.settimeout(self.read_timeout_s)
        return super().handle(conn)


def worker_class(read_timeout_s: float) -> type[TimedThreadWorker]:
    """The worker class, with this process's read timeout."""
    return type("ExtenderWorker", (TimedThreadWorker,), {"read_timeout_s": read_timeout_s})


class ExtenderServer(BaseApplication):  # type: ignore[misc]
    """gunicorn, configured from ``Settings`` rather than its own command line."""

    def __init__(self, settings: Settings, app_factory: Callable[[], Flask] | None = None) -> None:
        self.settings = settings
        self.app_factory = app_factory or (lambda: build(settings))
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        options: dict[str, Any] = {
            "bind": [s.listen],
            "workers": 1,
            "worker_class": worker_class(s.read_timeout_s),
            "threads": s.threads,
            # Open connections at once (idle keep-alive ones included); more wait unaccepted.
            "worker_connections": s.max_connections,
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
        if s.tls_client_ca:
            # Only clients with a certificate this CA signed get past the handshake.
            options["ca_certs"] = s.tls_client_ca
            options["cert_reqs"] = ssl.CERT_REQUIRED
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
