"""The benchmark's synthetic fleet, fed as the extender's watches feed it, and the two servers
a latency run talks to: the extender over that fleet, and the floor behind the same stack.

The fleet mixes 3/4 H100 80 GB nodes (NVLink all) and 1/4 A100 40 GB (NVLink pairs), with GPUs
held, partly used or unhealthy at random (seeded). ``Churn`` applies the agents' watch events
at their real rate. ``pod_body`` and ``refused_body`` are the requests kube-scheduler sends.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from flask import Flask, Response
from prometheus_client import CollectorRegistry

from extender.app import create_app, verb_app
from extender.bind import Binder
from extender.config import Settings
from extender.gate import RequestGate
from extender.kubeapi import KubeError
from extender.metrics import ExtenderMetrics
from extender.objects import read_lease, read_leases, read_report, read_reports
from extender.server import ExtenderServer
from extender.state import LEASES, PODS, REPORTS, ClusterState
from extender.wire import decode_extender_args, encode, encode_priorities, filter_result
from placement.model import GIB, CachedModel, GpuState, NodeState
from placement.nodegpustate import LEASE_PREFIX, encode_status, format_time
from serving import Page

MODELS = ("meta-llama/Llama-3.1-70B-Instruct", "meta-llama/Llama-3.1-8B-Instruct")


# ----- a synthetic fleet, fed as the watches feed it ----------------------------------------


def node_name(i: int) -> str:
    """The name of the synthetic fleet's node ``i``: every fourth is an A100 node."""
    return f"{'h100' if i % 4 != 3 else 'a100'}-{i:05d}"


def synthetic_node(i: int, rng: random.Random, now: float) -> NodeState:
    """One of a mixed fleet: 3/4 H100 80 GB (NVLink all), 1/4 A100 40 GB (NVLink pairs)."""
    h100 = i % 4 != 3
    name = node_name(i)
    gib = 80 if h100 else 40
    uuids = [f"GPU-{name}-{g}" for g in range(8)]
    groups = [list(range(8))] if h100 else [[0, 1], [2, 3], [4, 5], [6, 7]]
    peers = {g: frozenset(uuids[p] for p in grp if p != g) for grp in groups for g in grp}
    gpus = []
    for g in range(8):
        held = rng.random() < 0.3
        free = 0 if held else int(gib * GIB * rng.choice((1.0, 1.0, 0.95, 0.5)))
        gpus.append(
            GpuState(
                uuid=uuids[g],
                index=g,
                product="NVIDIA-H100-80GB-HBM3" if h100 else "NVIDIA-A100-SXM4-40GB",
                total_bytes=gib * GIB,
                free_bytes=free,
                used_bytes=gib * GIB - free,
                healthy=rng.random() > 0.01,
                nvlink_peers=peers[g],
                holder_pod_uid=f"running-{name}-{g}" if held else None,
            )
        )
    cached = tuple(CachedModel(m, 140 * GIB) for m in MODELS if rng.random() < 0.1)
    return NodeState(
        name=name, gpus=tuple(gpus), observed_at=now, lease_renewed_at=None, cached_models=cached
    )


def synthetic_state(nodes: int, now: float, seed: int = 7) -> tuple[ClusterState, list[str]]:
    rng = random.Random(seed)
    fleet = [synthetic_node(i, rng, now) for i in range(nodes)]
    state = ClusterState(assumed_ttl_s=30.0)
    state.replace_leases(
        read_leases(
            {
                "metadata": {"name": f"{LEASE_PREFIX}{n.name}"},
                "spec": {"renewTime": format_time(now), "leaseDurationSeconds": 3600},
            }
            for n in fleet
        )
    )
    state.replace_reports(
        read_reports(
            {"metadata": {"name": n.name}, "status": dict(encode_status(n))} for n in fleet
        )
    )
    state.replace_pods([], listed_at=now)
    for resource in (REPORTS, LEASES, PODS):
        state.mark_synced(resource)
    return state, [n.name for n in fleet]


class _NoBindAPI:
    """The latency benchmark never binds; a bind would fail loudly, not pretend."""

    def _refuse(self, *_args: object, **_kw: object) -> Any:
        raise KubeError("benchmark", 0, "no API server in the latency benchmark")

    get_pod = patch_pod = bind_pod = _refuse


REPORTS_PER_NODE_S = 1 / 60
"""Status writes per node per second of an agent at steady state (one per maximum age)."""
LEASES_PER_NODE_S = 1 / 10
"""Lease renewals per node per second (every 10 s)."""


class Churn:
    """The watch events a fleet of agents makes, at their real rate, applied as the extender's
    watches apply them: decoded from JSON, read into reports and Leases, then ``apply_report`` /
    ``apply_lease`` under the state's lock, beside the requests being measured."""

    def __init__(
        self, state: ClusterState, nodes: int, seed: int = 11, gate: RequestGate | None = None
    ) -> None:
        self.state = state
        self.gate = gate  # the extender's watches wait at it for the requests in flight
        self.nodes = nodes
        rng = random.Random(seed)
        now = time.time()
        # New reports of random nodes (their GPUs and holders change); stamped fresh on use.
        self.reports = [
            orjson.dumps({"metadata": {"name": n.name}, "status": dict(encode_status(n))})
            for n in (synthetic_node(rng.randrange(nodes), rng, now) for _ in range(500))
        ]
        self.names = [node_name(i) for i in range(nodes)]
        self.applied = {"reports": 0, "leases": 0}

    def _wait_turn(self) -> None:
        """As ``extender.watch.Watcher`` waits before it decodes each event."""
        if self.gate is not None:
            self.gate.wait_turn()

    def run(self, stop: threading.Event) -> None:
        started = time.monotonic()
        reports_per_s = self.nodes * REPORTS_PER_NODE_S
        leases_per_s = self.nodes * LEASES_PER_NODE_S
        while not stop.wait(0.01):
            elapsed = time.monotonic() - started
            while self.applied["reports"] < elapsed * reports_per_s:
                self._wait_turn()
                raw = orjson.loads(self.reports[self.applied["reports"] % len(self.reports)])
                raw["status"]["observedAt"] = format_time(time.time())
                report = read_report(raw)
                assert report is not None
                self.state.apply_report("MODIFIED", report)
                self.applied["reports"] += 1
            while self.applied["leases"] < elapsed * leases_per_s:
                self._wait_turn()
                name = self.names[self.applied["leases"] % self.nodes]
                event = orjson.dumps(
                    {
                        "metadata": {"name": f"{LEASE_PREFIX}{name}"},
                        "spec": {
                            "renewTime": format_time(time.time()),
                            "leaseDurationSeconds": 3600,
                        },
                    }
                )
                lease = read_lease(orjson.loads(event))
                assert lease is not None
                self.state.apply_lease("MODIFIED", lease)
                self.applied["leases"] += 1


def synthetic_app(nodes: int, *, churn: bool = False) -> Callable[[], Flask]:
    """The extender's app over a synthetic fleet of ``nodes``, built as the server builds it;
    with ``churn``, a thread applies the agents' watch events at their real rate."""

    def factory() -> Flask:
        settings = Settings()
        state, _ = synthetic_state(nodes, time.time())
        metrics = ExtenderMetrics(CollectorRegistry())
        gate = RequestGate()  # as ``extender.server.build`` makes it for its watches
        if churn:
            stop = threading.Event()  # the worker's daemon thread ends with the process
            events = Churn(state, nodes, gate=gate)
            threading.Thread(target=events.run, args=(stop,), daemon=True).start()
        binder = Binder(state, _NoBindAPI(), settings)
        return create_app(settings, state, binder, metrics, gate=gate)

    return factory


def floor_app() -> Flask:
    """The floor: the same HTTP stack (``verb_app``: routing, body limit, errors, metrics)
    around a handler that decodes the same request bytes as the extender (``wire``) and answers
    the first node, deciding nothing. What the extender takes beyond it is its own work."""
    settings = Settings()
    metrics = ExtenderMetrics(CollectorRegistry())

    def filter_verb(body: bytes) -> Response:
        args = decode_extender_args(body)
        reply = encode(filter_result(args, args.node_names[:1], {}, {}))
        return Response(reply, status=200, mimetype="application/json")

    def prioritize_verb(body: bytes) -> Response:
        args = decode_extender_args(body)
        reply = encode_priorities(args.node_names[:1], [0])
        return Response(reply, status=200, mimetype="application/json")

    def ready() -> Page:
        return Page(200, b"ok\n")

    verbs = {"filter": filter_verb, "prioritize": prioritize_verb}
    return verb_app(settings, metrics, verbs, {"/readyz": ready})


def serve(nodes: int, port: int, *, churn: bool = False, floor: bool = False) -> None:
    """Run the real server stack over a synthetic fleet, or the floor behind the same stack
    (a child process of the benchmark)."""
    settings = Settings(port=port, threads=4, log_level="warning")
    ExtenderServer(settings, floor_app if floor else synthetic_app(nodes, churn=churn)).run()


def pod_body(i: int, names: list[str]) -> dict[str, Any]:
    shapes = (
        (2, "70Gi", "required", MODELS[0]),
        (1, "18Gi", "preferred", MODELS[1]),
        (4, "35Gi", "preferred", ""),
    )
    gpus, vram, nvlink, model = shapes[i % len(shapes)]
    ann = {"vramfit.io/vram-per-gpu": vram, "vramfit.io/nvlink": nvlink}
    if model:
        ann["vramfit.io/model"] = model
    pod = {
        "metadata": {
            "name": f"bench-{i}",
            "namespace": "bench",
            "uid": f"bench-uid-{i:08d}",
            "resourceVersion": "1",
            "annotations": ann,
        },
        "spec": {
            "schedulerName": "vramfit",
            "containers": [
                {
                    "name": "server",
                    "image": "kserve/huggingfaceserver:v0.15.0-gpu",
                    "resources": {
                        "limits": {"nvidia.com/gpu": str(gpus)},
                        "requests": {"nvidia.com/gpu": str(gpus)},
                    },
                }
            ],
        },
        "status": {"phase": "Pending"},
    }
    return {"Pod": pod, "Nodes": None, "NodeNames": names}


def refused_body(i: int, names: list[str]) -> dict[str, Any]:
    """A pod no node of the synthetic fleet can take (8 GPUs of 79 GiB each, free now): the
    filter words a reason for every node, as it does for the pods a burst leaves over."""
    body = pod_body(i, names)
    pod = body["Pod"]
    pod["metadata"]["uid"] = f"refused-uid-{i:08d}"
    pod["metadata"]["annotations"]["vramfit.io/vram-per-gpu"] = "79Gi"
    pod["spec"]["containers"][0]["resources"] = {
        "limits": {"nvidia.com/gpu": "8"},
        "requests": {"nvidia.com/gpu": "8"},
    }
    return body
