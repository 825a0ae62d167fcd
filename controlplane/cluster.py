"""``make cluster``: a local Kubernetes control plane with simulated GPU nodes, for trying vramfit.

``python -m controlplane.cluster up [--nodes FILE] [--dir DIR]`` starts etcd, kube-apiserver and
kube-scheduler as background processes, server-side applies every manifest in ``deploy/``,
creates one fake GPU Node per node of the simulated node spec (the built-in default is 8 nodes
of 8x H100 80 GB and 8 nodes of 8x A100 40 GB), records the processes in ``DIR/state.json``
(``DIR`` defaults to ``.cluster/`` in the repository) and prints how to reach the cluster.
With ``--agents`` it also starts one simulated node agent per node (reading the same spec);
with ``--extender`` the scheduler extender, and beside the default scheduler one kube-scheduler
per extender-calling configuration in ``deploy/`` (the ``vramfit`` profile), pointed at it.

``down`` stops every recorded process and deletes the cluster's data (the logs stay in
``DIR/logs``); it is safe to run when nothing runs. ``status`` says what runs.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypedDict
from urllib.parse import urlsplit

from kubernetes import client as k8s_client

from controlplane.binaries import REPO_ROOT, BinariesError, ensure
from controlplane.harness import SCHEDULER_CONFIG_API, ControlPlane, ControlPlaneError, stop_order
from controlplane.manifests import (
    Document,
    ManifestError,
    load_documents,
    scheduler_configs,
    server_side_apply,
    yaml_files,
)
from controlplane.nodes import GpuNode, NodeSpecError, create_nodes, validate_nodes
from controlplane.nodespec import gpu_node, load_nodes
from controlplane.processes import free_ports, http_ok, runs_executable, stop_pids
from placement.fields import InputError
from placement.nodegpustate import GROUP, LEASE_PREFIX, PLURAL, VERSION

DEFAULT_DIR: Final = REPO_ROOT / ".cluster"
DEPLOY_DIR: Final = REPO_ROOT / "deploy"
STATE_FILE: Final = "state.json"
STATE_VERSION: Final = 1
SYSTEM_NAMESPACE: Final = "vramfit-system"
EXTENDER_SCHEDULER_NAME: Final = "vramfit"
AGENT_READY_TIMEOUT_S: Final = 60.0
EXTENDER_READY_TIMEOUT_S: Final = 60.0


class ClusterError(RuntimeError):
    """The local cluster cannot be started or stopped; the message says why."""


class ProcessJSON(TypedDict):
    name: str
    pid: int
    executable: str
    log: str


class StateJSON(TypedDict):
    version: int
    kubeconfig: str
    kubectl: str
    server: str
    spec: str
    nodes: list[str]
    processes: list[ProcessJSON]


@dataclass(frozen=True)
class UpOptions:
    """What ``up`` starts, from the command line."""

    state_dir: Path
    spec: Path | None = None  # None: the built-in default cluster
    deploy_dir: Path = DEPLOY_DIR
    agents: bool = False
    extender: bool = False


# --- pure parts ----------------------------------------------------------------------------


def default_scheduler_config() -> dict[str, Any]:
    """Pure: the stock kube-scheduler (``default-scheduler``) with default plugins."""
    return {"apiVersion": SCHEDULER_CONFIG_API, "kind": "KubeSchedulerConfiguration"}


def extender_scheduler_config(
    extender_url: str, scheduler_name: str = EXTENDER_SCHEDULER_NAME
) -> dict[str, Any]:
    """Pure: a scheduler profile ``scheduler_name`` that sends GPU pods to the extender.

    The extender decides in filter and binds (so it can write its reservation first); it keeps
    its own view of the nodes from watches, hence ``nodeCacheCapable``. As in deploy/, no
    ``managedResources``: kube-scheduler sends every pod of the profile, since pods that claim
    GPUs through DRA request no ``nvidia.com/gpu``, and still counts whole GPUs itself.
    """
    return {
        "apiVersion": SCHEDULER_CONFIG_API,
        "kind": "KubeSchedulerConfiguration",
        "profiles": [{"schedulerName": scheduler_name}],
        "extenders": [
            {
                "urlPrefix": f"{extender_url.rstrip('/')}/scheduler",
                "filterVerb": "filter",
                "prioritizeVerb": "prioritize",
                "bindVerb": "bind",
                "preemptVerb": "preempt",
                "weight": 1,
                "enableHTTPS": False,
                "nodeCacheCapable": True,
                "httpTimeout": "5s",
                "ignorable": False,
            }
        ],
    }


def point_extenders_at(config: Mapping[str, Any], extender_url: str) -> dict[str, Any]:
    """Pure: ``config`` with each extender's ``urlPrefix`` moved to ``extender_url`` (the path,
    such as ``/scheduler``, is kept)."""
    result = copy.deepcopy(dict(config))
    base = extender_url.rstrip("/")
    result["extenders"] = [
        {**extender, "urlPrefix": base + urlsplit(str(extender.get("urlPrefix", ""))).path}
        for extender in result.get("extenders") or []
    ]
    return result


def extender_configs(documents: Sequence[Document], extender_url: str) -> list[dict[str, Any]]:
    """Pure: the scheduler configurations in deploy/ that call an extender, pointed at the
    local extender; the built-in :func:`extender_scheduler_config` when deploy/ has none."""
    found = [c.config for c in scheduler_configs(documents) if c.config.get("extenders")]
    if not found:
        return [extender_scheduler_config(extender_url)]
    return [point_extenders_at(config, extender_url) for config in found]


def console_script(name: str) -> Path:
    """The project's console script ``name``, beside this interpreter or on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return beside
    found = shutil.which(name)
    if found is None:
        raise ClusterError(f"{name} is not installed (run `make cluster`, which installs it)")
    return Path(found)


def agent_command(node: str, spec: Path, kubeconfig: Path, listen: str) -> list[str]:
    """Pure apart from finding the script: one simulated agent for ``node``."""
    return [
        str(console_script("vramfit-agent")),
        "--backend=simulated",
        f"--node-name={node}",
        f"--spec={spec}",
        f"--kubeconfig={kubeconfig}",
        f"--listen={listen}",
    ]


def extender_command(kubeconfig: Path, listen: str) -> list[str]:
    """The extender as deploy/ runs it (nominating GPU pods ahead of kube-scheduler)."""
    return [
        str(console_script("vramfit-extender")),
        f"--kubeconfig={kubeconfig}",
        f"--listen={listen}",
        "--nominate-ahead",
    ]


# --- components ----------------------------------------------------------------------------


def _agent_published(plane: ControlPlane, node: str) -> bool:
    """Whether the node's agent has written both things the extender watches: its liveness
    Lease and its NodeGPUState report. Before both exist the extender rejects the node."""
    with plane.api_client() as api:
        try:
            k8s_client.CoordinationV1Api(api).read_namespaced_lease(
                f"{LEASE_PREFIX}{node}", SYSTEM_NAMESPACE
            )
            k8s_client.CustomObjectsApi(api).get_cluster_custom_object(GROUP, VERSION, PLURAL, node)
        except k8s_client.ApiException:
            return False
    return True


def start_agents(plane: ControlPlane, nodes: Sequence[GpuNode], spec: Path) -> None:
    """One simulated node agent per node, started together; each is ready once its liveness
    Lease and its NodeGPUState report exist (what the extender watches)."""
    ports = free_ports(len(nodes))
    plane.start_processes(
        [
            (
                f"agent-{node.name}",
                agent_command(node.name, spec, plane.kubeconfig, f"127.0.0.1:{port}"),
                functools.partial(_agent_published, plane, node.name),
            )
            for node, port in zip(nodes, ports, strict=True)
        ],
        timeout=AGENT_READY_TIMEOUT_S,
    )


def start_extender(plane: ControlPlane) -> str:
    """The scheduler extender on a free loopback port; returns its URL once ``/readyz`` is ok."""
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    plane.start_process(
        "vramfit-extender",
        extender_command(plane.kubeconfig, f"127.0.0.1:{port}"),
        functools.partial(http_ok, f"{url}/readyz", lambda _body: True),
        timeout=EXTENDER_READY_TIMEOUT_S,
    )
    return url


def start_schedulers(plane: ControlPlane, extender_configs: Sequence[Mapping[str, Any]]) -> None:
    """The default scheduler, and one scheduler per configuration that calls the extender."""
    plane.start_scheduler(default_scheduler_config(), name="kube-scheduler")
    for i, config in enumerate(extender_configs):
        plane.start_scheduler(config, name=f"kube-scheduler-vramfit{'' if i == 0 else i}")


# --- state -----------------------------------------------------------------------------------


def read_state(state_dir: Path) -> StateJSON | None:
    path = state_dir / STATE_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ClusterError(f"{path}: unreadable ({exc}); remove {state_dir} by hand") from None
    if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
        raise ClusterError(f"{path}: not a state file this version writes; remove {state_dir}")
    state: StateJSON = raw  # type: ignore[assignment]
    return state


def running_processes(state: StateJSON) -> list[ProcessJSON]:
    return [p for p in state["processes"] if runs_executable(p["pid"], Path(p["executable"]))]


def stop_recorded(state: StateJSON) -> int:
    """Stop every recorded process that still runs (clients first, then the API server, then
    etcd); returns how many."""
    stopped = 0
    for group in stop_order([p["name"] for p in state["processes"]]):
        stopped += stop_pids(
            [(p["pid"], Path(p["executable"])) for p in state["processes"] if p["name"] in group]
        )
    return stopped


def _clear_data(state_dir: Path) -> None:
    """Remove everything but the logs."""
    if not state_dir.exists():
        return
    for entry in state_dir.iterdir():
        if entry.name == "logs":
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


# --- commands ----------------------------------------------------------------------------------


def usage_text(state: StateJSON, state_dir: Path) -> str:
    """Pure: how to reach the cluster."""
    return "\n".join(
        [
            f"vramfit local cluster: {state['server']}, {len(state['nodes'])} simulated GPU nodes",
            "",
            f"  export KUBECONFIG={state['kubeconfig']}",
            f"  alias kubectl={state['kubectl']}   # the kubectl of the cluster's release",
            "  kubectl get nodes -L nvidia.com/gpu.product,nvidia.com/gpu.memory,nvidia.com/gpu.count",
            "",
            f"logs: {state_dir / 'logs'}/    stop: make cluster-down",
        ]
    )


def up(options: UpOptions) -> tuple[StateJSON, bool]:
    """Start the cluster (see the module docstring); returns its state and whether it was
    already running. A cluster of which some process died is stopped and started afresh."""
    state_dir = options.state_dir.absolute()
    existing = read_state(state_dir)
    if existing is not None:
        if len(running_processes(existing)) == len(existing["processes"]):
            return existing, True
        stop_recorded(existing)
    specs, spec_text = load_nodes(options.spec)  # bad input fails before anything starts
    nodes = [gpu_node(spec) for spec in specs]
    validate_nodes(nodes)
    documents = load_documents(yaml_files(options.deploy_dir))
    binaries, _ = ensure()
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True)
    spec_path = state_dir / "nodes.yaml"  # what the agents read: the same nodes
    spec_path.write_text(spec_text, encoding="utf-8")
    plane = ControlPlane(binaries, state_dir, detached=True)
    try:
        plane.start()
        server_side_apply(plane.kubectl, documents)
        with plane.api_client() as api:
            names = create_nodes(k8s_client.CoreV1Api(api), nodes)
        if options.agents:
            start_agents(plane, nodes, spec_path)
        schedulers = []
        if options.extender:
            schedulers = extender_configs(documents, start_extender(plane))
        start_schedulers(plane, schedulers)
    except BaseException:
        plane.stop()
        raise
    state: StateJSON = {
        "version": STATE_VERSION,
        "kubeconfig": str(plane.kubeconfig),
        "kubectl": str(binaries.kubectl),
        "server": plane.server,
        "spec": str(spec_path),
        "nodes": names,
        "processes": [
            {"name": r.name, "pid": r.pid, "executable": r.executable, "log": r.log}
            for r in plane.release()
        ],
    }
    (state_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    return state, False


def down(state_dir: Path) -> int:
    """Stop the cluster in ``state_dir``; returns how many processes were stopped."""
    state = read_state(state_dir.absolute())
    if state is None:
        return 0
    stopped = stop_recorded(state)
    _clear_data(state_dir)
    return stopped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m controlplane.cluster",
        description="A local control plane with simulated GPU nodes.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="start the local cluster")
    up_parser.add_argument("--nodes", type=Path, help="simulated node spec YAML")
    up_parser.add_argument("--agents", action="store_true", help="start simulated node agents")
    up_parser.add_argument("--extender", action="store_true", help="start the scheduler extender")
    for sub in (up_parser, commands.add_parser("down"), commands.add_parser("status")):
        sub.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state folder")
    args = parser.parse_args(argv)
    state_dir: Path = args.dir
    try:
        if args.command == "up":
            state, already = up(
                UpOptions(
                    state_dir=state_dir,
                    spec=args.nodes,
                    agents=args.agents,
                    extender=args.extender,
                )
            )
            if already:
                print("already running (`make cluster-down` stops it)")
            print(usage_text(state, state_dir.absolute()))
        elif args.command == "down":
            stopped = down(state_dir)
            print(f"stopped {stopped} processes" if stopped else "no local cluster was running")
        else:
            recorded = read_state(state_dir.absolute())
            if recorded is None:
                print("no local cluster")
                return 1
            alive = {p["pid"] for p in running_processes(recorded)}
            for process in recorded["processes"]:
                status = "running" if process["pid"] in alive else "stopped"
                print(f"{process['name']:28} pid {process['pid']:>7}  {status}")
            return 0 if alive else 1
    except (
        BinariesError,
        ClusterError,
        ControlPlaneError,
        ManifestError,
        NodeSpecError,
        InputError,
    ) as exc:
        sys.stderr.write(f"controlplane.cluster: error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
