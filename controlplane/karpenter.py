"""A real autoscaler beside the test control plane: Karpenter with its kwok cloud provider.

``KarpenterRun`` installs Karpenter's CRDs and a ``KWOKNodeClass``, writes the GPU instance
types the kwok provider offers, and starts the provider (``controlplane.karpenterbin``) against
the plane. The kwok provider's instance-type file (``kwok/cloudprovider/helpers.go``: a JSON list
of ``{name, offerings[{Price, Available, Requirements}], architecture, operatingSystems,
resources}``) takes extended resources, so a type has ``nvidia.com/gpu: 8``; every single-value
``In`` requirement of an offering is copied onto the nodes it creates and registered as a
well-known label, so an offering that requires ``nvidia.com/gpu.memory In [81920]`` both labels
its nodes as GPU Feature Discovery would and lets Karpenter match node affinity on that label
before the node exists.

A kwok node has no kubelet: the provider only writes the Node. In a kwok cluster the kwok
controller marks it Ready; here ``NodeKeeper`` does, and starts a simulated vramfit agent for
each new node (its GPUs from the instance type), and stops the agent when the node is gone, so the
extender sees Karpenter's nodes exactly as it sees any other.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import yaml
from kubernetes import client as k8s_client

from controlplane.harness import ControlPlane
from controlplane.karpenterbin import Karpenter
from controlplane.processes import ManagedProcess, free_ports, http_ok

KWOK_LABEL: Final = "kwok.x-k8s.io/node"
INSTANCE_TYPE_LABEL: Final = "node.kubernetes.io/instance-type"
NODE_CLASS: Final = "default"


@dataclass(frozen=True)
class GpuInstanceType:
    """A GPU machine the kwok provider sells: ``gpus`` GPUs of ``memory_mib`` each."""

    name: str
    product: str
    gpus: int
    memory_mib: int
    price: float
    cpu: str = "96"
    memory: str = "1152Gi"

    def gfd_labels(self) -> dict[str, str]:
        return {
            "nvidia.com/gpu.product": self.product,
            "nvidia.com/gpu.memory": str(self.memory_mib),
            "nvidia.com/gpu.count": str(self.gpus),
        }


def instance_types_document(types: Sequence[GpuInstanceType]) -> list[dict[str, Any]]:
    """Pure: the kwok provider's instance-type file for ``types`` (one on-demand offering each,
    its GFD labels as single-value requirements)."""
    out = []
    for t in types:
        requirements = [
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["test-zone-a"]},
            *(
                {"key": k, "operator": "In", "values": [v]}
                for k, v in sorted(t.gfd_labels().items())
            ),
        ]
        out.append(
            {
                "name": t.name,
                "offerings": [{"Price": t.price, "Available": True, "Requirements": requirements}],
                "architecture": "amd64",
                "operatingSystems": ["linux"],
                "resources": {
                    "cpu": t.cpu,
                    "memory": t.memory,
                    "pods": "110",
                    "nvidia.com/gpu": str(t.gpus),
                },
            }
        )
    return out


def agent_spec(node: str, t: GpuInstanceType) -> dict[str, Any]:
    """Pure: the simulated agent's node spec for a node of type ``t``."""
    return {
        "nodes": [
            {
                "name": node,
                "product": t.product,
                "gpus": t.gpus,
                "memoryPerGpu": f"{t.memory_mib}Mi",
                "nvlink": "all",
                "localDiskBandwidth": "100Gi",
                "remoteBandwidth": "20Gi",
            }
        ]
    }


def ready_status(now: datetime) -> dict[str, Any]:
    """Pure: the node status a kubelet would report once it runs (what kwok's stage sets)."""
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "status": {
            "phase": "Running",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kwok node made ready by the test harness",
                    "lastHeartbeatTime": stamp,
                    "lastTransitionTime": stamp,
                }
            ],
        }
    }


def node_pool(
    name: str, instance_types: Sequence[str], gpu_limit: int, *, consolidate_after: str = "5s"
) -> dict[str, Any]:
    """Pure: a NodePool that may buy any of ``instance_types``, as a platform team writes one
    without vramfit's plan."""
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "requirements": [
                        {
                            "key": INSTANCE_TYPE_LABEL,
                            "operator": "In",
                            "values": list(instance_types),
                        }
                    ],
                    "nodeClassRef": {
                        "group": "karpenter.kwok.sh",
                        "kind": "KWOKNodeClass",
                        "name": NODE_CLASS,
                    },
                    "expireAfter": "Never",
                }
            },
            "limits": {"nvidia.com/gpu": str(gpu_limit)},
            "disruption": {
                "consolidationPolicy": "WhenEmptyOrUnderutilized",
                "consolidateAfter": consolidate_after,
                "budgets": [{"nodes": "100%"}],
            },
        },
    }


class NodeKeeper:
    """Marks each node Karpenter creates Ready and runs a simulated agent for it."""

    def __init__(
        self,
        plane: ControlPlane,
        types: Sequence[GpuInstanceType],
        workdir: Path,
        agent_argv: Callable[[str, Path, int], list[str]],
        *,
        interval_s: float = 0.5,
    ) -> None:
        self.plane = plane
        self.types = {t.name: t for t in types}
        self.workdir = workdir
        self.agent_argv = agent_argv
        self.interval_s = interval_s
        self.agents: dict[str, ManagedProcess] = {}
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kwok-nodes", daemon=True)
        self.errors: list[str] = []

    def start(self) -> NodeKeeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for process in self.agents.values():
            process.stop()
        self.agents.clear()

    def _run(self) -> None:
        with self.plane.api_client() as api:
            core = k8s_client.CoreV1Api(api)
            while not self._stop.wait(self.interval_s):
                try:
                    self._round(core)
                except Exception as exc:  # the API may be busy: try again next round
                    self.errors.append(f"{type(exc).__name__}: {exc}")

    def _round(self, core: k8s_client.CoreV1Api) -> None:
        nodes = core.list_node(label_selector=f"{KWOK_LABEL}=fake").items
        present = {n.metadata.name for n in nodes}
        for node in nodes:
            name = node.metadata.name
            if name in self.agents or node.metadata.deletion_timestamp is not None:
                continue
            kind = self.types.get((node.metadata.labels or {}).get(INSTANCE_TYPE_LABEL, ""))
            if kind is None:
                continue
            core.patch_node_status(name, ready_status(datetime.now(UTC)))
            spec = self.workdir / f"{name}.yaml"
            spec.write_text(yaml.safe_dump(agent_spec(name, kind)))
            (port,) = free_ports(1)
            self.agents[name] = self.plane.start_process(
                f"agent-{name}", self.agent_argv(name, spec, port), lambda: True
            )
            self.seen.append(name)
        for name in [n for n in self.agents if n not in present]:
            self.agents.pop(name).stop()


class KarpenterRun:
    """Karpenter's kwok provider running against ``plane`` with GPU instance ``types``."""

    def __init__(
        self,
        plane: ControlPlane,
        karpenter: Karpenter,
        types: Sequence[GpuInstanceType],
        workdir: Path,
    ) -> None:
        self.plane = plane
        self.karpenter = karpenter
        self.types = list(types)
        self.workdir = workdir
        self.process: ManagedProcess | None = None

    def install(self) -> None:
        """The CRDs from the module's source and the ``default`` KWOKNodeClass."""
        crds = str(self.karpenter.crds)
        self.plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", crds)
        self.plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", crds)
        node_class = {
            "apiVersion": "karpenter.kwok.sh/v1alpha1",
            "kind": "KWOKNodeClass",
            "metadata": {"name": NODE_CLASS},
        }
        self.plane.kubectl(
            "apply", "--server-side", "-f", "-", input_text=yaml.safe_dump(node_class)
        )

    def start(self, env: Mapping[str, str] | None = None) -> ManagedProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        types_file = self.workdir / "instance-types.json"
        types_file.write_text(json.dumps(instance_types_document(self.types), indent=2))
        metrics, health = free_ports(2)
        environment = {
            **os.environ,
            "KUBECONFIG": str(self.plane.kubeconfig),
            "INSTANCE_TYPES_FILE_PATH": str(types_file),
            "SYSTEM_NAMESPACE": "kube-system",
            "DISABLE_LEADER_ELECTION": "true",
            "METRICS_PORT": str(metrics),
            "HEALTH_PROBE_PORT": str(health),
            # Decide quickly: tests create their pods at once.
            "BATCH_IDLE_DURATION": "1s",
            "BATCH_MAX_DURATION": "3s",
            "LOG_LEVEL": "debug",
            **(env or {}),
        }
        self.process = self.plane.start_process(
            f"karpenter-{health}",
            [str(self.karpenter.binary)],
            lambda: http_ok(f"http://127.0.0.1:{health}/readyz", lambda _b: True),
            timeout=90,
            env=environment,
        )
        return self.process

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(Exception):
                self.process.stop()
