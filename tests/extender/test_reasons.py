"""A filter reply's reasons are bounded: no text a pod author or a node's report writes is
repeated per node at its own length, and every reason is one line."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from extender.objects import read_report
from placement.demand import A_GPU_PRODUCT, A_NVLINK, A_VRAM_PER_GPU
from placement.fields import MAX_REASON
from tests.extender.conftest import build_extender, gpu_node, pod_object, report_object
from tests.extender.conftest import synced_state as state_of

NODES = 300
HUGE = 64 * 1024
# "name":"reason", in JSON: a character of a reason is at most 6 bytes there (\u0001).
PER_NODE = len(f"n{NODES - 1}") + 6 * MAX_REASON + 8


def hostile_pod(annotations: dict[str, str], gpus: int = 1) -> dict[str, Any]:
    return pod_object("p", uid="u-1", gpus=gpus, annotations=annotations)


CASES = {
    "invalid-vram": {A_VRAM_PER_GPU: "x" * HUGE},
    "invalid-nvlink": {A_NVLINK: "maybe\n" * (HUGE // 6)},
    "long-valid-product-list": {A_GPU_PRODUCT: ",".join(f"P{i:05d}" for i in range(HUGE // 7))},
    "product-names-with-newlines": {A_GPU_PRODUCT: "A\nB\r\nC" + "D" * HUGE},
}


@pytest.mark.parametrize("annotations", CASES.values(), ids=CASES.keys())
def test_one_annotation_never_inflates_the_reply(annotations: dict[str, str]) -> None:
    """Regression: an invalid value, or a long valid vramfit.io/gpu-product list, was quoted in
    every node's reason (64 KiB gave a 19.7 MB reply at 300 nodes)."""
    names = [f"n{i}" for i in range(NODES)]
    ext = build_extender(state_of([gpu_node(n) for n in names]), max_body_bytes=4 * 1024**2)
    body = orjson.dumps({"Pod": hostile_pod(annotations), "NodeNames": names})
    resp = ext.client.post("/scheduler/filter", data=body)
    assert resp.status_code == 200
    answer = resp.get_json()
    reasons = answer["FailedNodes"] | answer["FailedAndUnresolvableNodes"]
    assert len(reasons) == NODES
    for reason in reasons.values():
        assert len(reason) <= MAX_REASON and "\n" not in reason and "\r" not in reason
    assert len(resp.data) <= NODES * PER_NODE + 200


def test_a_report_that_fails_to_decode_is_one_line_per_node() -> None:
    """NodeGPUState decode errors list every problem, a line each: a reason is one line."""
    bad = report_object(gpu_node("n0"))
    for gpu in bad["status"]["gpus"]:
        gpu["index"] = "x" * HUGE
        gpu["memory"] = "nope"
    report = read_report(bad)
    assert report is not None and report.problem
    assert "\n" not in report.problem and len(report.problem) <= MAX_REASON


def test_error_messages_quote_what_the_caller_sent_short() -> None:
    """A 400 or 404 names the offending key or verb, cut short, never at its own length."""
    ext = build_extender(state_of([gpu_node("n0")]), max_body_bytes=4 * 1024**2)
    key = "P" + "o" * HUGE
    body = b'{"%s": {}, "%s": {}}' % (key.encode(), key.lower().encode())
    resp = ext.client.post("/scheduler/filter", data=body)
    assert resp.status_code == 400 and len(resp.data) < 1024
    resp = ext.client.post("/scheduler/" + "v" * 4000, data=b"{}")
    assert resp.status_code == 404 and len(resp.data) < 1024
