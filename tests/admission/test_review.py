"""AdmissionReview decoding (every malformed body named) and the JSONPatch a derivation becomes."""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
import pytest

from admission.review import ReviewError, decode_review, patch_ops, response
from placement.affinity import REQUIRED
from placement.derive import Derivation, Outcome
from tests.admission.jsonpatch import apply

REQ = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "k", "operator": "Exists"}]}]}


def review(**request: Any) -> bytes:
    body = {"uid": "u-1", "kind": {"kind": "Pod"}, "operation": "CREATE", "object": {}, **request}
    return json.dumps(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": body}
    ).encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"{", "not JSON", id="not-json"),
        pytest.param(b"[]", "expected an AdmissionReview object", id="array"),
        pytest.param(
            b'{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}',
            "expected apiVersion admission.k8s.io/v1",
            id="old-version",
        ),
        pytest.param(
            b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}',
            "request: expected an object",
            id="no-request",
        ),
        pytest.param(review(uid=""), "request.uid", id="empty-uid"),
        pytest.param(review(kind="Pod"), "request.kind", id="kind-not-gvk"),
        pytest.param(review(object=[1]), "request.object", id="object-not-object"),
        pytest.param(review(namespace=7), "request.namespace", id="namespace-not-string"),
    ],
)
def test_malformed_reviews_are_named(body: bytes, message: str) -> None:
    with pytest.raises(ReviewError, match=message.replace(".", r"\.")):
        decode_review(body)


def test_a_review_decodes() -> None:
    r = decode_review(review(namespace="serving", dryRun=True, object={"metadata": {}}))
    assert (r.uid, r.kind, r.operation, r.namespace, r.dry_run) == (
        "u-1",
        "Pod",
        "CREATE",
        "serving",
        True,
    )
    assert r.is_pod_create


POD: dict[str, Any] = {"metadata": {"name": "p"}, "spec": {"containers": []}}


@pytest.mark.parametrize(
    ("pod", "expected_affinity"),
    [
        pytest.param(POD, {"nodeAffinity": {REQUIRED: REQ}}, id="no-affinity"),
        pytest.param(
            {**POD, "spec": {"affinity": None}}, {"nodeAffinity": {REQUIRED: REQ}}, id="null"
        ),
        pytest.param(
            {**POD, "spec": {"affinity": {"podAffinity": {"x": 1}}}},
            {"podAffinity": {"x": 1}, "nodeAffinity": {REQUIRED: REQ}},
            id="pod-affinity-kept",
        ),
        pytest.param(
            {
                **POD,
                "spec": {
                    "affinity": {
                        "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [1]}
                    }
                },
            },
            {
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [1],
                    REQUIRED: REQ,
                }
            },
            id="preferences-kept",
        ),
    ],
)
def test_patch_applies_at_the_deepest_existing_level(
    pod: dict[str, Any], expected_affinity: dict[str, Any]
) -> None:
    d = Derivation(Outcome.MUTATED, annotations={"vramfit.io/model": "m"}, required=REQ)
    patched = apply(pod, patch_ops(pod, d))
    assert patched["spec"]["affinity"] == expected_affinity
    assert patched["metadata"]["annotations"] == {"vramfit.io/model": "m"}


def test_annotation_keys_are_escaped_and_existing_ones_kept() -> None:
    pod = {"metadata": {"annotations": {"a": "1"}}, "spec": {}}
    d = Derivation(Outcome.MUTATED, annotations={"vramfit.io/x~y": "v"})
    ops = patch_ops(pod, d)
    assert ops == [{"op": "add", "path": "/metadata/annotations/vramfit.io~1x~0y", "value": "v"}]
    assert apply(pod, ops)["metadata"]["annotations"] == {"a": "1", "vramfit.io/x~y": "v"}


def test_response_allows_and_carries_the_patch() -> None:
    ops = [{"op": "add", "path": "/metadata/annotations", "value": {}}]
    answer = orjson.loads(response("u-1", ops, ["w" * 1000]))
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["response"]["allowed"] is True
    assert answer["response"]["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(answer["response"]["patch"])) == ops
    assert len(answer["response"]["warnings"][0]) == 256
    assert "patch" not in orjson.loads(response("u-1", []))["response"]
