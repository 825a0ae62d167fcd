"""deploy/'s reservation policy on the real API server: only the extender's ServiceAccount sets,
changes or removes ``vramfit.io/reservation``; and a patch that names a pod's UID reaches only
that pod, never another created since under the same name."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from controlplane.harness import ControlPlane
from controlplane.manifests import load_documents, server_side_apply
from controlplane.pytest_plugin import wait_for
from extender.kubeapi import KubeAPI, KubeError
from placement.demand import A_RESERVATION

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SYSTEM = "vramfit-system"
REFUSED = "only the vramfit extender (ServiceAccount vramfit-system/vramfit-scheduler) may set"


@pytest.fixture
def policy(control_plane: ControlPlane) -> ControlPlane:
    files = ["namespace.yaml", "scheduler-rbac.yaml", "reservation-admission-policy.yaml"]
    server_side_apply(control_plane.kubectl, load_documents([DEPLOY / f for f in files]))
    return control_plane


@contextlib.contextmanager
def as_token(plane: ControlPlane, token: str) -> Iterator[KubeAPI]:
    configuration = k8s.Configuration()
    configuration.host = plane.server
    configuration.ssl_ca_cert = str(plane.ca_file)
    configuration.api_key = {"authorization": token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    with k8s.ApiClient(configuration) as api:
        yield KubeAPI(api)


def token_of(core_v1: k8s.CoreV1Api, namespace: str, account: str) -> str:
    answer = core_v1.create_namespaced_service_account_token(
        account, namespace, {"spec": {"expirationSeconds": 3600}}
    )
    token: str = answer.status.token
    return token


@pytest.fixture
def author(policy: ControlPlane, core_v1: k8s.CoreV1Api, namespace: str) -> Iterator[KubeAPI]:
    """A pod author: a ServiceAccount with the built-in `edit` role in its namespace."""
    core_v1.create_namespaced_service_account(namespace, {"metadata": {"name": "author"}})
    k8s.RbacAuthorizationV1Api(core_v1.api_client).create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "author-edit"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "edit",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "author", "namespace": namespace}],
        },
    )
    with as_token(policy, token_of(core_v1, namespace, "author")) as api:
        yield api


@pytest.fixture
def extender(policy: ControlPlane, core_v1: k8s.CoreV1Api) -> Iterator[KubeAPI]:
    """The extender's own identity: the vramfit-scheduler ServiceAccount."""
    with as_token(policy, token_of(core_v1, SYSTEM, "vramfit-scheduler")) as api:
        yield api


def pod(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "schedulerName": "vramfit",
            "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
        },
    }


def create(api: KubeAPI, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    return api._json("create pod", "POST", f"/api/v1/namespaces/{namespace}/pods", body=body)


def annotate(api: KubeAPI, namespace: str, name: str, value: str | None, **meta: Any) -> Any:
    patch = {"metadata": {"annotations": {A_RESERVATION: value}, **meta}}
    return api.patch_pod(namespace, name, patch)


def refused(call: Any) -> str:
    with pytest.raises(KubeError) as err:
        call()
    assert err.value.status in (403, 422), err.value
    return err.value.message


def test_only_the_extender_writes_the_reservation_annotation(
    author: KubeAPI, extender: KubeAPI, namespace: str
) -> None:
    """Regression: any pod author could set vramfit.io/reservation, and a forged one held GPUs
    for days."""
    forged = '{"v":1,"node":"n0","gpus":["GPU-a"],"bytesPerGpu":1,"model":"","at":"2030-01-01T00:00:00Z"}'

    # The policy takes effect a moment after it is created.
    def policy_refuses() -> bool:
        try:
            create(author, namespace, pod(f"probe-{secrets.token_hex(3)}", {A_RESERVATION: forged}))
        except KubeError as exc:
            return exc.status == 403 and REFUSED in exc.message
        return False

    wait_for("the reservation policy to refuse a pod author", policy_refuses)
    name = "p"
    create(author, namespace, pod(name, {"team": "ml"}))
    assert REFUSED in refused(lambda: annotate(author, namespace, name, forged))
    # The extender sets it; the author may change other annotations but not it, nor remove it.
    annotate(extender, namespace, name, forged)
    assert REFUSED in refused(lambda: annotate(author, namespace, name, forged.replace("n0", "n1")))
    assert REFUSED in refused(lambda: annotate(author, namespace, name, None))
    author.patch_pod(namespace, name, {"metadata": {"annotations": {"team": "infra"}}})
    assert extender.get_pod(namespace, name)["metadata"]["annotations"][A_RESERVATION] == forged
    annotate(extender, namespace, name, None)


def test_a_patch_naming_the_uid_never_reaches_another_pod_of_the_name(
    extender: KubeAPI, core_v1: k8s.CoreV1Api, namespace: str
) -> None:
    """Regression: the requeue patch named a pod by namespace and name only."""
    created = core_v1.create_namespaced_pod(namespace, pod("same-name"))
    uid = created.metadata.uid
    core_v1.delete_namespaced_pod("same-name", namespace, grace_period_seconds=0)
    wait_for(
        "the pod to go",
        lambda: (
            not core_v1.list_namespaced_pod(
                namespace, field_selector="metadata.name=same-name"
            ).items
        ),
    )
    core_v1.create_namespaced_pod(namespace, pod("same-name"))
    message = refused(
        lambda: extender.patch_pod(
            namespace, "same-name", {"metadata": {"uid": uid, "annotations": {"x": "y"}}}
        )
    )
    assert "uid" in message
    fresh = core_v1.read_namespaced_pod("same-name", namespace)
    assert "x" not in (fresh.metadata.annotations or {})
