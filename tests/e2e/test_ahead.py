"""End to end: nominating ahead of kube-scheduler's cycle (``--nominate-ahead``), live.

The extender runs under the shipped ServiceAccount with ``--nominate-ahead``, as shipped; a burst of GPU
pods lands on the simulated GPU nodes through the real kube-scheduler. The extender sets the
pods' nominations from its pod watch (the API server accepts its status patch), kube-scheduler
tries each nominated node first, every pod binds, and no GPU is booked twice.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from controlplane.harness import ControlPlane
from extender.kubeapi import KubeAPI, KubeError
from tests.e2e.bursts import Cluster, assert_no_double_booking, gpu_pod
from tests.e2e.world import SCHEDULER_SA, SYSTEM

pytestmark = pytest.mark.integration


def outcomes(metrics: str) -> dict[str, float]:
    pattern = r'vramfit_extender_nominations_ahead_total\{outcome="([a-z-]+)"\} ([0-9.e+]+)'
    return {m[1]: float(m[2]) for m in re.finditer(pattern, metrics)}


def test_a_burst_binds_through_nominations_set_ahead(cluster: Cluster, namespace: str) -> None:
    ahead = cluster
    assert "--nominate-ahead" in ahead.extender.args  # as shipped
    burst = ahead.burst(namespace, "chat", 12, expected=12, gpus=1, model_size="16Gi")
    with burst.watching():
        burst.scale()
        burst.wait_whole(180)
    assert not burst.worst, f"GPUs double-booked during the burst: {sorted(burst.worst)}"
    assert_no_double_booking(burst.pods(), ahead)
    seen = outcomes(ahead.extender.metrics())
    assert seen.get("failed", 0) == 0, seen
    assert seen.get("nominated", 0) >= 1, seen


def test_the_api_server_takes_the_nomination_and_its_withdrawal(
    deployed: ControlPlane, core_v1: k8s.CoreV1Api, namespace: str
) -> None:
    # Under the shipped ServiceAccount, as the extender runs: the nomination is a merge patch
    # of the pod's status on its resourceVersion, the withdrawal a JSON patch that tests the
    # node first.
    identity = deployed.service_account_identity(SYSTEM, SCHEDULER_SA, label="ahead-api")
    pod = gpu_pod("waiting", gpus=1, vram="20Gi")
    pod["spec"]["schedulerName"] = "nobody"  # no scheduler takes it
    created = core_v1.create_namespaced_pod(namespace, pod)
    rv = created.metadata.resource_version
    with k8s.ApiClient(configuration(identity.kubeconfig)) as client:
        api = KubeAPI(client)

        def nominated() -> str | None:
            read = core_v1.read_namespaced_pod_status("waiting", namespace)
            value: str | None = read.status.nominated_node_name
            return value

        with pytest.raises(KubeError) as stale:
            api.nominate_pod(namespace, "waiting", "gpu-a", str(int(rv) - 1))
        assert stale.value.status == 409
        api.nominate_pod(namespace, "waiting", "gpu-a", rv)
        assert nominated() == "gpu-a"
        with pytest.raises(KubeError) as elsewhere:
            api.withdraw_nomination(namespace, "waiting", "gpu-b")
        assert elsewhere.value.status == 422
        assert nominated() == "gpu-a"
        api.withdraw_nomination(namespace, "waiting", "gpu-a")
        assert nominated() is None
        with pytest.raises(KubeError) as gone:
            api.withdraw_nomination(namespace, "nobody-here", "gpu-a")
        assert gone.value.status == 404


def configuration(kubeconfig: Path) -> k8s.Configuration:
    config = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=config)
    return config
