"""The extender's HTTP face: a Flask app factory with ten-line handlers.

Routes: ``POST /scheduler/{filter,prioritize,bind,preempt}`` (the kube-scheduler extender verbs;
preempt in ``extender.preempt``),
``/healthz``, ``/readyz`` (ready once every reservation was rebuilt from pods) and ``/metrics``
(``probe_routes``, which the probe listener of ``--metrics-listen`` serves too). Each verb decodes the request (``wire``), asks a pure function (``decisions``) or the binder,
and encodes the answer. A request that does not match the protocol gets 400 (413 when too
large, 404 for an unknown verb) with a message; nothing here answers 500.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from extender.ahead import AheadNominator
from extender.bind import Binder
from extender.claims_watch import DraView, claims_waiting, pod_demand
from extender.config import Settings
from extender.decisions import (
    FilterOutcome,
    InvalidPodError,
    Mode,
    filter_nodes,
    invalid_pod,
    passthrough,
    prioritize_nodes,
)
from extender.gate import RequestGate
from extender.groups import GroupSettings, GroupTable
from extender.metrics import ExtenderMetrics
from extender.preempt import Preemption
from extender.requeue import Requeuer
from extender.state import ClusterState, PendingPod
from extender.wire import (
    ExtenderArgs,
    WireError,
    decode_binding_args,
    decode_extender_args,
    encode,
    encode_priorities,
    error_filter_result,
    filter_result,
)
from placement.fields import quote
from placement.lifecycle import assume
from serving import Page, Route

log = logging.getLogger(__name__)

VERBS = ("filter", "prioritize", "bind", "preempt")
Verb = Callable[[bytes], Response]
"""A verb's handler: the request body in, the reply out (``WireError`` for a bad request)."""
NOT_READY = "vramfit extender is starting: reservations are not rebuilt from pods yet ({})"


def _body(limit: int) -> bytes:
    """The request body; 413 when it is over ``limit``, with or without a Content-Length.

    Werkzeug stops a length-less (chunked) body at the limit without complaint, which would
    hand a truncated document to the decoder: a body that reaches the limit is refused here.
    """
    data = request.get_data(cache=False)
    if request.content_length is None and len(data) >= limit:
        raise RequestEntityTooLarge()
    return data


def _json(value: object, status: int = 200) -> Response:
    return Response(encode(value), status=status, mimetype="application/json")


class Handlers:
    """The verb handlers, bound to one state, binder and metrics."""

    def __init__(
        self,
        settings: Settings,
        state: ClusterState,
        binder: Binder,
        metrics: ExtenderMetrics,
        clock: Callable[[], float],
        *,
        requeuer: Requeuer | None = None,
        groups: GroupTable | None = None,
        dra: DraView | None = None,
        ahead: AheadNominator | None = None,
    ) -> None:
        self.requeuer = requeuer
        # Nominations set ahead of kube-scheduler's cycle (--nominate-ahead), withdrawn here.
        self.ahead = ahead
        # Pods that claim GPUs through DRA: their claims, and the GPUs each node offers them.
        self.dra = dra
        # Without a Node watch (tests, tools), groups keep to one pool and ignore topology.
        self.groups = groups or GroupTable(state, GroupSettings(topology_key=""))
        self.settings = settings
        self.state = state
        self.binder = binder
        self.metrics = metrics
        self.clock = clock

    def _count(self, out: FilterOutcome) -> None:
        self.metrics.decisions.labels("filter", out.outcome.value, out.reason).inc()
        self.metrics.reject_later(out.reject_codes)  # settled once the reply is sent

    def _decide(self, args: ExtenderArgs) -> FilterOutcome:
        try:
            read = pod_demand(args.pod, self.settings.policy, self.dra, args.ref.uid)
        except InvalidPodError as exc:
            return invalid_pod(args.node_names, str(exc))
        if read.waiting:
            return claims_waiting(args.node_names)
        demand = read.demand
        ref = args.ref
        now = self.clock()
        # Bind takes only pods filter saw (those without GPUs too: bind posts their Binding).
        self.state.remember(PendingPod(ref.uid, ref.key, ref.resource_version, demand, now))
        if demand is None:
            return passthrough(args.node_names)
        # A member of a multi-node group: the whole group is decided at once (extender.groups).
        try:
            grouped = self.groups.filter(
                args.pod,
                ref,
                demand,
                args.node_names,
                now=now,
                settings=self.settings.fit,
                policy=self.settings.policy,
            )
        except InvalidPodError as exc:
            return invalid_pod(args.node_names, str(exc))
        if grouped is not None:
            return grouped
        decide_mode = self.settings.mode is Mode.DECIDE
        with self.state.locked_view(now) as view:
            out = filter_nodes(
                demand,
                ref.uid,
                args.node_names,
                view,
                now=now,
                mode=self.settings.mode,
                policy=self.settings.policy,
                settings=self.settings.fit,
                eligible=read.eligible,
            )
            if decide_mode and out.chosen is not None:
                self.state.assume(
                    assume(
                        out.chosen,
                        demand,
                        pod_uid=ref.uid,
                        pod_key=ref.key,
                        now=now,
                        ttl_s=self.settings.assumed_ttl_s,
                    )
                )
        if out.chosen is None and self.ahead is not None:
            node = self.state.withdraw_ahead(ref.uid)
            if node is not None:
                self.ahead.withdraw(ref.uid, ref.namespace, ref.name, node)
        return out

    def filter(self, body: bytes) -> Response:
        self.metrics.settle()  # counts a reply left held when its close never came
        args = decode_extender_args(body)
        unsynced = self.state.unsynced()
        if unsynced:
            self.metrics.decisions.labels("filter", "error", "not-ready").inc()
            return _json(error_filter_result(args, NOT_READY.format(", ".join(unsynced))))
        out = self._decide(args)
        self._count(out)
        if self.requeuer is not None:
            if out.passed:
                self.requeuer.forget(args.ref.uid)
            elif out.failed:  # a node could take it later: wake the pod when capacity returns
                self.requeuer.refused(args.ref.uid, args.ref.namespace, args.ref.name)
        if out.chosen is not None:
            log.debug("filter %s: %s on %s", args.ref.key, out.outcome, out.chosen.node)
        if out.passed:
            # kube-scheduler reads the reasons only when no node passes (for the pod's event
            # and for preemption); at thousands of nodes they are most of the reply's bytes.
            reply = _json(filter_result(args, out.passed, {}, {}))
        else:
            reply = _json(filter_result(args, [], out.failed, out.unresolvable))
        reply.call_on_close(self.metrics.settle)
        return reply

    def prioritize(self, body: bytes) -> Response:
        args = decode_extender_args(body)
        try:
            read = pod_demand(args.pod, self.settings.policy, self.dra, args.ref.uid)
        except InvalidPodError:
            read = None
        demand = read.demand if read is not None else None
        if read is None or demand is None or self.state.unsynced():
            scores = [0] * len(args.node_names)
            outcome = "passthrough" if demand is None else "error"
        else:
            now = self.clock()
            with self.state.locked_view(now) as view:
                scores = prioritize_nodes(
                    demand,
                    args.ref.uid,
                    args.node_names,
                    view,
                    now=now,
                    policy=self.settings.policy,
                    settings=self.settings.fit,
                    eligible=read.eligible,
                )
            outcome = "scored"
        self.metrics.decisions.labels("prioritize", outcome, "").inc()
        return Response(
            encode_priorities(args.node_names, scores), status=200, mimetype="application/json"
        )

    def bind(self, body: bytes) -> Response:
        args = decode_binding_args(body)
        unsynced = self.state.unsynced()
        if unsynced:
            self.metrics.decisions.labels("bind", "error", "not-ready").inc()
            return _json({"Error": NOT_READY.format(", ".join(unsynced))})
        out = self.binder.bind(args)
        outcome = "failed" if out.error else "bound"
        self.metrics.decisions.labels("bind", outcome, out.code).inc()
        if out.error:
            log.info("bind %s to %s failed: %s", args.key, args.node, out.error)
        return _json({"Error": out.error})


def probe_routes(state: ClusterState, metrics: ExtenderMetrics) -> dict[str, Route]:
    """``/healthz``, ``/readyz`` and ``/metrics``: served on the verbs' port and, when one is
    configured, by the probe listener (``serving``), which has threads of its own."""

    def healthz() -> Page:
        return Page(200, b"ok\n")

    def readyz() -> Page:
        unsynced = state.unsynced()
        metrics.ready.set(0 if unsynced else 1)
        if unsynced:
            lost = state.lost()
            if lost:
                why = f"lost the watch of {', '.join(lost)} (is the API server reachable?)"
            else:
                why = f"waiting for the first list of {', '.join(unsynced)}"
            return Page(503, f"not ready: {why}\n".encode())
        return Page(200, b"ok\n")

    def metrics_page() -> Page:
        metrics.settle()
        metrics.ready.set(0 if state.unsynced() else 1)
        valid, invalid = state.node_count()
        metrics.nodes.labels("valid").set(valid)
        metrics.nodes.labels("invalid").set(invalid)
        return Page(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)

    return {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics_page}


def _page_view(route: Route) -> Callable[[], Response]:
    def view() -> Response:
        page = route()
        return Response(page.body, status=page.status, content_type=page.content_type)

    return view


def create_app(
    settings: Settings,
    state: ClusterState,
    binder: Binder,
    metrics: ExtenderMetrics,
    *,
    clock: Callable[[], float] = time.time,
    requeuer: Requeuer | None = None,
    groups: GroupTable | None = None,
    dra: DraView | None = None,
    ahead: AheadNominator | None = None,
    gate: RequestGate | None = None,
) -> Flask:
    """Build the WSGI app. Starts nothing: watches are the server's job (``gate``: the one
    they wait at for the requests in flight)."""
    handlers = Handlers(
        settings,
        state,
        binder,
        metrics,
        clock,
        requeuer=requeuer,
        groups=groups,
        dra=dra,
        ahead=ahead,
    )
    preemption = Preemption(settings, state, metrics, clock)
    metrics.watch_reservations(lambda: state.reservations_by_state(clock()))
    verbs: dict[str, Verb] = {
        "filter": handlers.filter,
        "prioritize": handlers.prioritize,
        "bind": handlers.bind,
        "preempt": lambda body: _json(preemption.handle(body)),
    }
    return verb_app(settings, metrics, verbs, probe_routes(state, metrics), gate=gate)


def verb_app(
    settings: Settings,
    metrics: ExtenderMetrics,
    verbs: Mapping[str, Verb],
    routes: Mapping[str, Route],
    *,
    gate: RequestGate | None = None,
) -> Flask:
    """The HTTP stack around verb handlers: routing, the body limit, the protocol's errors, the
    latency metric, and ``routes`` (the probes) on GET; with ``gate``, each request is held in
    flight there until its reply is written (``extender.gate``). ``create_app`` serves the
    extender's verbs with it; the benchmark serves its floor (a handler that only decodes) with
    it too."""
    app = Flask("vramfit-extender")
    if gate is not None:
        app.wsgi_app = gate.wsgi(app.wsgi_app)  # type: ignore[method-assign,assignment]
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes

    @app.post("/scheduler/<verb>")
    def scheduler_verb(verb: str) -> Response:
        handler = verbs.get(verb)
        if handler is None:
            metrics.bad_requests.labels("404").inc()
            return _json(
                {"error": f"unknown verb {quote(verb)}; expected one of {', '.join(VERBS)}"}, 404
            )
        started = time.perf_counter()
        try:
            return handler(_body(settings.max_body_bytes))
        except WireError as exc:
            metrics.bad_requests.labels(str(exc.status)).inc()
            return _json({"error": f"{verb}: {exc}"}, exc.status)
        except HTTPException:
            raise
        except Exception as exc:
            # A fault of ours: answer the protocol's error, so kube-scheduler retries the pod.
            log.exception("%s failed", verb)
            metrics.decisions.labels(verb, "error", "internal").inc()
            message = f"vramfit extender internal error in {verb}: {type(exc).__name__}: {exc}"
            if verb == "prioritize":
                return _json([])
            if verb == "bind":
                return _json({"Error": message})
            if verb == "preempt":  # no candidate: nothing is evicted on a decision not made
                return _json({"NodeNameToMetaVictims": {}})
            return _json(error_filter_result(None, message))
        finally:
            metrics.observe(verb, started)

    for path, route in routes.items():
        app.add_url_rule(path, path.strip("/"), _page_view(route), methods=["GET"])

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 400
        metrics.bad_requests.labels(str(status)).inc()
        message: Any = exc.description
        if status == 413:
            message = f"request body larger than {settings.max_body_bytes} bytes"
        return _json({"error": message}, status)

    return app
