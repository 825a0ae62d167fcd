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
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final

import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from controlplane.binaries import BinarySet
from controlplane.identities import (
    ClientCA,
    ServiceAccountIdentity,
    kubelet_identity,
    service_account_identity,
)
from controlplane.processes import (
    ManagedProcess,
    NotReadyError,
    ProcessExitedError,
    free_ports,
    http_ok,
    process_executable,
    tail,
)

START_ATTEMPTS: Final = 5
ETCD_READY_TIMEOUT_S: Final = 30.0
APISERVER_READY_TIMEOUT_S: Final = 90.0
SCHEDULER_READY_TIMEOUT_S: Final = 30.0
CONTROLLER_MANAGER_READY_TIMEOUT_S: Final = 60.0
CONTROLLERS: Final = "*,-nodelifecycle"
"""kube-controller-manager's default controllers but node lifecycle (see the module docstring)."""
SERVICE_ACCOUNT_ISSUER: Final = "https://kubernetes.default.svc.cluster.local"
SCHEDULER_CONFIG_API: Final = "kubescheduler.config.k8s.io/v1"
ALWAYS_ALLOW_PATHS: Final = "/healthz,/readyz,/livez,/metrics"


class ControlPlaneError(RuntimeError):
    """The control plane (or one of its schedulers) could not start; the message has its log."""


@dataclass(frozen=True)
class ProcessRecord:
    """A running child as ``make cluster`` records it, so that a later command can stop it."""

    name: str
    pid: int
    executable: str
    log: str


def stop_order(names: Sequence[str]) -> list[set[str]]:
    """Pure: which processes to stop together, in order: everything that uses the API server
    (all at once), then kube-apiserver, then etcd; so no client outlives the API it talks to."""
    core = ("kube-apiserver", "etcd")
    groups = [{n for n in names if n not in core}, *({n} for n in core if n in names)]
    return [group for group in groups if group]


def _port_clash(log_path: Path) -> bool:
    text = tail(log_path, 40).lower()
    return "address already in use" in text or "bind: permission denied" in text


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


class SchedulerProcess:
    """A kube-scheduler started by a :class:`ControlPlane`."""

    def __init__(
        self,
        process: ManagedProcess,
        port: int,
        config_path: Path,
        on_stop: Callable[[SchedulerProcess], None],
    ) -> None:
        self.process = process
        self.port = port
        self.config_path = config_path
        self._on_stop = on_stop

    @property
    def name(self) -> str:
        return self.process.name

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    @property
    def running(self) -> bool:
        return self.process.running

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.stop()
        self._on_stop(self)


class ControlPlane:
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
        self.binaries = binaries
        self._pick_ports = pick_ports
        self.feature_gates = dict(feature_gates or {})
        self.runtime_config = dict(runtime_config or {})
        self.workdir = workdir.absolute()
        self.detached = detached
        self.kubeconfig = self.workdir / "kubeconfig"
        self.logs_dir = self.workdir / "logs"
        self.token = secrets.token_urlsafe(24)
        self.client_ca = ClientCA(self.workdir / "client-ca.crt", self.workdir / "client-ca.key")
        self.identities_dir = self.workdir / "identities"
        self.timings: dict[str, float] = {}
        self.api_port = 0
        self.etcd_port = 0
        self._processes: list[ManagedProcess] = []
        self._schedulers: list[SchedulerProcess] = []
        self._scheduler_count = 0
        self._started = False
        self._lock = threading.RLock()

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "apiserver-certs" / "apiserver.crt"

    def start(self) -> ControlPlane:
        """Start etcd and kube-apiserver and wait until the API answers ``/readyz``."""
        with self._lock:
            if self._started:
                return self
            self._started = True
            self.workdir.mkdir(parents=True, exist_ok=True)
            if not self.detached:
                _track(self)
            started = time.monotonic()
            try:
                key = self._write_credentials()
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
            for group in stop_order([p.name for p in self._processes]):
                stopping = [p for p in self._processes if p.name in group]
                for process in stopping:
                    process.terminate()
                for process in stopping:
                    process.wait_stopped()
            self._processes.clear()
            self._schedulers.clear()
            self._started = False
            _untrack(self)

    def release(self) -> list[ProcessRecord]:
        """Detached planes: hand the running processes over to the caller and forget them."""
        with self._lock:
            records = self.records()
            for process in self._processes:
                process.release()
            self._processes.clear()
            self._schedulers.clear()
            _untrack(self)
            return records

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def records(self) -> list[ProcessRecord]:
        """The processes that run now."""
        return [
            ProcessRecord(p.name, p.pid, process_executable(p.pid) or p.argv[0], str(p.log_path))
            for p in self._processes
            if p.running
        ]

    # --- clients ----------------------------------------------------------------------------

    def api_client(self) -> k8s_client.ApiClient:
        """A new kubernetes ApiClient for this plane (close it, or use it in a ``with``)."""
        return k8s_config.new_client_from_config(config_file=str(self.kubeconfig))

    def kubectl(
        self, *args: str, input_text: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this plane; raises with its stderr when ``check``."""
        command = [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(
            command, input=input_text, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise ControlPlaneError(
                f"kubectl {' '.join(args)} failed with exit code {result.returncode}:\n"
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    # --- identities -------------------------------------------------------------------------

    def service_account_identity(
        self, namespace: str, name: str, *, label: str = "", pod: k8s_client.V1Pod | None = None
    ) -> ServiceAccountIdentity:
        """A kubeconfig that authenticates as ServiceAccount ``namespace/name`` with a token
        from the TokenRequest API, bound to ``pod`` when given (``label``: its folder name, so
        that several components may use one account)."""
        directory = self.identities_dir / f"sa-{namespace}-{name}" / (label or "default")
        with self.api_client() as api:
            return service_account_identity(
                k8s_client.CoreV1Api(api),
                server=self.server,
                ca_file=self.ca_file,
                directory=directory,
                namespace=namespace,
                name=name,
                pod=pod,
            )

    def kubelet_kubeconfig(self, node: str) -> Path:
        """A kubeconfig that authenticates as node ``node``'s kubelet (``system:node:<node>``)."""
        return kubelet_identity(
            self.client_ca,
            server=self.server,
            ca_file=self.ca_file,
            directory=self.identities_dir / f"node-{node}",
            node=node,
        )

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
        self._start_apiserver(self.workdir / "service-account.key", pick=lambda _n: [port])
        return self.timings["kube-apiserver"]

    def compact_etcd(self) -> int:
        """Compact etcd's history up to its current revision; returns that revision."""
        base = f"http://127.0.0.1:{self.etcd_port}/v3/kv"
        header = _etcd_call(f"{base}/range", {"key": "AA=="})["header"]
        revision = int(header["revision"])
        _etcd_call(f"{base}/compaction", {"revision": str(revision), "physical": True})
        return revision

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
            lambda ports: [
                str(self.binaries.kube_scheduler),
                f"--config={config_path}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports[0]}",
                f"--authorization-always-allow-paths={ALWAYS_ALLOW_PATHS}",
                f"--v={verbosity}",
                *self._gate_flags(),
            ],
            lambda ports: f"https://127.0.0.1:{ports[0]}/readyz",
            ready=_is_ok,
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
        key = self.workdir / "service-account.key"
        cert_dir = self.workdir / "controller-manager-certs"
        process, _, self.timings["kube-controller-manager"] = self._start_on_free_ports(
            "kube-controller-manager",
            1,
            lambda ports: [
                str(self.binaries.kube_controller_manager),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                f"--authorization-always-allow-paths={ALWAYS_ALLOW_PATHS}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports[0]}",
                f"--cert-dir={cert_dir}",
                f"--controllers={CONTROLLERS}",
                f"--service-account-private-key-file={key}",
                f"--root-ca-file={self.ca_file}",
                "--use-service-account-credentials=false",
                "--leader-elect=false",
                # The defaults (20 and 5 writes a second) queue a 500-pod burst for many seconds.
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--concurrent-replicaset-syncs=10",
                "--concurrent-deployment-syncs=10",
                f"--v={verbosity}",
                *self._gate_flags(),
            ],
            lambda ports: f"https://127.0.0.1:{ports[0]}/healthz",
            ready=_is_ok,
            timeout_s=CONTROLLER_MANAGER_READY_TIMEOUT_S,
        )
        return process

    # --- other components -------------------------------------------------------------------

    def start_process(
        self,
        name: str,
        argv: Sequence[str],
        ready: Callable[[], bool],
        *,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> ManagedProcess:
        """Start another component (an agent, the extender) beside the control plane: it logs
        to ``logs/<name>.log``, shows in ``log_tails()`` and is stopped with the plane. Waits
        until ``ready()``; a component that exits first raises with its log."""
        (process,) = self.start_processes([(name, argv, ready)], timeout=timeout, env=env)
        return process

    def start_processes(
        self,
        components: Sequence[tuple[str, Sequence[str], Callable[[], bool]]],
        *,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> list[ManagedProcess]:
        """Like :meth:`start_process` for several ``(name, argv, ready)`` at once: all start
        together, then each is awaited, so they become ready in parallel."""
        if not self._started:
            raise ControlPlaneError("start the control plane before starting other components")
        launched = []
        for name, argv, _ in components:
            process = ManagedProcess(
                name, argv, self.logs_dir / f"{name}.log", detached=self.detached, env=env
            )
            self._adopt(process)
            launched.append(process)
        started = time.monotonic()
        for process, (name, _, ready) in zip(launched, components, strict=True):
            remaining = max(1.0, timeout - (time.monotonic() - started))
            try:
                process.wait_ready(ready, remaining)
            except (ProcessExitedError, NotReadyError) as exc:
                for other in launched:
                    self._drop(other)
                raise ControlPlaneError(str(exc)) from None
            self.timings[name] = time.monotonic() - started
        return launched

    # --- logs -------------------------------------------------------------------------------

    def log_tails(self, lines: int = 30) -> str:
        """The last ``lines`` lines of every running process's log, one titled block each."""
        blocks = []
        with self._lock:
            processes = list(self._processes)
        for process in processes:
            code = process.returncode()
            state = "running" if code is None else f"exited with code {code}"
            blocks.append(
                f"----- {process.name} (pid {process.pid}, {state}; {process.log_path}) -----\n"
                f"{tail(process.log_path, lines)}"
            )
        return "\n".join(blocks)

    # --- internals --------------------------------------------------------------------------

    def _gate_flags(self) -> list[str]:
        """``--feature-gates`` for every component, when the plane has gates."""
        gates = {k: str(v).lower() for k, v in self.feature_gates.items()}
        return [f"--feature-gates={_pairs(gates)}"] if gates else []

    def _adopt(self, process: ManagedProcess) -> None:
        with self._lock:
            self._processes.append(process)
        process.start()

    def _drop(self, process: ManagedProcess) -> None:
        process.stop()
        with self._lock:
            if process in self._processes:
                self._processes.remove(process)

    def _write_credentials(self) -> Path:
        key = self.workdir / "service-account.key"
        if not key.exists():
            openssl = shutil.which("openssl")
            if openssl is None:
                raise ControlPlaneError(
                    "the openssl command is needed to make the service-account signing key; "
                    "install it (Debian/Ubuntu: apt-get install openssl)"
                )
            result = subprocess.run(
                [openssl, "genrsa", "-out", str(key), "2048"],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise ControlPlaneError(f"openssl genrsa failed: {result.stderr.strip()}")
        ClientCA.create(self.workdir)
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{self.token},vramfit-admin,vramfit-admin,"system:masters"\n')
        tokens.chmod(0o600)
        return key

    def _start_on_free_ports(
        self,
        name: str,
        port_count: int,
        command: Callable[[tuple[int, ...]], list[str]],
        ready_url: Callable[[tuple[int, ...]], str],
        *,
        ready: Callable[[bytes], bool],
        timeout_s: float,
        prepare: Callable[[], None] | None = None,
        exited: Callable[[ProcessExitedError], str] = str,
        pick_ports: Callable[[int], list[int]] | None = None,
    ) -> tuple[ManagedProcess, tuple[int, ...], float]:
        """Start ``name`` on freshly picked loopback ports (``pick_ports``, default the
        plane's) and wait until it is ready; a port taken between picking and binding is
        retried on new ports (``START_ATTEMPTS`` times). Returns the process, its ports and
        the seconds it took to become ready."""
        log_path = self.logs_dir / f"{name}.log"
        pick = pick_ports or self._pick_ports
        for attempt in range(1, START_ATTEMPTS + 1):
            if prepare is not None:
                prepare()
            ports = tuple(pick(port_count))
            process = ManagedProcess(name, command(ports), log_path, detached=self.detached)
            self._adopt(process)
            try:
                waited = process.wait_ready(
                    functools.partial(http_ok, ready_url(ports), ready), timeout_s
                )
            except ProcessExitedError as exc:
                self._drop(process)
                if attempt < START_ATTEMPTS and _port_clash(log_path):
                    continue
                raise ControlPlaneError(exited(exc)) from None
            except NotReadyError as exc:
                self._drop(process)
                raise ControlPlaneError(str(exc)) from None
            return process, ports, waited
        raise AssertionError("unreachable")

    def _start_etcd(self) -> None:
        data_dir = self.workdir / "etcd"

        def command(ports: tuple[int, ...]) -> list[str]:
            client_url, peer_url = (f"http://127.0.0.1:{p}" for p in ports)
            return [
                str(self.binaries.etcd),
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

        _, ports, self.timings["etcd"] = self._start_on_free_ports(
            "etcd",
            2,
            command,
            lambda ports: f"http://127.0.0.1:{ports[0]}/health",
            ready=_etcd_healthy,
            timeout_s=ETCD_READY_TIMEOUT_S,
            prepare=lambda: shutil.rmtree(data_dir, ignore_errors=True),
        )
        self.etcd_port = ports[0]

    def _start_apiserver(
        self, service_account_key: Path, pick: Callable[[int], list[int]] | None = None
    ) -> None:
        def command(ports: tuple[int, ...]) -> list[str]:
            return [
                str(self.binaries.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                # Needed where the host has no default route; a loopback address is only
                # accepted without the endpoint reconciler (nothing here needs it).
                "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none",
                f"--secure-port={ports[0]}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                # Node: kubelets (the simulated ones included) get a kubelet's rights, no more.
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                f"--client-ca-file={self.client_ca.cert}",
                f"--token-auth-file={self.workdir / 'tokens.csv'}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={service_account_key}",
                f"--service-account-signing-key-file={service_account_key}",
                # No controller-manager: nothing would make service-account tokens, nor
                # lift the not-ready taint that TaintNodesByCondition puts on new nodes.
                "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
                "--allow-privileged=true",
                *self._gate_flags(),
                *(
                    [f"--runtime-config={_pairs(self.runtime_config)}"]
                    if self.runtime_config
                    else []
                ),
            ]

        _, ports, self.timings["kube-apiserver"] = self._start_on_free_ports(
            "kube-apiserver",
            1,
            command,
            lambda ports: f"https://127.0.0.1:{ports[0]}/readyz",
            ready=_is_ok,
            timeout_s=APISERVER_READY_TIMEOUT_S,
            pick_ports=pick,
        )
        self.api_port = ports[0]

    def _write_kubeconfig(self) -> None:
        document = kubeconfig_document(self.server, self.ca_file, self.token, "vramfit")
        self.kubeconfig.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        self.kubeconfig.chmod(0o600)


def _pairs(values: Mapping[str, str]) -> str:
    """Pure: ``k1=v1,k2=v2`` in key order, as kube components take gates and API versions."""
    return ",".join(f"{k}={v}" for k, v in sorted(values.items()))


def _is_ok(body: bytes) -> bool:
    return body.strip() == b"ok"


def _etcd_call(url: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """POST to etcd's JSON gateway (``/v3/...``); returns its answer."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def _etcd_healthy(body: bytes) -> bool:
    return b'"health":"true"' in body.replace(b" ", b"")


# --- stopping on exit and on signals ----------------------------------------------------------

_ACTIVE: set[ControlPlane] = set()
_ACTIVE_LOCK = threading.Lock()
_HOOKS_INSTALLED: list[bool] = []  # non-empty once the exit and signal hooks are installed


def _stop_active() -> None:
    with _ACTIVE_LOCK:
        planes = list(_ACTIVE)
    for plane in planes:
        with contextlib.suppress(Exception):
            plane.stop()


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    _stop_active()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _track(plane: ControlPlane) -> None:
    with _ACTIVE_LOCK:
        _ACTIVE.add(plane)
        if _HOOKS_INSTALLED:
            return
        _HOOKS_INSTALLED.append(True)
    atexit.register(_stop_active)
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) in (signal.SIG_DFL, None):
                signal.signal(signum, _on_signal)


def _untrack(plane: ControlPlane) -> None:
    with _ACTIVE_LOCK:
        _ACTIVE.discard(plane)


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
    "ControlPlane",
    "ControlPlaneError",
    "ProcessRecord",
    "SchedulerProcess",
    "kubeconfig_document",
    "scheduler_configuration",
    "start_control_plane",
)
