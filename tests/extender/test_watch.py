"""The watch loop's account of whether the view is current, against a scripted API server.

A failed watch (server unreachable, stream broken) makes the view *lost* until it is current
again: a list, an event on the resumed watch, or a resumed watch that runs to its end. A 410
Gone relists without losing the view in between; the state's readiness follows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from extender.app import probe_routes
from extender.kubeapi import KubeError
from extender.metrics import ExtenderMetrics
from extender.state import LEASES, PODS, REPORTS, ClusterState
from extender.watch import RESUME_TIMEOUT_S, Watcher, WatchTarget


def line(kind: str, rv: str, code: int = 0) -> bytes:
    if kind == "ERROR":
        return orjson.dumps({"type": kind, "object": {"kind": "Status", "code": code}})
    return orjson.dumps(
        {"type": kind, "object": {"metadata": {"name": "x", "resourceVersion": rv}}}
    )


UNREACHABLE = KubeError("watch", 0, "connection refused")
BROKEN = RuntimeError("InvalidChunkLength")


@dataclass
class ScriptedAPI:
    """Answers each watch with the next step: lines to send, an error to raise before any, or
    ``(lines, error)`` to raise after the lines; stops the watcher when the script ends."""

    script: list[Any]
    stop: threading.Event
    sleep_s: float = 0.0
    watches: list[tuple[str, int]] = field(default_factory=list)
    lists: int = 0

    def list_page(self, path: str, *, limit: int, cont: str = "") -> dict[str, Any]:
        self.lists += 1
        return {"items": [], "metadata": {"resourceVersion": f"list-{self.lists}"}}

    def watch_lines(self, path: str, *, resource_version: str, timeout_s: int) -> Iterator[bytes]:
        self.watches.append((resource_version, timeout_s))
        if not self.script:
            self.stop.set()
            return
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        lines, error = step if isinstance(step, tuple) else (step, None)
        yield from lines
        if error is not None:
            raise error
        time.sleep(self.sleep_s)


def run(
    script: list[Any], *, timeout_s: int = 300, sleep_s: float = 0.0
) -> tuple[list[str], ScriptedAPI]:
    stop = threading.Event()
    api = ScriptedAPI(script, stop, sleep_s=sleep_s)
    seen: list[str] = []

    def ignore(*_args: object) -> None:
        return None

    target = WatchTarget("pods", "/api/v1/pods", replace=ignore, apply=ignore)
    watcher = Watcher(
        api,  # type: ignore[arg-type]
        target,
        on_synced=lambda r: seen.append(f"synced {r}"),
        on_lost=lambda r: seen.append(f"lost {r}"),
        stop=stop,
        timeout_s=timeout_s,
    )
    thread = watcher.start()
    thread.join(timeout=20)
    assert not thread.is_alive()
    return seen, api


@pytest.mark.parametrize(
    ("script", "expected", "lists"),
    [
        pytest.param([[line("ADDED", "5")]], ["synced pods"], 1, id="quiet-after-the-list"),
        pytest.param(
            [UNREACHABLE, [line("MODIFIED", "6")]],
            ["synced pods", "lost pods", "synced pods"],
            1,
            id="unreachable-then-an-event-on-the-resumed-watch",
        ),
        pytest.param(
            [UNREACHABLE, [line("ERROR", "", 410)]],
            ["synced pods", "lost pods", "synced pods"],
            2,
            id="unreachable-then-410-relists",
        ),
        pytest.param(
            [([line("ADDED", "5")], BROKEN), [line("BOOKMARK", "7")]],
            ["synced pods", "lost pods", "synced pods"],
            1,
            id="stream-broken-then-a-bookmark",
        ),
        pytest.param(
            [[line("ERROR", "", 410)]],
            ["synced pods", "synced pods"],
            2,
            id="410-alone-relists-without-losing-the-view",
        ),
        pytest.param(
            [UNREACHABLE, UNREACHABLE],
            ["synced pods", "lost pods"],
            1,
            id="lost-is-said-once",
        ),
    ],
)
def test_the_view_is_lost_while_the_watch_fails(
    script: list[Any], expected: list[str], lists: int
) -> None:
    seen, api = run(script)
    assert seen == expected
    assert api.lists == lists


def test_a_watch_resumed_after_a_failure_is_short_and_starts_where_the_view_stopped() -> None:
    _, api = run([[line("ADDED", "5")], UNREACHABLE, []])
    assert api.watches[:3] == [("list-1", 300), ("5", 300), ("5", RESUME_TIMEOUT_S)]


def test_a_resumed_watch_that_runs_to_its_end_makes_the_view_current() -> None:
    seen, _ = run([UNREACHABLE, []], timeout_s=1, sleep_s=1.0)
    assert seen == ["synced pods", "lost pods", "synced pods"]


def test_readiness_says_which_watch_was_lost() -> None:
    state = ClusterState(assumed_ttl_s=30)
    routes = probe_routes(state, ExtenderMetrics(CollectorRegistry()))
    for resource in (PODS, REPORTS, LEASES):
        state.mark_synced(resource)
    assert routes["/readyz"]().status == 200
    state.mark_lost(PODS)
    page = routes["/readyz"]()
    assert (page.status, page.body) == (
        503,
        b"not ready: lost the watch of pods (is the API server reachable?)\n",
    )
    assert state.unsynced() == [PODS]
    state.mark_synced(PODS)
    assert routes["/readyz"]().status == 200 and state.lost() == []


def test_a_resource_never_listed_is_not_lost() -> None:
    state = ClusterState(assumed_ttl_s=30)
    state.mark_lost(PODS)
    assert state.lost() == [] and state.unsynced() == [PODS, REPORTS, LEASES]
