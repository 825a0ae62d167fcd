"""The identities the harness hands out, and its API server restart, against the real plane.

- A kubelet identity is ``system:node:<name>``: the Node authorizer and NodeRestriction let it
  write the status of its own node's pods and of no other pod, and nothing of vramfit's.
- A ServiceAccount identity authenticates as that account; bound to a Pod on a node, its token
  carries the node's name; renewing it rewrites the token file a running client reads.
- ``restart_apiserver`` brings the API server back on the same port, after a compaction that
  leaves no old resourceVersion to watch from (410 Gone).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from controlplane.harness import ControlPlane
from controlplane.identities import kubeconfig_for, service_account_username
from controlplane.pytest_plugin import MakeGpuNodes, wait_for

pytestmark = pytest.mark.integration


def pod_on(node: str, name: str, service_account: str = "default") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "serviceAccountName": service_account,
            "containers": [{"name": "c", "image": "registry.invalid/c:1"}],
        },
    }


def whoami(kubeconfig: str) -> k8s_client.V1UserInfo:
    with k8s_config.new_client_from_config(config_file=kubeconfig) as api:
        review = k8s_client.AuthenticationV1Api(api).create_self_subject_review({})
    info: k8s_client.V1UserInfo = review.status.user_info
    return info


def _status_patch(core: k8s_client.CoreV1Api, namespace: str, pod: str) -> None:
    core.patch_namespaced_pod_status(
        pod, namespace, {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    )


def _create_node_report(core: k8s_client.CoreV1Api, _namespace: str, node: str) -> None:
    k8s_client.CustomObjectsApi(core.api_client).create_cluster_custom_object(
        "vramfit.io",
        "v1alpha1",
        "nodegpustates",
        {"apiVersion": "vramfit.io/v1alpha1", "kind": "NodeGPUState", "metadata": {"name": node}},
    )


@pytest.mark.parametrize(
    ("act", "target", "allowed"),
    [
        pytest.param(_status_patch, "own-pod", True, id="status-of-its-own-pod"),
        pytest.param(_status_patch, "other-pod", False, id="status-of-another-nodes-pod"),
        pytest.param(_create_node_report, "own-node", False, id="no-nodegpustate"),
    ],
)
def test_a_kubelet_identity_is_confined_to_its_node(
    *,
    control_plane: ControlPlane,
    core_v1: k8s_client.CoreV1Api,
    namespace: str,
    make_gpu_nodes: MakeGpuNodes,
    act: Callable[[k8s_client.CoreV1Api, str, str], None],
    target: str,
    allowed: bool,
) -> None:
    own, other = make_gpu_nodes(2, gpus=1)
    core_v1.create_namespaced_pod(namespace, pod_on(own, "own-pod"))
    core_v1.create_namespaced_pod(namespace, pod_on(other, "other-pod"))
    kubeconfig = str(control_plane.kubelet_kubeconfig(own))
    user = whoami(kubeconfig)
    assert (user.username, user.groups) == (
        f"system:node:{own}",
        ["system:nodes", "system:authenticated"],
    )
    with k8s_config.new_client_from_config(config_file=kubeconfig) as api:
        as_kubelet = k8s_client.CoreV1Api(api)
        name = {"own-node": own}.get(target, target)
        if allowed:
            act(as_kubelet, namespace, name)
            return
        with pytest.raises(k8s_client.ApiException) as err:
            act(as_kubelet, namespace, name)
        assert err.value.status == 403


def test_a_bound_service_account_token_names_its_node_and_renews_in_place(
    control_plane: ControlPlane,
    core_v1: k8s_client.CoreV1Api,
    namespace: str,
    make_gpu_nodes: MakeGpuNodes,
) -> None:
    (node,) = make_gpu_nodes(1, gpus=1)
    account = f"sa-{secrets.token_hex(3)}"
    core_v1.create_namespaced_service_account(namespace, {"metadata": {"name": account}})
    pod = core_v1.create_namespaced_pod(namespace, pod_on(node, "holder", account))
    identity = control_plane.service_account_identity(namespace, account, pod=pod)
    assert identity.username == service_account_username(namespace, account)
    user = whoami(str(identity.kubeconfig))
    assert user.username == identity.username
    assert user.extra["authentication.kubernetes.io/node-name"] == [node]
    assert user.extra["authentication.kubernetes.io/pod-name"] == ["holder"]

    first = identity.token_file.read_text()
    identity.renew()  # now bound to nothing: no node name
    assert identity.token_file.read_text() != first
    assert "authentication.kubernetes.io/node-name" not in (
        whoami(str(identity.kubeconfig)).extra or {}
    )


def test_kubeconfig_for_names_one_cluster_user_and_context(tmp_path: Any) -> None:
    document = kubeconfig_for("https://127.0.0.1:1", tmp_path / "ca.crt", "me", {"token": "t"})
    assert document["current-context"] == "me"
    assert document["users"] == [{"name": "me", "user": {"token": "t"}}]
    assert document["contexts"][0]["context"] == {"cluster": "vramfit", "user": "me"}


def test_restart_apiserver_keeps_the_port_and_data_and_expires_old_watches(
    control_plane: ControlPlane, core_v1: k8s_client.CoreV1Api, namespace: str
) -> None:
    core_v1.create_namespaced_config_map(namespace, {"metadata": {"name": "before"}})
    old_rv = core_v1.list_namespaced_config_map(namespace).metadata.resource_version
    port = control_plane.api_port
    probed: list[bool] = []

    def while_down() -> None:
        try:
            core_v1.list_namespaced_config_map(namespace, _request_timeout=2)
        except Exception:  # any failure to connect is the point
            probed.append(True)
        else:
            probed.append(False)

    waited = control_plane.restart_apiserver(while_down)
    assert probed == [True], "the API server answered while it was down"
    assert control_plane.api_port == port and waited > 0
    wait_for(
        "the config map back",
        lambda: (
            "before"
            in {c.metadata.name for c in core_v1.list_namespaced_config_map(namespace).items}
        ),
    )
    assert watch_status(core_v1, namespace, old_rv) == 410


def watch_status(core: k8s_client.CoreV1Api, namespace: str, rv: str) -> int:
    """The status a watch from ``rv`` ends with: the HTTP status, or the code of an ERROR
    event (the watch cache answers a resourceVersion too old with one)."""
    try:
        response = core.list_namespaced_config_map(
            namespace, watch=True, resource_version=rv, timeout_seconds=3, _preload_content=False
        )
    except k8s_client.ApiException as exc:
        return int(exc.status)
    first = json.loads(response.data.splitlines()[0])
    return int(first["object"]["code"]) if first["type"] == "ERROR" else 200
