"""No control plane outlives the Python process that started it.

A plane that is not ``detached`` registers here when it starts and leaves when it stops. The
first registration installs an ``atexit`` hook and, from the main thread, SIGTERM and SIGHUP
handlers (only where nobody else handles them): each stops every registered plane, and a signal
is then delivered again with its default action, so the process still dies of it. A SIGKILL
leaves no time for this; ``PR_SET_PDEATHSIG`` (:mod:`controlplane.processes`) covers that case.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
from types import FrameType
from typing import Protocol


class Stoppable(Protocol):
    """What a registered plane offers: a ``stop()`` that may be called more than once."""

    def stop(self) -> None: ...


_ACTIVE: set[Stoppable] = set()
_ACTIVE_LOCK = threading.Lock()
_HOOKS_INSTALLED: list[bool] = []  # non-empty once the exit and signal hooks are installed


def stop_active() -> None:
    """Stop every registered plane, ignoring the errors of each (runs at exit)."""
    with _ACTIVE_LOCK:
        planes = list(_ACTIVE)
    for plane in planes:
        with contextlib.suppress(Exception):
            plane.stop()


def on_signal(signum: int, _frame: FrameType | None) -> None:
    """Stop every registered plane, then die of ``signum`` as if nobody had handled it."""
    stop_active()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def track(plane: Stoppable) -> None:
    """Register ``plane``; the first call installs the exit and signal hooks."""
    with _ACTIVE_LOCK:
        _ACTIVE.add(plane)
        if _HOOKS_INSTALLED:
            return
        _HOOKS_INSTALLED.append(True)
    atexit.register(stop_active)
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) in (signal.SIG_DFL, None):
                signal.signal(signum, on_signal)


def untrack(plane: Stoppable) -> None:
    """Forget ``plane`` (it stopped, or was handed over); unknown planes are ignored."""
    with _ACTIVE_LOCK:
        _ACTIVE.discard(plane)
