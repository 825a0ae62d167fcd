"""A real control plane as local processes: etcd, kube-apiserver, kube-controller-manager and any
number of kube-schedulers.

``ControlPlane`` starts etcd and kube-apiserver on free loopback ports inside one working folder,
waits until both are ready, writes a kubeconfig, and starts kube-scheduler processes from
``KubeSchedulerConfiguration`` dicts and, on request, kube-controller-manager. Every process logs to ``<workdir>/logs/<name>.log``;
``log_tails()`` shows the end of each log (the pytest plugin prints it when a test fails).

The admin authenticates with a static bearer token (``--token-auth-file``) for a member of
``system:masters``; the kubeconfig verifies the API server's self-signed serving certificate.
Components under test get identities of their own (``controlplane.identities``): ServiceAccount
tokens from the TokenRequest API, and kubelet client certificates from the plane's client CA
(``--client-ca-file``), which the Node authorizer and the NodeRestriction admission plugin
check as in a real cluster (``--authorization-mode=Node,RBAC``). ``start_controller_manager()`` adds the real
kube-controller-manager, so Deployments, ReplicaSets, StatefulSets and Jobs create pods, the
garbage collector removes what their owners leave, namespaces are finalised and service accounts
exist. Its node-lifecycle controller is off: fake nodes have no kubelet to renew their Leases,
and that controller would taint them unreachable and evict their pods, which no real cluster
does to healthy nodes (the ``TaintNodesByCondition`` admission plugin stays off for the same
reason).

``restart_apiserver()`` stops kube-apiserver, compacts etcd (so every watch's old
resourceVersion is gone) and starts it again on the same port, with the same flags and serving
certificate, while etcd and every client keep running.

A plane that is not ``detached`` stops everything it started on ``stop()``, at interpreter exit,
and on SIGTERM or SIGHUP; its children also die with the parent process if that is killed.
A ``detached`` plane (``make cluster``) leaves its processes running and reports their pids.

``feature_gates`` are passed to kube-apiserver, kube-controller-manager and every kube-scheduler
(``--feature-gates``), and ``runtime_config`` to kube-apiserver (``--runtime-config``): for
example Kubernetes 1.37's gang scheduling, ``{"GenericWorkload": True}`` with
``{"scheduling.k8s.io/v1beta1": "true"}`` (its PodGroup API is a beta API, off by default).

Its parts: :mod:`controlplane.configuration` (pure: command lines, the scheduler configuration,
the kubeconfig, the stop order), :mod:`controlplane.supervisor` (starting, awaiting and stopping
the processes), :mod:`controlplane.credentials` (the plane's own secrets),
:mod:`controlplane.etcd` (health, compaction), :mod:`controlplane.access` (clients and
identities) and :mod:`controlplane.lifetime` (the exit and signal hooks). The public names of
those modules that callers use are importable from here.
"""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from controlplane import etcd, lifetime
from controlplane.access import PlaneAccess
from controlplane.binaries import BinarySet
from controlplane.configuration import (
    SCHEDULER_CONFIG_API,
    ControlPlaneError,
    apiserver_command,
    controller_manager_command,
    etcd_command,
    kubeconfig_document,
    scheduler_command,
    scheduler_configuration,
    stop_order,
)
from controlplane.credentials import service_account_key, token_file, write_credentials
from controlplane.identities import ClientCA
from controlplane.processes import ManagedProcess, free_ports
from controlplane.supervisor import ProcessRecord, SchedulerProcess, Supervisor, is_ok

ETCD_READY_TIMEOUT_S: Final = 30.0
APISERVER_READY_TIMEOUT_S: Final = 90.0
SCHEDULER_READY_TIMEOUT_S: Final = 30.0
CONTROLLER_MANAGER_READY_TIMEOUT_S: Final = 60.0


class ControlPlane(Supervisor, PlaneAccess):
    """etcd + kube-apiserver (+ kube-schedulers) in ``workdir``; see the module docstring.

    ``pick_ports(n)`` chooses ``n`` free loopback ports. Choosing a port and binding it are
    not atomic, so a process that finds its port taken is started again on new ports (up to
    ``START_ATTEMPTS`` times)."""

    def __init__(
        self,
        binaries: BinarySet,
        workdir: Path,
        *,
        detached: bool = False,
        pick_ports: Callable[[int], list[int]] = free_ports,
        feature_gates: Mapping[str, bool] | None = None,
        runtime_config: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(workdir, detached=detached, pick_ports=pick_ports)
        self.binaries = binaries
        self.feature_gates = dict(feature_gates or {})
        self.runtime_config = dict(runtime_config or {})
        self.kubeconfig = self.workdir / "kubeconfig"
        self.token = secrets.token_urlsafe(24)
        self.client_ca = ClientCA(self.workdir / "client-ca.crt", self.workdir / "client-ca.key")
        self.identities_dir = self.workdir / "identities"
        self.api_port = 0
        self.etcd_port = 0
        self._schedulers: list[SchedulerProcess] = []
        self._scheduler_count = 0

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> ControlPlane:
        """Start etcd and kube-apiserver and wait until the API answers ``/readyz``."""
        with self._lock:
            if self._started:
                return self
            self._started = True
            self.workdir.mkdir(parents=True, exist_ok=True)
            if not self.detached:
                lifetime.track(self)
            started = time.monotonic()
            try:
                key = write_credentials(self.workdir, self.token)
                self._start_etcd()
                self._start_apiserver(key)
                self._write_kubeconfig()
            except BaseException:
                self.stop()
                raise
            self.timings["control plane"] = time.monotonic() - started
            return self

    def stop(self) -> None:
        """Stop every process this plane started (SIGTERM, then SIGKILL), in
        :func:`stop_order`; the plane can be started again afterwards."""
        with self._lock:
            self._stop_all()
            self._schedulers.clear()
            self._started = False
            lifetime.untrack(self)

    def release(self) -> list[ProcessRecord]:
        """Detached planes: hand the running processes over to the caller and forget them."""
        with self._lock:
            records = self._release_all()
            self._schedulers.clear()
            lifetime.untrack(self)
            return records

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- faults -------------------------------------------------------------------------------

    def restart_apiserver(
        self, while_down: Callable[[], None] | None = None, *, compact: bool = True
    ) -> float:
        """Stop kube-apiserver (SIGTERM), compact etcd to its latest revision when ``compact``
        (a watch can then resume from no resourceVersion it saw before: 410 Gone), call
        ``while_down()``, and start kube-apiserver again on the same port with the same flags
        and serving certificate. Returns the seconds from the restart until ``/readyz`` is ok.
        etcd, its data and every client keep running."""
        with self._lock:
            if not self._started:
                raise ControlPlaneError("the control plane is not running")
            (apiserver,) = (p for p in self._processes if p.name == "kube-apiserver")
            self._drop(apiserver)
        if compact:
            self.compact_etcd()
        if while_down is not None:
            while_down()
        port = self.api_port
        self._start_apiserver(service_account_key(self.workdir), pick=lambda _n: [port])
        return self.timings["kube-apiserver"]

    def compact_etcd(self) -> int:
        """Compact etcd's history up to its current revision; returns that revision."""
        return etcd.compact(self.etcd_port)

    # --- schedulers -------------------------------------------------------------------------

    def start_scheduler(
        self,
        config: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        leader_elect: bool = False,
        fast_backoff: bool = True,
        verbosity: int = 2,
        kubeconfig: Path | None = None,
    ) -> SchedulerProcess:
        """Start kube-scheduler with ``config`` (see :func:`scheduler_configuration`), wait for
        ``/readyz``, and return it. It talks to the API server with ``kubeconfig`` (default:
        the admin's). A configuration kube-scheduler rejects raises :class:`ControlPlaneError`
        with the scheduler's own message."""
        if not self._started:
            raise ControlPlaneError("start the control plane before starting a scheduler")
        with self._lock:
            self._scheduler_count += 1
            name = name or f"kube-scheduler-{self._scheduler_count}"
        prepared = scheduler_configuration(
            config or {},
            kubeconfig or self.kubeconfig,
            leader_elect=leader_elect,
            fast_backoff=fast_backoff,
        )
        config_path = self.workdir / "schedulers" / f"{name}.yaml"
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(yaml.safe_dump(prepared, sort_keys=False), encoding="utf-8")
        process, (port,), waited = self._start_on_free_ports(
            name,
            1,
            lambda ports: scheduler_command(
                self.binaries.kube_scheduler,
                port=ports[0],
                config_path=config_path,
                verbosity=verbosity,
                feature_gates=self.feature_gates,
            ),
            lambda ports: f"https://127.0.0.1:{ports[0]}/readyz",
            ready=is_ok,
            timeout_s=SCHEDULER_READY_TIMEOUT_S,
            exited=lambda exc: (
                f"kube-scheduler {name} did not start with the configuration in "
                f"{config_path}: {exc}"
            ),
        )
        self.timings[name] = waited
        scheduler = SchedulerProcess(process, port, config_path, self._scheduler_stopped)
        with self._lock:
            self._schedulers.append(scheduler)
        return scheduler

    def _scheduler_stopped(self, scheduler: SchedulerProcess) -> None:
        with self._lock:
            if scheduler in self._schedulers:
                self._schedulers.remove(scheduler)
            self._drop(scheduler.process)

    # --- kube-controller-manager ------------------------------------------------------------

    def start_controller_manager(self, *, verbosity: int = 1) -> ManagedProcess:
        """Start kube-controller-manager (see the module docstring) and wait for ``/healthz``.
        It signs service-account tokens with the API server's key, and publishes the API
        server's CA in every namespace's ``kube-root-ca.crt`` ConfigMap, as in a real cluster."""
        if not self._started:
            raise ControlPlaneError("start the control plane before kube-controller-manager")
        process, _, self.timings["kube-controller-manager"] = self._start_on_free_ports(
            "kube-controller-manager",
            1,
            lambda ports: controller_manager_command(
                self.binaries.kube_controller_manager,
                port=ports[0],
                kubeconfig=self.kubeconfig,
                cert_dir=self.workdir / "controller-manager-certs",
                service_account_key=service_account_key(self.workdir),
                root_ca_file=self.ca_file,
                verbosity=verbosity,
                feature_gates=self.feature_gates,
            ),
            lambda ports: f"https://127.0.0.1:{ports[0]}/healthz",
            ready=is_ok,
            timeout_s=CONTROLLER_MANAGER_READY_TIMEOUT_S,
        )
        return process

    # --- internals --------------------------------------------------------------------------

    def _start_etcd(self) -> None:
        data_dir = self.workdir / "etcd"
        _, ports, self.timings["etcd"] = self._start_on_free_ports(
            "etcd",
            2,
            lambda ports: etcd_command(self.binaries.etcd, data_dir, ports),
            lambda ports: f"http://127.0.0.1:{ports[0]}/health",
            ready=etcd.etcd_healthy,
            timeout_s=ETCD_READY_TIMEOUT_S,
            prepare=lambda: shutil.rmtree(data_dir, ignore_errors=True),
        )
        self.etcd_port = ports[0]

    def _start_apiserver(self, key: Path, pick: Callable[[int], list[int]] | None = None) -> None:
        _, ports, self.timings["kube-apiserver"] = self._start_on_free_ports(
            "kube-apiserver",
            1,
            lambda ports: apiserver_command(
                self.binaries.kube_apiserver,
                port=ports[0],
                etcd_port=self.etcd_port,
                cert_dir=self.workdir / "apiserver-certs",
                client_ca_file=self.client_ca.cert,
                token_file=token_file(self.workdir),
                service_account_key=key,
                feature_gates=self.feature_gates,
                runtime_config=self.runtime_config,
            ),
            lambda ports: f"https://127.0.0.1:{ports[0]}/readyz",
            ready=is_ok,
            timeout_s=APISERVER_READY_TIMEOUT_S,
            pick_ports=pick,
        )
        self.api_port = ports[0]

    def _write_kubeconfig(self) -> None:
        document = kubeconfig_document(self.server, self.ca_file, self.token, "vramfit")
        self.kubeconfig.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        self.kubeconfig.chmod(0o600)


def start_control_plane(
    binaries: BinarySet,
    workdir: Path,
    *,
    detached: bool = False,
    feature_gates: Mapping[str, bool] | None = None,
    runtime_config: Mapping[str, str] | None = None,
) -> ControlPlane:
    """Convenience: construct and start (stops what it started if starting fails)."""
    plane = ControlPlane(
        binaries,
        workdir,
        detached=detached,
        feature_gates=feature_gates,
        runtime_config=runtime_config,
    )
    return plane.start()


__all__: Sequence[str] = (
    "SCHEDULER_CONFIG_API",
    "ControlPlane",
    "ControlPlaneError",
    "ProcessRecord",
    "SchedulerProcess",
    "kubeconfig_document",
    "scheduler_configuration",
    "start_control_plane",
    "stop_order",
)
