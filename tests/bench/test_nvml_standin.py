"""The agent's memory figure is measured on its NVML code path: with the driver's library stood
in (``bench.nvml_standin``), the real agent reads eight GPUs through the real ``pynvml`` module,
their memory, processes and NVSwitch links, as on a GPU node."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_agent_reads_eight_gpus_through_the_standin() -> None:
    agent = [sys.executable, "-m", "bench.nvml_standin"]
    done = subprocess.run(
        [*agent, "--backend", "nvml", "--node-name", "n", "--once"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["nvmlAvailable"] is True
    gpus = status["gpus"]
    assert [g["index"] for g in gpus] == list(range(8))
    for g in gpus:
        assert g["product"] == "NVIDIA H100 80GB HBM3" and g["healthy"]
        assert g["memory"]["totalBytes"] == 80 * 1024**3
        assert g["memory"]["usedBytes"] > 0 and g["memory"]["reservedBytes"] > 0
        assert len(g["nvlinkPeers"]) == 7  # NVSwitch: every other GPU
