"""``make cluster``: the local cluster comes up with its nodes and manifests, and goes away."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from controlplane.cluster import (
    default_scheduler_config,
    extender_configs,
    extender_scheduler_config,
    point_extenders_at,
    usage_text,
)
from controlplane.harness import stop_order
from controlplane.manifests import Document
from controlplane.nodes import MEMORY_LABEL, PRODUCT_LABEL
from controlplane.processes import runs_executable
from placement.demand import GPU_RESOURCE

SPEC = """nodes:
- namePrefix: h100-
  count: 2
  product: NVIDIA-H100-80GB-HBM3
  gpus: 8
  memoryPerGpu: 80Gi
  nvlink: all
- name: l4-solo
  product: NVIDIA-L4
  gpus: 1
  memoryPerGpu: 24Gi
  nvlink: none
"""


def cluster(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controlplane.cluster", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_extender_scheduler_config_sends_gpu_pods_to_the_extender() -> None:
    config = extender_scheduler_config("http://127.0.0.1:8888/")
    (extender,) = config["extenders"]
    assert extender["urlPrefix"] == "http://127.0.0.1:8888/scheduler"
    assert (extender["filterVerb"], extender["bindVerb"]) == ("filter", "bind")
    assert extender["preemptVerb"] == "preempt"
    assert "managedResources" not in extender  # DRA pods request no nvidia.com/gpu
    assert config["profiles"] == [{"schedulerName": "vramfit"}]
    assert "extenders" not in default_scheduler_config()


def test_point_extenders_at_keeps_the_path_and_everything_else() -> None:
    config: dict[str, Any] = {
        "profiles": [{"schedulerName": "vramfit"}],
        "extenders": [{"urlPrefix": "http://127.0.0.1:8888/scheduler", "weight": 5}],
    }
    moved = point_extenders_at(config, "http://127.0.0.1:40123/")
    assert moved["extenders"] == [{"urlPrefix": "http://127.0.0.1:40123/scheduler", "weight": 5}]
    assert moved["profiles"] == config["profiles"]
    assert config["extenders"][0]["urlPrefix"] == "http://127.0.0.1:8888/scheduler"


def test_extender_configs_prefer_the_deployed_configuration() -> None:
    deployed = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "percentageOfNodesToScore": 100,
        "extenders": [{"urlPrefix": "http://127.0.0.1:8888/scheduler"}],
    }
    plain = {**deployed, "extenders": []}
    documents = [Document(Path("a.yaml"), 0, deployed), Document(Path("b.yaml"), 0, plain)]
    (config,) = extender_configs(documents, "http://127.0.0.1:1")
    assert config["percentageOfNodesToScore"] == 100
    assert config["extenders"] == [{"urlPrefix": "http://127.0.0.1:1/scheduler"}]
    assert extender_configs([], "http://127.0.0.1:1") == [
        extender_scheduler_config("http://127.0.0.1:1")
    ]


@pytest.mark.parametrize(
    ("names", "groups"),
    [
        (
            ["etcd", "kube-apiserver", "s1", "agent-a"],
            [{"s1", "agent-a"}, {"kube-apiserver"}, {"etcd"}],
        ),
        (["etcd"], [{"etcd"}]),
        ([], []),
    ],
    ids=["clients-then-api-then-etcd", "etcd-only", "nothing"],
)
def test_stop_order(names: list[str], groups: list[set[str]]) -> None:
    assert stop_order(names) == groups


def test_usage_text_shows_the_kubeconfig_and_how_to_stop(tmp_path: Path) -> None:
    state: Any = {
        "server": "https://127.0.0.1:1",
        "kubeconfig": "/k",
        "kubectl": "/bin/kubectl-built",
        "nodes": ["a", "b"],
    }
    text = usage_text(state, tmp_path)
    assert "export KUBECONFIG=/k" in text
    assert "alias kubectl=/bin/kubectl-built" in text
    assert "2 simulated GPU nodes" in text
    assert "make cluster-down" in text


@pytest.mark.integration
def test_up_status_down(tmp_path: Path) -> None:
    spec = tmp_path / "nodes.yaml"
    spec.write_text(SPEC)
    state_dir = tmp_path / "cluster"
    try:
        up = cluster("up", "--dir", str(state_dir), "--nodes", str(spec))
        assert up.returncode == 0, up.stderr
        assert f"export KUBECONFIG={state_dir / 'kubeconfig'}" in up.stdout
        state = json.loads((state_dir / "state.json").read_text())
        assert [p["name"] for p in state["processes"]] == [
            "etcd",
            "kube-apiserver",
            "kube-scheduler",
        ]

        with k8s_config.new_client_from_config(config_file=state["kubeconfig"]) as api:
            core = k8s_client.CoreV1Api(api)
            nodes = {n.metadata.name: n for n in core.list_node().items}
            assert sorted(nodes) == ["h100-0", "h100-1", "l4-solo"]
            assert nodes["l4-solo"].metadata.labels[PRODUCT_LABEL] == "NVIDIA-L4"
            assert nodes["l4-solo"].metadata.labels[MEMORY_LABEL] == "24576"
            assert nodes["h100-1"].status.allocatable[GPU_RESOURCE] == "8"
            core.read_namespace("vramfit-system")  # deploy/ was applied

        again = cluster("up", "--dir", str(state_dir), "--nodes", str(spec))
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout
        assert json.loads((state_dir / "state.json").read_text()) == state

        assert cluster("status", "--dir", str(state_dir)).returncode == 0
    finally:
        down = cluster("down", "--dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == "stopped 3 processes"
    for process in state["processes"]:
        assert not runs_executable(process["pid"], Path(process["executable"])), process
    assert sorted(p.name for p in state_dir.iterdir()) == ["logs"]
    assert (state_dir / "logs" / "kube-apiserver.log").stat().st_size > 0

    second = cluster("down", "--dir", str(state_dir))
    assert (second.returncode, second.stdout.strip()) == (0, "no local cluster was running")
    assert cluster("status", "--dir", str(state_dir)).returncode == 1


@pytest.mark.integration
@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (
            "nodes:\n- {name: a, product: P, gpus: two, memoryPerGpu: 1Gi}\n",
            "nodes[0].gpus: expected a whole number, got 'two'",
        ),
        (
            "nodes:\n- {name: Bad_Name, product: P, gpus: 1, memoryPerGpu: 1Gi}\n",
            "node 'Bad_Name': name 'Bad_Name' is not a DNS subdomain",
        ),
    ],
    ids=["bad-field", "name-kubernetes-rejects"],
)
def test_a_bad_node_spec_fails_before_anything_starts(
    tmp_path: Path, content: str, fragment: str
) -> None:
    spec = tmp_path / "nodes.yaml"
    spec.write_text(content)
    result = cluster("up", "--dir", str(tmp_path / "cluster"), "--nodes", str(spec))
    assert result.returncode == 1
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cluster").exists()


GPU_SPEC = """nodes:
- namePrefix: h100-
  count: 2
  product: NVIDIA-H100-80GB-HBM3
  gpus: 8
  memoryPerGpu: 80Gi
  nvlink: all
"""


def _why_unbound(core: k8s_client.CoreV1Api, state_dir: Path) -> str:
    """The pod's events and the tails of the extender's and schedulers' logs, for a failure."""
    events = core.list_namespaced_event("default", field_selector="involvedObject.name=llm")
    lines = ["the vramfit scheduler never bound the pod; events:"]
    lines += [f"  {e.reason}: {e.message}" for e in events.items]
    for log in sorted((state_dir / "logs").glob("*.log")):
        if log.stem.startswith(("vramfit-extender", "kube-scheduler")):
            tail = log.read_text(errors="replace").splitlines()[-15:]
            lines += [f"--- {log.name}", *tail]
    return "\n".join(lines)


@pytest.mark.integration
def test_with_agents_and_extender_a_gpu_pod_is_placed_by_vramfit(tmp_path: Path) -> None:
    spec = tmp_path / "nodes.yaml"
    spec.write_text(GPU_SPEC)
    state_dir = tmp_path / "cluster"
    try:
        up = cluster("up", "--dir", str(state_dir), "--nodes", str(spec), "--agents", "--extender")
        assert up.returncode == 0, up.stderr
        state = json.loads((state_dir / "state.json").read_text())
        names = [p["name"] for p in state["processes"]]
        assert names[:2] == ["etcd", "kube-apiserver"]
        assert {"agent-h100-0", "agent-h100-1", "vramfit-extender"} <= set(names)
        assert names[-2:] == ["kube-scheduler", "kube-scheduler-vramfit"]
        with k8s_config.new_client_from_config(config_file=state["kubeconfig"]) as api:
            core = k8s_client.CoreV1Api(api)
            pod = {
                "metadata": {"name": "llm", "annotations": {"vramfit.io/vram-per-gpu": "60Gi"}},
                "spec": {
                    "schedulerName": "vramfit",
                    "containers": [
                        {"name": "m", "image": "x", "resources": {"limits": {GPU_RESOURCE: "4"}}}
                    ],
                },
            }
            core.create_namespaced_pod("default", pod)
            deadline = time.monotonic() + 60
            while not (placed := core.read_namespaced_pod("llm", "default")).spec.node_name:
                assert time.monotonic() < deadline, _why_unbound(core, state_dir)
                time.sleep(0.2)
            assert placed.spec.node_name in {"h100-0", "h100-1"}
            assert "vramfit.io/reservation" in placed.metadata.annotations
    finally:
        down = cluster("down", "--dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == f"stopped {len(state['processes'])} processes"
