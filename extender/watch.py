"""List-then-watch loops that keep the extender's view current, in raw JSON.

A thin shell over the API server's watch protocol: list every page, hand the items to the
state in one call, then watch from the list's resourceVersion with bookmarks so it stays fresh;
relist when the server says the version is gone (410) or the stream breaks in a way that may
have lost events. The state never sees a partial list, and readiness waits for the first one.

A watch that fails (the API server unreachable, a stream broken mid-read) may have missed
events, so the view is reported lost (``on_lost``: the extender is not ready) until it is
current again: a list applied, an event received on the resumed watch, or a resumed watch that
ran to its end without one (a short one, so a quiet resource does not stay lost for long).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from extender.gate import RequestGate
from extender.kubeapi import KubeAPI, KubeError
from extender.metrics import ExtenderMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WatchTarget:
    """One watched collection and where its items and events go."""

    resource: str
    path: str
    replace: Callable[[list[Mapping[str, Any]], float], None]
    apply: Callable[[str, Mapping[str, Any]], None]


RESUME_TIMEOUT_S = 10
"""A watch resumed after a failure ends this soon, so that one that sees no event (a quiet
resource) still shows the view current again within seconds."""


class _RelistError(Exception):
    """The watch cannot resume from its resourceVersion: list again."""


class Watcher:
    """Runs one ``WatchTarget`` in a daemon thread until ``stop`` is set."""

    def __init__(
        self,
        api: KubeAPI,
        target: WatchTarget,
        *,
        on_synced: Callable[[str], None],
        on_lost: Callable[[str], None] | None = None,
        metrics: ExtenderMetrics | None = None,
        stop: threading.Event | None = None,
        page_size: int = 500,
        timeout_s: int = 300,
        clock: Callable[[], float] = time.time,
        gate: RequestGate | None = None,
    ) -> None:
        self.api = api
        # Scheduler requests first: each event waits for those in flight (``extender.gate``).
        self.gate = gate
        self.target = target
        self.on_synced = on_synced
        self.on_lost = on_lost
        self.metrics = metrics
        self.stop = stop or threading.Event()
        self.page_size = page_size
        self.timeout_s = timeout_s
        self.clock = clock
        self._thread: threading.Thread | None = None
        self._current = False

    def _regained(self) -> None:
        if not self._current:
            self._current = True
            self.on_synced(self.target.resource)

    def _lost(self) -> None:
        if self._current and self.on_lost is not None:
            self.on_lost(self.target.resource)
        self._current = False

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(
            target=self.run, name=f"watch-{self.target.resource}", daemon=True
        )
        self._thread.start()
        return self._thread

    def _restart(self, cause: str) -> None:
        if self.metrics is not None:
            self.metrics.watch_restarts.labels(self.target.resource, cause).inc()

    def _wait_turn(self) -> None:
        """Wait for the requests in flight, when this watch gives way (``extender.gate``)."""
        if self.gate is None:
            return
        waited = self.gate.wait_turn()
        if waited > 0 and self.metrics is not None:
            self.metrics.watch_waits.labels(self.target.resource).inc(waited)

    def list_all(self) -> str:
        """List every page into the state; returns the list's resourceVersion."""
        listed_at = self.clock()
        items: list[Mapping[str, Any]] = []
        cont = ""
        while True:
            page = self.api.list_page(self.target.path, limit=self.page_size, cont=cont)
            raw_items = page.get("items") or []
            if not isinstance(raw_items, list):
                raise KubeError(f"list {self.target.path}", 200, "items is not a list")
            items.extend(i for i in raw_items if isinstance(i, Mapping))
            meta = page.get("metadata") or {}
            cont = str(meta.get("continue") or "") if isinstance(meta, Mapping) else ""
            if not cont:
                rv = str(meta.get("resourceVersion") or "") if isinstance(meta, Mapping) else ""
                break
        self._wait_turn()
        self.target.replace(items, listed_at)
        return rv

    def watch_from(self, rv: str) -> str:
        """Apply events until the server ends the watch; returns the last resourceVersion."""
        timeout_s = self.timeout_s if self._current else min(self.timeout_s, RESUME_TIMEOUT_S)
        started = time.monotonic()
        for line in self.api.watch_lines(
            self.target.path, resource_version=rv, timeout_s=timeout_s
        ):
            if self.stop.is_set():
                return rv
            self._wait_turn()
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                log.warning("watch %s: undecodable event line dropped", self.target.resource)
                raise _RelistError from None
            kind = event.get("type") if isinstance(event, dict) else None
            obj = event.get("object") if isinstance(event, dict) else None
            if not isinstance(kind, str) or not isinstance(obj, dict):
                raise _RelistError
            if kind == "ERROR":
                code = obj.get("code")
                log.info(
                    "watch %s: server error %s: %s", self.target.resource, code, obj.get("message")
                )
                raise _RelistError
            self._regained()  # the resumed watch goes on from where the view stopped
            meta = obj.get("metadata")
            new_rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
            if kind != "BOOKMARK":
                self.target.apply(kind, obj)
            if self.metrics is not None:
                self.metrics.watch_events.labels(self.target.resource, kind).inc()
            if isinstance(new_rv, str) and new_rv:
                rv = new_rv
        if time.monotonic() - started >= timeout_s * 0.9:
            self._regained()  # ran to its end: nothing was missed (an early end proves nothing)
        return rv

    def run(self) -> None:
        backoff = 0.5
        rv = ""
        while not self.stop.is_set():
            try:
                if not rv:
                    rv = self.list_all()
                    self._current = True
                    self.on_synced(self.target.resource)
                    backoff = 0.5
                rv = self.watch_from(rv)
            except _RelistError:
                self._restart("expired")
                rv = ""
            except KubeError as exc:
                if exc.status == 410:
                    self._restart("expired")
                    rv = ""
                    continue
                self._restart("error")
                self._lost()
                log.warning("watch %s: %s; retrying in %.1fs", self.target.resource, exc, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                if exc.status != 0:
                    rv = ""
            except Exception as exc:  # a broken stream mid-read (urllib3 protocol errors)
                self._restart("stream")
                self._lost()
                log.warning("watch %s: stream broke (%s); retrying", self.target.resource, exc)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
