"""The webhook over HTTP: a GPU pod gets its patch, a pod it cannot size goes through unchanged
with a warning, an Event and a metric; bad bodies get 400 or 413, never 5xx."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry

from admission.app import Mutator, create_app, probe_app
from admission.events import EventSink
from admission.metrics import AdmissionMetrics
from admission.server import load_catalog
from placement.models import Headroom
from tests.admission.jsonpatch import apply
from tests.placement.kserve_pods import LLAMA_8B, isvc_pod, llmisvc_pod

MAX_BODY = 256 * 1024


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, namespace: str, body: dict[str, Any]) -> None:
        self.events.append((namespace, body))


@pytest.fixture
def parts() -> tuple[FlaskClient, AdmissionMetrics, EventSink, Recorder]:
    metrics = AdmissionMetrics(CollectorRegistry())
    recorder = Recorder()
    sink = EventSink(recorder, metrics, max_pending=4)
    app = create_app(Mutator(load_catalog(None), Headroom(), metrics, sink), MAX_BODY)
    return app.test_client(), metrics, sink, recorder


def review(pod: dict[str, Any], *, operation: str = "CREATE", kind: str = "Pod") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "kind": {"group": "", "version": "v1", "kind": kind},
            "operation": operation,
            "namespace": "serving",
            "object": pod,
        },
    }


def _value(metrics: AdmissionMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_gpu_pod_is_patched(
    parts: tuple[FlaskClient, AdmissionMetrics, EventSink, Recorder],
) -> None:
    client, metrics, _, recorder = parts
    pod = isvc_pod(LLAMA_8B, gpus=1)
    answer = client.post("/mutate", json=review(pod))
    assert answer.status_code == 200
    body = answer.get_json()["response"]
    assert body == {**body, "uid": "u-1", "allowed": True, "patchType": "JSONPatch"}
    patched = apply(pod, json.loads(base64.b64decode(body["patch"])))
    annotations = patched["metadata"]["annotations"]
    assert annotations["vramfit.io/model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert annotations["vramfit.io/derived"] == "model,model-size,vram-per-gpu"
    assert "nodeAffinity" in patched["spec"]["affinity"]
    assert _value(metrics, "vramfit_admission_reviews_total", outcome="mutated") == 1
    assert recorder.events == []


def test_unknown_model_goes_through_unchanged_and_says_so(
    parts: tuple[FlaskClient, AdmissionMetrics, EventSink, Recorder],
) -> None:
    client, metrics, sink, recorder = parts
    pod = llmisvc_pod("s3://bucket/in-house-model", script="vllm serve /mnt/models")
    for _ in range(3):  # a burst from one ReplicaSet: one Event
        body = client.post("/mutate", json=review(pod)).get_json()["response"]
        assert body["allowed"] is True and "patch" not in body
        assert "not in the model catalog" in body["warnings"][0]
    assert sink.drain() and not sink.drain()
    ((namespace, event),) = recorder.events
    assert namespace == "serving"
    assert event["involvedObject"]["kind"] == "ReplicaSet"
    assert event["reason"] == "VramfitNotDerived" and event["type"] == "Warning"
    assert "LLMInferenceService 'llama'" in event["message"]
    assert _value(metrics, "vramfit_admission_not_derived_total", reason="unknown-model") == 3
    assert _value(metrics, "vramfit_admission_events_total", result="repeated") == 2
    assert _value(metrics, "vramfit_admission_events_total", result="sent") == 1


@pytest.mark.parametrize(
    ("operation", "kind"),
    [pytest.param("UPDATE", "Pod", id="update"), pytest.param("CREATE", "Deployment", id="other")],
)
def test_other_requests_are_allowed_untouched(
    parts: tuple[FlaskClient, AdmissionMetrics, EventSink, Recorder], operation: str, kind: str
) -> None:
    client, metrics, _, _ = parts
    body = client.post(
        "/mutate", json=review(isvc_pod(), operation=operation, kind=kind)
    ).get_json()
    assert body["response"] == {"uid": "u-1", "allowed": True}
    assert _value(metrics, "vramfit_admission_reviews_total", outcome="skipped") == 1


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        pytest.param(b"not json", 400, "not JSON", id="not-json"),
        pytest.param(b'{"kind":"Pod"}', 400, "expected apiVersion", id="not-a-review"),
        pytest.param(b"x" * (MAX_BODY + 1), 413, "larger than", id="too-large"),
    ],
)
def test_bad_bodies_get_4xx_with_a_message(
    parts: tuple[FlaskClient, AdmissionMetrics, EventSink, Recorder],
    data: bytes,
    status: int,
    message: str,
) -> None:
    client, metrics, _, _ = parts
    answer = client.post("/mutate", data=data, content_type="application/json")
    assert answer.status_code == status
    assert message in answer.get_json()["error"]
    assert _value(metrics, "vramfit_admission_bad_requests_total", status=str(status)) == 1


def test_unknown_path_and_method(
    parts: tuple[FlaskClient, AdmissionMetrics, EventSink, Recorder],
) -> None:
    client, _, _, _ = parts
    assert client.post("/scheduler/filter", json={}).status_code == 404
    assert client.get("/mutate").status_code == 405


def test_a_full_event_queue_drops_and_counts(
    parts: tuple[FlaskClient, AdmissionMetrics, EventSink, Recorder],
) -> None:
    client, metrics, _, _ = parts
    for i in range(6):
        pod = isvc_pod("s3://bucket/unknown")
        pod["metadata"]["generateName"] = f"p{i}-"
        client.post("/mutate", json=review(pod))
    assert _value(metrics, "vramfit_admission_events_total", result="dropped") == 2


@pytest.mark.parametrize(
    ("path", "ready", "status"),
    [
        pytest.param("/healthz", False, "200 OK", id="healthz"),
        pytest.param("/readyz", True, "200 OK", id="ready"),
        pytest.param("/readyz", False, "503 Service Unavailable", id="not-ready"),
        pytest.param("/metrics", False, "200 OK", id="metrics"),
        pytest.param("/mutate", True, "404 Not Found", id="no-reviews-here"),
    ],
)
def test_probe_listener(path: str, ready: bool, status: str) -> None:
    metrics = AdmissionMetrics(CollectorRegistry())
    seen: list[str] = []
    app = probe_app(metrics, lambda: ready)
    body = b"".join(app({"PATH_INFO": path}, lambda s, _h: seen.append(s)))
    assert seen == [status]
    if path == "/metrics":
        assert b"vramfit_admission_reviews_total" in body
