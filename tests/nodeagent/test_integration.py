"""The agent against the real API server: what it writes, when, and what it may write.

- A simulated agent creates its node's NodeGPUState and Lease, renews the Lease, rewrites the
  status only on a meaningful change or at the maximum age, and its kubelet stand-in makes a
  GPU pod bound to the node Ready after the pod's load time.
- The ValidatingAdmissionPolicy in deploy/ refuses an agent whose service-account token is
  bound to a pod on node A when it writes node B's objects, and lets it write its own.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from controlplane.harness import ControlPlane
from controlplane.manifests import load_documents, server_side_apply
from controlplane.pytest_plugin import MakeGpuNodes, not_found, wait_for
from nodeagent.agent import Agent, build_agent, kube_client
from nodeagent.config import argument_parser, settings_from_args
from nodeagent.kube import MERGE_PATCH, ApiError, Credentials, KubeClient
from nodeagent.publish import Publisher, PublishSettings
from placement.model import CachedModel, GpuState, MigDevice, NodeState, PodMemory
from placement.nodegpustate import decode_status, encode_status, parse_time

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NS = "vramfit-system"
GIB = 1024**3


@pytest.fixture
def agent_api(control_plane: ControlPlane) -> ControlPlane:
    """The agent's CRD, RBAC and admission policy, applied as ``make cluster`` applies them."""
    files = [
        "namespace.yaml",
        "crd-nodegpustate.yaml",
        "agent-rbac.yaml",
        "agent-admission-policy.yaml",
    ]
    server_side_apply(control_plane.kubectl, load_documents([DEPLOY / f for f in files]))
    return control_plane


@pytest.fixture
def custom(agent_api: ControlPlane) -> Iterator[k8s.CustomObjectsApi]:
    with agent_api.api_client() as api:
        yield k8s.CustomObjectsApi(api)


def start_agent(
    plane: ControlPlane, spec: Path, node: str, *extra: str
) -> tuple[Agent, threading.Event, threading.Thread]:
    args = [
        "--backend", "simulated", "--node-name", node, "--spec", str(spec),
        "--kubeconfig", str(plane.kubeconfig), "--listen", "127.0.0.1:0", *extra,
    ]  # fmt: skip
    settings = settings_from_args(argument_parser().parse_args(args))
    agent = build_agent(settings, client=kube_client(settings))
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    return agent, stop, thread


def test_object_and_lease_appear_and_update_only_on_meaningful_change(
    *,
    agent_api: ControlPlane,
    custom: k8s.CustomObjectsApi,
    core_v1: k8s.CoreV1Api,
    make_gpu_nodes: MakeGpuNodes,
    namespace: str,
    tmp_path: Path,
) -> None:
    (node,) = make_gpu_nodes(1, gpus=2)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "nodes": [
                    {
                        "name": node,
                        "product": "NVIDIA-H100-80GB-HBM3",
                        "gpus": 2,
                        "memoryPerGpu": "80Gi",
                        "nvlink": "all",
                        "remoteBandwidth": "1Gi",
                    }
                ]
            }
        )
    )
    coordination = k8s.CoordinationV1Api(core_v1.api_client)
    agent, stop, thread = start_agent(
        agent_api, spec, node,
        "--poll-interval", "0.2", "--lease-renew", "1", "--max-report-age", "6",
        "--min-write-interval", "1",
    )  # fmt: skip
    try:
        obj = wait_for(
            "the NodeGPUState",
            lambda: custom.get_cluster_custom_object_status(
                "vramfit.io", "v1alpha1", "nodegpustates", node
            ),
            retry_on=not_found,
        )
        wait_for("its status", lambda: custom.get_cluster_custom_object_status(
            "vramfit.io", "v1alpha1", "nodegpustates", node).get("status"))  # fmt: skip
        obj = custom.get_cluster_custom_object_status(
            "vramfit.io", "v1alpha1", "nodegpustates", node
        )
        state = decode_status(node, obj["status"], lease_renewed_at=None)
        assert [g.total_bytes for g in state.gpus] == [80 * GIB, 80 * GIB]
        assert all(g.healthy and g.free_bytes == 80 * GIB for g in state.gpus)
        lease = wait_for(
            "the Lease",
            lambda: coordination.read_namespaced_lease(f"vramfit-agent-{node}", NS),
            retry_on=not_found,
        )
        assert lease.spec.holder_identity == node and lease.spec.lease_duration_seconds == 40
        first_renew = lease.spec.renew_time

        # Nothing changes on the node: polls go on, the object is not rewritten ...
        rv = obj["metadata"]["resourceVersion"]
        time.sleep(2.5)
        again = custom.get_cluster_custom_object_status(
            "vramfit.io", "v1alpha1", "nodegpustates", node
        )
        assert again["metadata"]["resourceVersion"] == rv
        # ... while the Lease is renewed about every second.
        renewed = coordination.read_namespaced_lease(f"vramfit-agent-{node}", NS).spec.renew_time
        assert renewed > first_renew
        # At the maximum age the status is rewritten even without a change.
        wait_for(
            "a max-age rewrite",
            lambda: (
                custom.get_cluster_custom_object_status(
                    "vramfit.io", "v1alpha1", "nodegpustates", node
                )["metadata"]["resourceVersion"]
                != rv
            ),
            timeout=8,
        )
        assert (
            agent.publisher is not None
            and agent.publisher.stats.status_writes.get("max-age", 0) >= 1
        )

        # A GPU pod bound to the node: the kubelet stand-in gives it a GPU (a meaningful change,
        # published at once), loads 2 GiB at 1 GiB/s, then marks it Ready.
        created = time.time()
        pod = core_v1.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": "llm", "annotations": {"vramfit.io/model-size": "2Gi"}},
                "spec": {
                    "nodeName": node,
                    "containers": [
                        {"name": "server", "image": "registry.invalid/llm:1",
                         "resources": {"limits": {"nvidia.com/gpu": "1"}}}
                    ],
                },
            },
        )  # fmt: skip
        uid = pod.metadata.uid

        def held() -> bool:
            o = custom.get_cluster_custom_object_status(
                "vramfit.io", "v1alpha1", "nodegpustates", node
            )
            return any(g.get("holderPodUID") == uid for g in o["status"]["gpus"])

        wait_for("the pod's GPU in the published state", held, timeout=5)
        assert time.time() - created < 3.0  # published on change, not at the maximum age

        def ready() -> bool:
            p = core_v1.read_namespaced_pod_status("llm", namespace)
            return any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])

        wait_for("the pod to become Ready", ready, timeout=15)
        assert time.time() - created >= 1.8  # not before its 2 GiB have loaded

        def loaded() -> Any:
            o = custom.get_cluster_custom_object_status(
                "vramfit.io", "v1alpha1", "nodegpustates", node
            )
            final = decode_status(node, o["status"], lease_renewed_at=None)
            mine = [g for g in final.gpus if g.holder_pod_uid == uid]
            return o if len(mine) == 1 and mine[0].pod_memory[0].bytes == 2 * GIB else None

        # The last memory move is published within the minimum write interval (1 s here).
        o = wait_for("the loaded memory in the published state", loaded, timeout=4)
        assert parse_time(o["status"]["observedAt"]) > created
    finally:
        stop.set()
        thread.join(timeout=10)
        assert not [
            t.name
            for t in threading.enumerate()
            if t.name.startswith(("pods-", "publisher", "kubelet"))
        ]
        custom.delete_cluster_custom_object("vramfit.io", "v1alpha1", "nodegpustates", node)
        coordination.delete_namespaced_lease(f"vramfit-agent-{node}", NS)


@pytest.fixture
def agent_token(
    agent_api: ControlPlane, core_v1: k8s.CoreV1Api, make_gpu_nodes: MakeGpuNodes
) -> Iterator[tuple[str, str, str]]:
    """(token, own node, other node): a vramfit-agent token bound to a pod on the own node."""
    node_a, node_b = make_gpu_nodes(2, gpus=1)
    name = f"vramfit-agent-{secrets.token_hex(3)}"
    pod = core_v1.create_namespaced_pod(
        NS,
        {
            "metadata": {"name": name},
            "spec": {
                "nodeName": node_a,
                "serviceAccountName": "vramfit-agent",
                "containers": [{"name": "agent", "image": "ghcr.io/vramfit/vramfit:0.1.0"}],
            },
        },
    )
    request = core_v1.create_namespaced_service_account_token(
        "vramfit-agent",
        NS,
        {
            "spec": {
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": name,
                    "uid": pod.metadata.uid,
                },
                "expirationSeconds": 3600,
            }
        },
    )
    try:
        yield request.status.token, node_a, node_b
    finally:
        core_v1.delete_namespaced_pod(name, NS, grace_period_seconds=0)
        custom = k8s.CustomObjectsApi(core_v1.api_client)
        coordination = k8s.CoordinationV1Api(core_v1.api_client)
        for node in (node_a, node_b):
            with contextlib.suppress(k8s.ApiException):
                custom.delete_cluster_custom_object("vramfit.io", "v1alpha1", "nodegpustates", node)
            with contextlib.suppress(k8s.ApiException):
                coordination.delete_namespaced_lease(f"vramfit-agent-{node}", NS)


@contextlib.contextmanager
def as_agent(plane: ControlPlane, token: str) -> Iterator[KubeClient]:
    client = KubeClient(Credentials(server=plane.server, token=token, ca_file=plane.ca_file))
    try:
        yield client
    finally:
        client.close()


def nodegpustate(node: str) -> dict[str, Any]:
    return {
        "apiVersion": "vramfit.io/v1alpha1",
        "kind": "NodeGPUState",
        "metadata": {"name": node},
        "spec": {"nodeName": node},
    }


def lease(name: str, holder: str) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 40},
    }


def test_admission_policy_keeps_an_agent_to_its_own_node(
    agent_api: ControlPlane, agent_token: tuple[str, str, str]
) -> None:
    token, own, other = agent_token
    with as_agent(agent_api, token) as api:
        check_own_node_only(api, own, other)


def check_own_node_only(api: KubeClient, own: str, other: str) -> None:
    ngs = "/apis/vramfit.io/v1alpha1/nodegpustates"
    leases = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"

    refusals = [
        ("POST", ngs, nodegpustate(other), f"may only write NodeGPUState {own}, not {other}"),
        (
            "POST",
            leases,
            lease(f"vramfit-agent-{other}", other),
            f"may only write Lease vramfit-agent-{own}",
        ),
        ("POST", leases, lease(f"vramfit-agent-{own}", other), "must name that node as holder"),
    ]
    for method, path, body, message in refusals:
        with pytest.raises(ApiError) as err:
            api.request(method, path, body)
        assert err.value.status == 403 and message in err.value.message, err.value

    # Its own objects go through: the real publisher, with the agent's own credentials.
    publisher = Publisher(api, own, settings=PublishSettings(), clock=time.time)
    from nodeagent.simulated.backend import SimulatedBackend  # noqa: PLC0415
    from nodeagent.simulated.spec import parse_spec  # noqa: PLC0415
    from nodeagent.state import Attribution, build_node_state, status_of  # noqa: PLC0415

    spec = parse_spec(
        {"nodes": [{"name": own, "product": "H100", "gpus": 1, "memoryPerGpu": "80Gi"}]}
    )[0]
    reading = SimulatedBackend(spec).read(time.time())
    state = build_node_state(own, reading, Attribution())
    publisher.offer(state, status_of(state, reading))
    publisher.step(time.time())
    assert publisher.stats.api_ok, publisher.stats.last_error
    assert publisher.stats.status_writes == {"first": 1} and publisher.stats.lease_renewals == 1
    assert api.request("GET", f"{ngs}/{own}")["status"]["gpus"][0]["uuid"] == spec.gpu_uuid(0)

    # Once its own object exists, writing another node's status is refused too, and deleting
    # anything is refused by RBAC.
    with pytest.raises(ApiError) as err:
        api.request(
            "PATCH", f"{ngs}/{own}", {"metadata": {"labels": {"x": "y"}}}, content_type=MERGE_PATCH
        )
    assert err.value.status == 403  # no plain update of the object, only of its status
    with pytest.raises(ApiError) as err:
        api.request("DELETE", f"{ngs}/{own}")
    assert err.value.status == 403


def test_a_token_bound_to_no_node_writes_nothing(
    agent_api: ControlPlane, core_v1: k8s.CoreV1Api, make_gpu_nodes: MakeGpuNodes
) -> None:
    (node,) = make_gpu_nodes(1, gpus=1)
    request = core_v1.create_namespaced_service_account_token(
        "vramfit-agent", NS, {"spec": {"expirationSeconds": 600}}
    )
    with as_agent(agent_api, request.status.token) as api, pytest.raises(ApiError) as err:
        api.request("POST", "/apis/vramfit.io/v1alpha1/nodegpustates", nodegpustate(node))
    assert err.value.status == 403 and "no node-name claim" in err.value.message


def test_every_field_of_the_report_survives_the_api_server(
    custom: k8s.CustomObjectsApi, make_gpu_nodes: MakeGpuNodes
) -> None:
    """A report with every field set (MIG devices, pods, peers, bandwidths, nulls) reads back
    from the API server as written: the CRD's structural schema prunes none of it."""
    (node,) = make_gpu_nodes(1, gpus=2)
    state = NodeState(
        name=node,
        gpus=(
            GpuState(
                uuid="GPU-aaa", index=0, product="NVIDIA-H100-80GB-HBM3",
                total_bytes=80 * GIB, free_bytes=10 * GIB, used_bytes=70 * GIB,
                nvlink_peers=frozenset({"GPU-bbb"}), holder_pod_uid="pod-1",
                pod_memory=(PodMemory("pod-1", 69 * GIB), PodMemory("pod-2", GIB)),
                pci_bus_id="00000000:18:00.0", numa_node=0,
            ),
            GpuState(
                uuid="GPU-bbb", index=1, product="NVIDIA-A100-SXM4-40GB",
                total_bytes=40 * GIB, free_bytes=None, used_bytes=None, healthy=False,
                unhealthy_reason="XID 79: GPU has fallen off the bus", mig_enabled=True,
                nvlink_peers=frozenset({"GPU-aaa"}),
                mig_devices=(
                    MigDevice("MIG-1111", 1, 0, 20 * GIB, 5 * GIB, 15 * GIB),
                    MigDevice("MIG-2222", 2, None),
                ),
            ),
        ),
        observed_at=1_700_000_000.123456,
        lease_renewed_at=None,
        cached_models=(CachedModel("meta-llama/Llama-3.1-70B-Instruct", 141 * GIB),),
        local_disk_bytes_per_s=2.0 * GIB,
        remote_bytes_per_s=None,
    )  # fmt: skip
    group, version, plural = "vramfit.io", "v1alpha1", "nodegpustates"
    custom.create_cluster_custom_object(group, version, plural, nodegpustate(node))
    obj = custom.get_cluster_custom_object(group, version, plural, node)
    obj["status"] = dict(encode_status(state, driver_version="550.54"))
    custom.replace_cluster_custom_object_status(group, version, plural, node, obj)
    back = custom.get_cluster_custom_object_status(group, version, plural, node)["status"]
    assert back["gpus"][1]["migDevices"][0]["memory"]["freeBytes"] == 5 * GIB
    assert back["driverVersion"] == "550.54"
    assert decode_status(node, back, lease_renewed_at=None) == state
