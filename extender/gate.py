"""Scheduler requests before watch events: a watch thread waits for the requests in flight.

kube-scheduler waits for each filter, pod after pod, and the extender answers it from one
Python process in which its watches run too. A watch thread that decodes and applies a node's
report while a filter runs takes the interpreter from it for a few hundred microseconds, and a
collection of the young objects the report made lands in the middle of the filter: at 5,000
nodes the agents send about 80 reports a second, so one filter in four met one, and the
filter's tail followed the agents' churn rather than its own work.

An agent's report or Lease is not in a hurry (a report is up to a minute old by design, a
Lease is renewed every few seconds), so their watch threads (``extender.server.GIVE_WAY``),
before they decode each event, wait until no request is in flight (``RequestGate.wait_turn``).
A watch waits at most ``max_wait_s`` at a time, and after a wait that ran out it goes on
without waiting for as long again: a stream of requests holds the view back by ``max_wait_s``
at most, and the watches keep at least half of the time to catch up in. Requests are never
held back. The watches of pods and nodes do not wait: in a burst they feed the scheduling.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

MAX_WAIT_S = 0.05
"""The longest a watch event waits for the requests in flight, at a time."""


class RequestGate:
    """Counts the requests in flight; watch threads wait for none to be (``wait_turn``)."""

    def __init__(
        self, max_wait_s: float = MAX_WAIT_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be at least 0, got {max_wait_s}")
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._idle = threading.Condition(threading.Lock())
        self._in_flight = 0
        self._free_until = float("-inf")  # after a wait that ran out: no waiting until then

    def enter(self) -> Callable[[], None]:
        """A request begins; call what is returned once it has ended (more calls do nothing)."""
        with self._idle:
            self._in_flight += 1
        done = False

        def leave() -> None:
            nonlocal done
            with self._idle:
                if done:
                    return
                done = True
                self._in_flight -= 1
                if not self._in_flight:
                    self._idle.notify_all()

        return leave

    def wsgi(self, app: WSGIApplication) -> WSGIApplication:
        """``app`` with each request held in flight from its start until the server closes its
        reply (after the last byte is written, and after the reply's own close callbacks)."""

        def gated(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            leave = self.enter()
            try:
                body = app(environ, start_response)
            except BaseException:
                leave()
                raise
            return _Reply(body, leave)

        return gated

    @property
    def in_flight(self) -> int:
        """Requests being served now."""
        return self._in_flight

    def wait_turn(self) -> float:
        """Wait until no request is in flight, at most ``max_wait_s``; seconds waited. After
        a wait that ran out, the calls of the next ``max_wait_s`` do not wait."""
        with self._idle:
            if not self._in_flight:
                return 0.0
            started = self._clock()
            if started < self._free_until:
                return 0.0
            deadline = started + self.max_wait_s
            while self._in_flight:
                left = deadline - self._clock()
                if left <= 0:
                    self._free_until = self._clock() + self.max_wait_s
                    break
                self._idle.wait(left)
            return self._clock() - started


class _Reply:
    """A WSGI reply that leaves the gate when the server closes it, even when the reply's own
    close fails (a close callback that raises must not keep a request in flight for good)."""

    def __init__(self, body: Iterable[bytes], leave: Callable[[], None]) -> None:
        self._body = body
        self._leave = leave

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._leave()


__all__ = ["MAX_WAIT_S", "RequestGate"]
