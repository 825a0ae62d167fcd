"""Child processes of the control plane: start with a log file, wait for readiness, always stop.

Every process runs in its own session, so a Ctrl-C aimed at the test run does not kill it before
the harness stops it in order. A process that belongs to the caller (not ``detached``) also gets
``PR_SET_PDEATHSIG``: should the parent die without running any cleanup (SIGKILL), the kernel
kills the child too, so nothing is left listening on a port. Processes started ``detached``
outlive the caller (``make cluster``) and are stopped later by pid with :func:`stop_pid`, which
first checks that the pid still runs the same executable.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Final

PR_SET_PDEATHSIG: Final = 1
STOP_TIMEOUT_S: Final = 10.0
_TAIL_BYTES: Final = 64 * 1024
_RELEASED: list[subprocess.Popen[bytes]] = []


class ProcessExitedError(RuntimeError):
    """A child exited while we waited for it to become ready."""

    def __init__(self, process: ManagedProcess, returncode: int) -> None:
        self.process = process
        self.returncode = returncode
        super().__init__(
            f"{process.name} exited with code {returncode} before it was ready; "
            f"last lines of {process.log_path}:\n{tail(process.log_path, 25)}"
        )


class NotReadyError(RuntimeError):
    """A child did not become ready in time."""


def _libc_prctl() -> Callable[[int, int], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    prctl = getattr(libc, "prctl", None)
    if prctl is None:
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl  # type: ignore[no-any-return]


# Resolved once in the parent: after fork, the child only calls it.
_PRCTL: Final = _libc_prctl()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (racy by nature: callers retry on a bind error)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a log file ("" when it does not exist)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - _TAIL_BYTES))
            data = handle.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """One child process whose output goes to a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        detached: bool = False,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.detached = detached
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())
        self._log.write(
            f"--- {time.strftime('%H:%M:%S')} starting: {' '.join(self.argv)}\n".encode()
        )
        self._log.flush()
        try:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=None if self.detached else _die_with_parent,  # noqa: PLW1509
                env=self._env,
                cwd=self._cwd,
            )
        except OSError as exc:
            self._log.close()
            raise RuntimeError(f"cannot start {self.name} ({self.argv[0]}): {exc}") from None
        return self

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._popen.pid

    def returncode(self) -> int | None:
        """None while it runs; its exit code once it has exited."""
        return None if self._popen is None else self._popen.poll()

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def wait_ready(
        self, probe: Callable[[], bool], timeout: float, interval: float = 0.05
    ) -> float:
        """Poll ``probe`` until it is true; returns seconds waited. Raises if the child exits."""
        started = time.monotonic()
        deadline = started + timeout
        while True:
            code = self.returncode()
            if code is not None:
                raise ProcessExitedError(self, code)
            if probe():
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise NotReadyError(
                    f"{self.name} was not ready after {timeout:.0f} s; last lines of "
                    f"{self.log_path}:\n{tail(self.log_path, 25)}"
                )
            time.sleep(interval)

    def terminate(self) -> None:
        """Send SIGTERM if it runs (see :meth:`wait_stopped`)."""
        popen = self._popen
        if popen is not None and popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Wait for it to exit, SIGKILL it after ``timeout``, and close its log."""
        popen = self._popen
        if popen is not None:
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    popen.kill()
                popen.wait()
        if self._log is not None and not self._log.closed:
            self._log.close()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; idempotent."""
        self.terminate()
        self.wait_stopped(timeout)

    def release(self) -> None:
        """Forget a detached child without stopping it (it lives on after we exit)."""
        if self._log is not None and not self._log.closed:
            self._log.close()
        if self._popen is not None:
            _RELEASED.append(self._popen)  # never collected, so never reported as "still running"
        self._popen = None


def process_executable(pid: int) -> str | None:
    """The executable ``pid`` runs (from /proc), or None when it is gone or unreadable."""
    try:
        return os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def runs_executable(pid: int, executable: Path) -> bool:
    """Does ``pid`` exist and run ``executable``? (guards against a recycled pid)."""
    exe = process_executable(pid)
    if exe is None or not _alive(pid):
        return False
    return os.path.realpath(exe) == os.path.realpath(executable)


def stop_pids(processes: Sequence[tuple[int, Path]], timeout: float = STOP_TIMEOUT_S) -> int:
    """Stop processes we started earlier but no longer hold: SIGTERM to all, then wait for all,
    SIGKILL after ``timeout``. A pid that no longer runs its executable is left alone (it may
    have been reused). Returns how many were running."""
    running = [pid for pid, executable in processes if runs_executable(pid, executable)]
    for pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    waiting = list(running)
    while waiting:
        for pid in waiting:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        waiting = [pid for pid in waiting if _alive(pid)]
        if waiting and time.monotonic() > deadline:
            for pid in waiting:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        if waiting:
            time.sleep(0.05)
    return len(running)


def _unverified_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def http_ok(url: str, expect: Callable[[bytes], bool], *, timeout: float = 1.0) -> bool:
    """Readiness probe: GET ``url`` and test the body; any error means "not yet".

    Probes skip TLS verification: they only ask whether a port answers, before any credential
    or certificate is involved (the scheduler's serving certificate is generated in memory).
    """
    context = _unverified_tls() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return response.status == 200 and expect(response.read())
    except (urllib.error.URLError, OSError, ssl.SSLError, ValueError):
        return False
