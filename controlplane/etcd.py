"""The control plane's etcd, spoken to directly: its health and the compaction of its history.

The harness waits for etcd's ``/health`` before it starts kube-apiserver, and compacts etcd when
it restarts kube-apiserver, so that no watch can resume from a resourceVersion it saw before
(410 Gone), as after a long outage of a real cluster. Both go through etcd's JSON gateway.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from typing import Any


def etcd_call(url: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """POST to etcd's JSON gateway (``/v3/...``); returns its answer."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def etcd_healthy(body: bytes) -> bool:
    """Pure: whether a ``/health`` answer says healthy."""
    return b'"health":"true"' in body.replace(b" ", b"")


def compact(port: int) -> int:
    """Compact the history of the etcd on ``port`` up to its current revision; returns that
    revision."""
    base = f"http://127.0.0.1:{port}/v3/kv"
    header = etcd_call(f"{base}/range", {"key": "AA=="})["header"]
    revision = int(header["revision"])
    etcd_call(f"{base}/compaction", {"revision": str(revision), "physical": True})
    return revision
