"""The processes one control plane owns: started on free ports, awaited, stopped in order.

:class:`Supervisor` is the bookkeeping half of :class:`controlplane.harness.ControlPlane`,
apart from what the processes are: it starts a child on freshly picked loopback ports and,
since choosing a port and binding it are not atomic, starts it again on new ports when the
port was taken meanwhile; it waits for readiness, records how long each took (``timings``),
stops everything in :func:`~controlplane.configuration.stop_order`, hands detached children
over as :class:`ProcessRecord`, and shows the end of every log. It also starts the other
components a test runs beside the plane (agents, the extender), so that they are stopped
with it.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from controlplane.configuration import ControlPlaneError, stop_order
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


@dataclass(frozen=True)
class ProcessRecord:
    """A running child as ``make cluster`` records it, so that a later command can stop it."""

    name: str
    pid: int
    executable: str
    log: str


class SchedulerProcess:
    """A kube-scheduler started by a :class:`~controlplane.harness.ControlPlane`."""

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


def is_ok(body: bytes) -> bool:
    """Pure: whether a ``/readyz`` or ``/healthz`` answer is ``ok``."""
    return body.strip() == b"ok"


def _port_clash(log_path: Path) -> bool:
    text = tail(log_path, 40).lower()
    return "address already in use" in text or "bind: permission denied" in text


class Supervisor:
    """The children started in ``workdir``, each logging to ``<workdir>/logs/<name>.log``;
    ``pick_ports(n)`` chooses ``n`` free loopback ports. Not ``detached`` children die with
    their parent."""

    def __init__(
        self,
        workdir: Path,
        *,
        detached: bool,
        pick_ports: Callable[[int], list[int]] = free_ports,
    ) -> None:
        self.workdir = workdir.absolute()
        self.detached = detached
        self.logs_dir = self.workdir / "logs"
        self.timings: dict[str, float] = {}
        self._pick_ports = pick_ports
        self._processes: list[ManagedProcess] = []
        self._started = False
        self._lock = threading.RLock()

    def records(self) -> list[ProcessRecord]:
        """The processes that run now."""
        return [
            ProcessRecord(p.name, p.pid, process_executable(p.pid) or p.argv[0], str(p.log_path))
            for p in self._processes
            if p.running
        ]

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

    def _adopt(self, process: ManagedProcess) -> None:
        with self._lock:
            self._processes.append(process)
        process.start()

    def _drop(self, process: ManagedProcess) -> None:
        process.stop()
        with self._lock:
            if process in self._processes:
                self._processes.remove(process)

    def _stop_all(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL) in :func:`stop_order` and forget it."""
        with self._lock:
            for group in stop_order([p.name for p in self._processes]):
                stopping = [p for p in self._processes if p.name in group]
                for process in stopping:
                    process.terminate()
                for process in stopping:
                    process.wait_stopped()
            self._processes.clear()

    def _release_all(self) -> list[ProcessRecord]:
        """Hand every running process over to the caller, unstopped, and forget them all."""
        with self._lock:
            records = self.records()
            for process in self._processes:
                process.release()
            self._processes.clear()
            return records

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
