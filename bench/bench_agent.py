"""Benchmark of vramfit's node agent, on the simulated backend and the real API server.

1. CPU time per poll per GPU: one poll (read the 8-GPU simulated node with loads in flight,
   attribute, build and encode the state, decide whether to write) repeated, measured with the
   process CPU clock, in three rounds. Target: under 1% of one core at a 1 s poll with 8 GPUs.
2. API writes per node per hour, steady and changing: the real ``Publisher`` driven through
   one hour of simulated time at a 1 s poll against a real kube-apiserver, counting status
   writes and Lease renewals. Steady: eight loaded pods, nothing changes. Changing: every five
   minutes a 70B model (2 GPUs, 140 GiB from remote storage at 500 MiB/s) starts loading and
   the oldest pod leaves. Target: at most one status write a minute per node at steady state.
3. Peak RSS of the real ``vramfit-agent`` process (VmHWM) after running against the API server:
   the simulated node with its kubelet stand-in; the NVML agent as the DaemonSet runs it,
   reading eight H100 GPUs through the real ``pynvml`` module with the driver's library stood
   in (``bench.nvml_standin``: on a GPU node the agent also holds ``libnvidia-ml.so``'s pages);
   and the NVML agent where NVML is unavailable (it publishes "NVML unavailable"); three
   rounds each. Target: under 50 MB, every round.

Each CPU and RSS figure is the median of its rounds with the spread, beside the calibration
loop (``bench.calibration``) timed in the same run. Writes ``bench/results/agent.json``, prints
a table, and fails when a target is missed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from bench.calibration import Calibration, line, spread
from controlplane.binaries import locate
from controlplane.harness import ControlPlane
from controlplane.manifests import load_documents, server_side_apply
from nodeagent.change import ChangeSettings, write_reason
from nodeagent.kube import KubeClient, load_kubeconfig
from nodeagent.pods import PodInfo, trim_pod
from nodeagent.publish import Publisher, PublishSettings
from nodeagent.sampler import Sampler
from nodeagent.simulated.backend import SimulatedBackend
from nodeagent.simulated.kubelet import SimulatedKubelet
from nodeagent.simulated.spec import NodeSpec, parse_spec
from placement.model import CachedModel

RESULTS = Path(__file__).parent / "results" / "agent.json"
ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
GPUS = 8
POLLS_FOR_CPU = 3000
HOUR_S = 3600
RSS_RUN_S = 20.0
RSS_TARGET_MB = 50.0
ROUNDS = 3


def node_spec(name: str) -> NodeSpec:
    return parse_spec(
        {
            "nodes": [
                {
                    "name": name,
                    "product": "NVIDIA-H100-80GB-HBM3",
                    "gpus": GPUS,
                    "memoryPerGpu": "80Gi",
                    "nvlink": "all",
                    "cachedModels": [{"id": "meta-llama/Llama-3.1-70B-Instruct", "size": "141Gi"}],
                    "localDiskBandwidth": "2Gi",
                    "remoteBandwidth": "500Mi",
                }
            ]
        }
    )[0]


def model_pod(uid: str, node: str, gpus: int, size: str, *, ready: bool) -> PodInfo:
    info = trim_pod(
        {
            "metadata": {
                "uid": uid,
                "name": uid,
                "namespace": "bench",
                "annotations": {"vramfit.io/model-size": size, "vramfit.io/model": f"org/{uid}"},
            },
            "spec": {
                "nodeName": node,
                "containers": [
                    {"name": "server", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}
                ],
            },
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            },
        }
    )
    assert info is not None
    return info


def sampler_for(spec: NodeSpec, pods: dict[str, PodInfo]) -> tuple[Sampler, SimulatedKubelet]:
    kubelet = SimulatedKubelet(spec, lambda: pods, None)
    cached = tuple(CachedModel(m.model_id, m.bytes) for m in spec.cached_models)
    sampler = Sampler(
        spec.name,
        SimulatedBackend(spec, kubelet),
        cached_models=lambda _now: cached,
        local_disk_bytes_per_s=spec.local_disk_bandwidth,
        remote_bytes_per_s=spec.remote_bandwidth,
    )
    return sampler, kubelet


def cpu_per_poll() -> dict[str, float]:
    """Process CPU seconds per poll, with four loads in flight on the node."""
    spec = node_spec("bench-cpu")
    pods = {f"p{i}": model_pod(f"p{i}", spec.name, 2, "1400Gi", ready=False) for i in range(4)}
    sampler, kubelet = sampler_for(spec, pods)
    kubelet.tick(0.0)
    change = ChangeSettings()
    written, written_at = None, 0.0
    for t in range(50):  # warm up
        sampler.sample(float(t))
    start = time.process_time()
    for i in range(POLLS_FOR_CPU):
        now = 100.0 + i
        s = sampler.sample(now)
        if write_reason(written, written_at, s.state, now, change) is not None:
            written, written_at = s.state, now
    cpu = (time.process_time() - start) / POLLS_FOR_CPU
    return {
        "cpu_seconds_per_poll": cpu,
        "cpu_seconds_per_poll_per_gpu": cpu / GPUS,
        "core_percent_at_1s_poll": 100.0 * cpu / 1.0,
    }


def one_hour(client: KubeClient, node: str, changing: bool) -> dict[str, Any]:
    """One hour of simulated time at a 1 s poll through the real Publisher; counts its writes."""
    spec = node_spec(node)
    pods: dict[str, PodInfo] = {
        f"{node}-m{i}": model_pod(f"{node}-m{i}", node, 1, "60Gi", ready=True) for i in range(GPUS)
    }
    sampler, kubelet = sampler_for(spec, pods)
    clock = [1_800_000_000.0]
    publisher = Publisher(client, node, settings=PublishSettings(), clock=lambda: clock[0])
    start = clock[0]
    arrivals = 0
    for second in range(HOUR_S):
        now = start + second
        clock[0] = now
        if changing and second % 300 == 0:
            # The oldest two single-GPU pods leave; a 2-GPU 70B model starts a remote load.
            for uid in sorted(pods)[:2]:
                del pods[uid]
            uid = f"{node}-load{arrivals}"
            pods[uid] = model_pod(uid, node, 2, "140Gi", ready=False)
            arrivals += 1
        kubelet.tick(now)
        s = sampler.sample(now)
        publisher.offer(s.state, s.status)
        publisher.step(now)
        if not publisher.stats.api_ok and publisher.stats.last_error:
            raise RuntimeError(f"publishing failed: {publisher.stats.last_error}")
    st = publisher.stats
    return {
        "status_writes_per_hour": sum(st.status_writes.values()),
        "status_writes_by_reason": dict(st.status_writes),
        "lease_renewals_per_hour": st.lease_renewals,
        "model_arrivals": arrivals,
    }


def peak_rss_mb(
    plane: ControlPlane, args: list[str], node: str, agent: list[str] | None = None
) -> float:
    """VmHWM of a real ``vramfit-agent`` process (``agent``, else the installed command) after
    ``RSS_RUN_S`` seconds of running."""
    command = agent or [str(Path(sys.executable).parent / "vramfit-agent")]
    cmd = [*command, "--node-name", node, "--kubeconfig", str(plane.kubeconfig)]
    cmd += ["--listen", "127.0.0.1:0", "--log-level", "ERROR", *args]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(RSS_RUN_S)
        if proc.poll() is not None:
            raise RuntimeError(
                f"agent exited early ({proc.returncode}): {proc.stderr.read() if proc.stderr else ''}"
            )
        status = Path(f"/proc/{proc.pid}/status").read_text()
        hwm_kb = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")
        )
        return hwm_kb / 1024
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rss(plane: ControlPlane, spec_path: Path, tmp: Path) -> dict[str, float]:
    """Peak RSS of the agent: simulated; NVML reading 8 GPUs (stood in); NVML unavailable."""
    nvml = ["--backend", "nvml", "--pod-resources-socket", str(tmp / "none.sock")]
    standin = [sys.executable, "-m", "bench.nvml_standin"]
    return {
        "simulated": peak_rss_mb(
            plane, ["--backend", "simulated", "--spec", str(spec_path)], "bench-rss"
        ),
        "nvml": peak_rss_mb(plane, nvml, "bench-nvml", standin),
        "nvml_unavailable": peak_rss_mb(plane, nvml, "bench-nvml-unavailable"),
    }


def cpu_rounds(calibration: Calibration) -> dict[str, Any]:
    """``cpu_per_poll`` in ``ROUNDS`` rounds: the median round, and the spread per GPU."""
    rounds = []
    for _ in range(ROUNDS):
        rounds.append(cpu_per_poll())
        calibration.take()
    mid = sorted(rounds, key=lambda r: r["cpu_seconds_per_poll"])[len(rounds) // 2]
    per_gpu = [r["cpu_seconds_per_poll_per_gpu"] for r in rounds]
    return {**mid, "cpu_seconds_per_poll_per_gpu_rounds": spread(per_gpu, 9)}


def rss_rounds(
    plane: ControlPlane, spec_path: Path, tmp: Path, calibration: Calibration
) -> dict[str, dict[str, Any]]:
    """``rss`` in ``ROUNDS`` rounds: per kind, the median, the spread and each round."""
    runs: dict[str, list[float]] = {}
    for _ in range(ROUNDS):
        for kind, mb in rss(plane, spec_path, tmp).items():
            runs.setdefault(kind, []).append(mb)
        calibration.take()
    return {kind: spread(mbs, 2) for kind, mbs in runs.items()}


def main() -> int:
    console = Console()
    calibration = Calibration()
    calibration.take()
    results: dict[str, Any] = {"gpus_per_node": GPUS, "poll_interval_s": 1.0}
    results["targets"] = {"core_percent_at_1s_poll": 1.0, "peak_rss_mb": RSS_TARGET_MB}
    results["cpu"] = cpu_rounds(calibration)
    with tempfile.TemporaryDirectory(prefix="vramfit-bench-agent-") as tmp:
        plane = ControlPlane(locate(), Path(tmp))
        plane.start()
        try:
            files = ["namespace.yaml", "crd-nodegpustate.yaml"]
            server_side_apply(plane.kubectl, load_documents([DEPLOY / f for f in files]))
            client = KubeClient(load_kubeconfig(plane.kubeconfig))
            try:
                results["steady"] = one_hour(client, "bench-steady", changing=False)
                results["changing"] = one_hour(client, "bench-changing", changing=True)
            finally:
                client.close()
            spec_path = Path(tmp) / "spec.yaml"
            spec_path.write_text(
                yaml.safe_dump({"nodes": [{"name": "bench-rss", "product": "H100", "gpus": GPUS,
                                           "memoryPerGpu": "80Gi", "nvlink": "all"}]})
            )  # fmt: skip
            rounds = rss_rounds(plane, spec_path, Path(tmp), calibration)
            results["peak_rss_mb"] = {kind: r["median"] for kind, r in rounds.items()}
            results["peak_rss_mb_rounds"] = rounds
        finally:
            plane.stop()
    results["calibration"] = calibration.figure()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")

    cpu = results["cpu"]
    table = Table(title=f"vramfit-agent ({GPUS} GPUs, 1 s poll, simulated backend)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row("CPU per poll", f"{cpu['cpu_seconds_per_poll'] * 1e3:.3f} ms", "")
    table.add_row("CPU per poll per GPU", f"{cpu['cpu_seconds_per_poll_per_gpu'] * 1e6:.0f} µs", "")
    table.add_row("one core at 1 s poll", f"{cpu['core_percent_at_1s_poll']:.3f} %", "< 1 %")
    for scenario in ("steady", "changing"):
        r = results[scenario]
        table.add_row(
            f"status writes/hour ({scenario})",
            f"{r['status_writes_per_hour']} {r['status_writes_by_reason']}",
            "<= 60" if scenario == "steady" else "",
        )
        table.add_row(
            f"Lease renewals/hour ({scenario})", str(r["lease_renewals_per_hour"]), "~360"
        )
    for kind, r in results["peak_rss_mb_rounds"].items():
        table.add_row(
            f"peak RSS ({kind})",
            f"{r['median']:.1f} MB ({r['min']:.1f}-{r['max']:.1f})",
            f"< {RSS_TARGET_MB:g} MB",
        )
    console.print(table)
    console.print(line(results["calibration"]))
    ok = (
        cpu["core_percent_at_1s_poll"] < 1.0
        and results["steady"]["status_writes_per_hour"] <= 60
        and all(r["max"] < RSS_TARGET_MB for r in results["peak_rss_mb_rounds"].values())
    )
    if not ok:
        console.print("[red]a target was missed (see the table)[/red]")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
