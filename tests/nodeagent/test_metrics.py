"""/metrics, /healthz and /readyz over real HTTP; the exposition passes ``promtool check metrics``."""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from types import ModuleType

import pytest

from nodeagent.agent import Agent, build_agent, readiness
from nodeagent.config import argument_parser, settings_from_args
from nodeagent.pods import trim_pod
from nodeagent.publish import PublishStats
from nodeagent.server import AgentServer
from tests.nodeagent.test_nvml import LIBRARY_NOT_FOUND, FakeNvml


def agent(*argv: str, nvml_module: ModuleType | None = None) -> Agent:
    settings = settings_from_args(argument_parser().parse_args(["--listen", "127.0.0.1:0", *argv]))
    return build_agent(settings, client=None, nvml_module=nvml_module)


@pytest.fixture
def served() -> Iterator[tuple[Agent, str]]:
    a = agent("--backend", "simulated", "--node-name", "h100-0")
    server = AgentServer("127.0.0.1", 0, a.registry, live=a.live, ready=a.ready)
    server.start()
    try:
        yield a, f"http://127.0.0.1:{server.address[1]}"
    finally:
        server.stop()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_pass_promtool(served: tuple[Agent, str]) -> None:
    a, base = served
    # A pod holds two GPUs, so holder and per-pod series are present too.
    kubelet = a.sampler.backend.kubelet  # type: ignore[attr-defined]
    pod = trim_pod(
        {
            "metadata": {"uid": "uid-1", "name": "llama", "namespace": "ml",
                         "annotations": {"vramfit.io/model-size": "40Gi"}},
            "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "2"}}}]},
        }
    )  # fmt: skip
    assert pod is not None
    kubelet._pods = lambda: {"uid-1": pod}
    kubelet.tick(0.0)
    code, body = get(f"{base}/metrics")
    assert code == 200
    assert 'vramfit_gpu_memory_total_bytes{gpu="0",node="h100-0"' in body
    # Which two the kubelet gave is the device plugin's (random) choice.
    assert (
        len(re.findall(r'vramfit_gpu_holder_info\{gpu="\d",node="h100-0",pod_uid="uid-1"', body))
        == 2
    )
    assert "process_resident_memory_bytes" in body
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is required (make promtool)"
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", (
        result.stdout + result.stderr
    )


def test_every_scrape_reads_fresh(served: tuple[Agent, str]) -> None:
    a, base = served
    before = a.sampler.last
    get(f"{base}/metrics")
    after = a.sampler.last
    get(f"{base}/metrics")
    assert after is not None and after is not before and a.sampler.last is not after


def test_probes(served: tuple[Agent, str]) -> None:
    _, base = served
    assert get(f"{base}/healthz") == (200, "starting\n")
    assert get(f"{base}/readyz") == (200, "ok\n")
    assert get(f"{base}/nothing")[0] == 404


def test_nvml_missing_means_not_ready_and_backend_down() -> None:
    """NVML failing at start (no driver library), whatever machine the test runs on."""
    fake = FakeNvml([])
    fake.init_error = LIBRARY_NOT_FOUND
    a = agent(
        "--backend", "nvml", "--node-name", "gpu-1", "--pod-resources-socket", "",
        nvml_module=fake.module,
    )  # fmt: skip
    server = AgentServer("127.0.0.1", 0, a.registry, live=a.live, ready=a.ready)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.address[1]}"
        assert get(f"{base}/readyz") == (503, "NVML not initialised yet\n")
        sample = a.poll()
        assert sample.status["nvmlAvailable"] is False and sample.status["gpus"] == []
        assert sample.status.get("error", "").startswith("NVML unavailable:")
        code, why = get(f"{base}/readyz")
        assert code == 503 and why.startswith("NVML unavailable:")
        code, body = get(f"{base}/metrics")
        assert code == 200 and 'vramfit_agent_backend_up{node="gpu-1"} 0.0' in body
    finally:
        server.stop()


def stats(written: float | None, renewed: float | None, error: str = "") -> PublishStats:
    return PublishStats(last_status_write_at=written, last_lease_renew_at=renewed, last_error=error)


READINESS = {
    # name: (backend ready, backend error, stats, now) -> (ready, reason starts with)
    "backend-down": ((False, "NVML unavailable: x", stats(1.0, 1.0), 2.0), (False, "NVML unavailable")),
    "backend-down-no-reason": ((False, "", None, 2.0), (False, "GPU backend not ready")),
    "no-publisher": ((True, "", None, 2.0), (True, "ok")),
    "never-written": ((True, "", stats(None, None, "connection refused"), 2.0),
                      (False, "not published yet: connection refused")),
    "fresh": ((True, "", stats(100.0, 100.0), 139.0), (True, "ok")),
    "lease-exactly-at-duration": ((True, "", stats(100.0, 100.0), 140.0), (True, "ok")),
    "lease-lapsed-in-an-outage": ((True, "", stats(100.0, 100.0, "503 Service Unavailable"), 141.0),
                                  (False, "agent Lease not renewed for 41s (duration 40s)")),
    "lease-never-renewed": ((True, "", stats(100.0, None), 101.0), (False, "agent Lease never renewed")),
}  # fmt: skip


@pytest.mark.parametrize("case", list(READINESS), ids=list(READINESS))
def test_readiness(case: str) -> None:
    (backend_ready, backend_error, st, now), (ready, reason) = READINESS[case]
    got_ready, why = readiness(backend_ready, backend_error, st, 40.0, now)
    assert got_ready is ready
    assert why.startswith(reason), why
    if case == "lease-lapsed-in-an-outage":
        assert why.endswith("503 Service Unavailable")


@pytest.mark.parametrize(
    ("flags", "published"),
    [((), False), (("--metrics-gpu-uuids",), True)],
    ids=["by-index-by-default", "uuids-when-asked"],
)
def test_gpu_uuids_are_published_only_when_asked(flags: tuple[str, ...], published: bool) -> None:
    """Regression: GPU UUIDs (what a forged reservation needs) were on the unauthenticated
    /metrics of every agent; GPUs are labelled by index unless the operator asks."""
    a = agent("--backend", "simulated", "--node-name", "h100-0", *flags)
    server = AgentServer("127.0.0.1", 0, a.registry, live=a.live, ready=a.ready)
    server.start()
    try:
        code, body = get(f"http://127.0.0.1:{server.address[1]}/metrics")
    finally:
        server.stop()
    assert code == 200
    uuids = [g.uuid for g in a.sampler.sample(0.0).reading.gpus]
    assert uuids
    assert all((u in body) is published for u in uuids)
    assert ('uuid="' in body) is published
    assert 'vramfit_gpu_memory_total_bytes{gpu="0",node="h100-0"' in body
