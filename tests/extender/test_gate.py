"""Scheduler requests before watch events (``extender.gate``): a watch event waits for the
requests in flight, never longer than the gate's bound at a time, and never holds a request."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from flask import Response
from prometheus_client import CollectorRegistry

from extender.app import verb_app
from extender.config import Settings
from extender.gate import RequestGate
from extender.metrics import ExtenderMetrics
from extender.watch import Watcher, WatchTarget


class FakeClock:
    """A monotonic clock the test moves; ``RequestGate`` waits on a real condition, bounded."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    return thread, out


@pytest.mark.parametrize(
    ("requests", "expect_wait"),
    [
        pytest.param(0, False, id="idle-no-wait"),
        pytest.param(1, True, id="one-in-flight-waits"),
        pytest.param(3, True, id="several-in-flight-wait-for-all"),
    ],
)
def test_a_watch_event_waits_for_every_request_in_flight(requests: int, expect_wait: bool) -> None:
    gate = RequestGate(max_wait_s=30.0)
    leaves = [gate.enter() for _ in range(requests)]
    thread, out = _in_thread(gate.wait_turn)
    for leave in leaves:
        thread.join(timeout=0.05)
        assert thread.is_alive(), "the watch went on while a request was in flight"
        leave()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert (out[0] > 0) is expect_wait
    assert gate.in_flight == 0


def test_a_wait_is_bounded_and_then_the_watch_catches_up() -> None:
    """A request that outlasts the bound: the watch waits the bound, then for as long again it
    does not wait; after that it waits again."""
    clock = FakeClock()
    gate = RequestGate(max_wait_s=0.2, clock=clock)
    gate.enter()  # a request that never ends, as a flood of requests would look
    started = time.monotonic()
    thread, out = _in_thread(gate.wait_turn)
    time.sleep(0.05)
    clock.now += 0.3  # past the bound: the next wake-up gives up
    thread.join(timeout=5)
    assert not thread.is_alive() and time.monotonic() - started < 5
    assert out[0] == pytest.approx(0.3)
    clock.now += 0.1  # within the catch-up time: no wait
    assert gate.wait_turn() == 0.0
    clock.now += 0.15  # past it: waits again (and gives up again at the bound)
    thread, out = _in_thread(gate.wait_turn)
    thread.join(timeout=0.1)
    assert thread.is_alive()
    clock.now += 0.25
    thread.join(timeout=5)
    assert not thread.is_alive()


@pytest.mark.parametrize(
    "max_wait_s",
    [pytest.param(-1.0, id="negative"), pytest.param(-0.001, id="slightly-negative")],
)
def test_a_negative_bound_is_refused(max_wait_s: float) -> None:
    with pytest.raises(ValueError, match="max_wait_s must be at least 0"):
        RequestGate(max_wait_s=max_wait_s)


def test_leaving_twice_counts_once() -> None:
    gate = RequestGate()
    first, second = gate.enter(), gate.enter()
    first()
    first()
    assert gate.in_flight == 1
    second()
    assert gate.in_flight == 0


def _app(gate: RequestGate, seen: list[int]) -> Any:
    settings = Settings()

    def filter_verb(body: bytes) -> Response:
        seen.append(gate.in_flight)
        if body == b"boom":
            raise RuntimeError("a fault of ours")
        return Response(b'{"NodeNames": []}', mimetype="application/json")

    return verb_app(
        settings, ExtenderMetrics(CollectorRegistry()), {"filter": filter_verb}, {}, gate=gate
    )


@pytest.mark.parametrize(
    ("path", "body", "status", "handled"),
    [
        pytest.param("/scheduler/filter", b"{}", 200, [1], id="answered"),
        pytest.param("/scheduler/filter", b"boom", 200, [1], id="handler-fault-answered"),
        pytest.param("/scheduler/nope", b"{}", 404, [], id="unknown-verb"),
        pytest.param("/nowhere", b"{}", 404, [], id="unknown-path"),
    ],
)
def test_a_request_is_in_flight_until_its_reply_is_closed(
    path: str, body: bytes, status: int, handled: list[int]
) -> None:
    gate = RequestGate()
    seen: list[int] = []
    client = _app(gate, seen).test_client()
    reply = client.post(path, data=body, content_type="application/json", buffered=False)
    assert reply.status_code == status
    assert gate.in_flight == 1, "held while the server still writes the reply"
    reply.close()
    assert gate.in_flight == 0
    assert seen == handled, "the handler ran with its own request in flight"


def test_a_wsgi_app_that_raises_leaves_the_gate() -> None:
    gate = RequestGate()

    def broken(_environ: Any, _start: Any) -> Iterator[bytes]:
        raise OSError("client went away")

    with pytest.raises(OSError):
        gate.wsgi(broken)({}, lambda *_a: None)  # type: ignore[arg-type]
    assert gate.in_flight == 0


class FailingClose:
    """A reply whose own close raises (a close callback that failed)."""

    def __iter__(self) -> Iterator[bytes]:
        return iter([b"ok"])

    def close(self) -> None:
        raise RuntimeError("close callback failed")


@pytest.mark.parametrize(
    ("body", "raises"),
    [
        pytest.param([b"ok"], False, id="plain-list"),
        pytest.param(FailingClose(), True, id="close-raises"),
    ],
)
def test_the_gate_is_left_when_the_server_closes_the_reply(body: Any, raises: bool) -> None:
    gate = RequestGate()

    def app(_environ: Any, _start: Any) -> Any:
        return body

    reply: Any = gate.wsgi(app)({}, lambda *_a: None)  # type: ignore[arg-type]
    assert b"".join(reply) == b"ok"
    assert gate.in_flight == 1
    if raises:
        with pytest.raises(RuntimeError):
            reply.close()
    else:
        reply.close()
    assert gate.in_flight == 0


def test_the_watch_applies_an_event_after_the_request_in_flight() -> None:
    """The watch loop waits at the gate before it decodes each event: an event that arrives
    while a request is served is applied once the request is over."""
    gate = RequestGate(max_wait_s=30.0)
    stop = threading.Event()
    applied: list[tuple[str, float]] = []
    metrics = ExtenderMetrics(CollectorRegistry())
    synced = threading.Event()
    held: list[Callable[[], None]] = []

    def on_synced(_resource: str) -> None:  # a request comes in once the list is applied
        held.append(gate.enter())
        synced.set()

    class OneEvent:
        def list_page(self, path: str, *, limit: int, cont: str = "") -> dict[str, Any]:
            return {"items": [], "metadata": {"resourceVersion": "1"}}

        def watch_lines(
            self, path: str, *, resource_version: str, timeout_s: int
        ) -> Iterator[bytes]:
            if stop.is_set():
                return
            yield orjson.dumps(
                {"type": "MODIFIED", "object": {"metadata": {"name": "a", "resourceVersion": "2"}}}
            )
            stop.set()

    def apply(kind: str, _obj: Any) -> None:
        applied.append((kind, time.monotonic()))

    target = WatchTarget("pods", "/api/v1/pods", replace=lambda *_a: None, apply=apply)
    watcher = Watcher(
        OneEvent(),  # type: ignore[arg-type]
        target,
        on_synced=on_synced,
        stop=stop,
        gate=gate,
        metrics=metrics,
    )
    thread = watcher.start()
    assert synced.wait(timeout=10)
    time.sleep(0.2)
    assert applied == [], "applied while the request was in flight"
    ended = time.monotonic()
    held[0]()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert [kind for kind, _ in applied] == ["MODIFIED"]
    assert applied[0][1] >= ended
    waited = metrics.registry.get_sample_value(
        "vramfit_extender_watch_wait_seconds_total", {"resource": "pods"}
    )
    assert waited is not None and waited >= 0.15
