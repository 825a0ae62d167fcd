"""What each backend of the agent loads: the modules that would cost it most of its memory
(the kubernetes API client, the protobuf runtime) stay out, after the backend has done its
work (quantities parsed, the pod-resources API asked). Each case runs in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SIMULATED = """
    import nodeagent.cli
    from nodeagent.simulated.backend import SimulatedBackend
    from nodeagent.simulated.kubelet import SimulatedKubelet
    from nodeagent.simulated.spec import default_cluster
    from placement.quantity import parse_bytes
    assert default_cluster() and parse_bytes("80Gi", "here") == 80 * 2**30
"""

NVML = """
    from pathlib import Path
    import nodeagent.cli
    from nodeagent.holders import PodResourcesHolders
    from nodeagent.podresources.client import PodResourcesClient, PodResourcesError
    client = PodResourcesClient(Path("/nonexistent/kubelet.sock"), timeout_s=0.5)
    try:
        client.list("nvidia.com/")
    except PodResourcesError:
        pass
    client.close()
"""

# name: (what the process does, modules that must not be loaded)
CASES = {
    "simulated-backend-without-the-kubernetes-client": (
        SIMULATED,
        ("kubernetes", "urllib3", "google.protobuf", "grpc"),
    ),
    "nvml-backend-without-the-protobuf-runtime": (
        NVML,
        ("kubernetes", "google.protobuf", "nodeagent.podresources.api_pb2"),
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_backend_leaves_out_what_it_does_not_need(case: str) -> None:
    body, forbidden = CASES[case]
    code = textwrap.dedent(body) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(out.stdout.splitlines()[-1]))
    assert sorted(m for m in forbidden if m in loaded) == []
