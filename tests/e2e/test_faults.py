"""Faults in the middle of a burst: no GPU is ever double-booked and no pod is lost.

Each test is one trial of one fault (``VRAMFIT_FAULT_TRIALS`` sets how many, see ``faults``):
a KServe predictor Deployment is scaled up, the fault strikes once pods start binding, and the
burst must end whole (every pod the GPUs hold bound, the rest pending, none refused by the
kubelet or missing) with no GPU ever seen double-booked on the way. Each trial records the
seconds from the end of the fault until the burst was whole.

- the extender SIGKILLed and started again;
- kube-apiserver restarted (etcd compacted meanwhile) under the running agents and extender:
  the extender's readiness says it lost the API server while it lasts, its watches get 410
  Gone and list again, and placement resumes;
- two kube-scheduler + extender replicas with leader election; the leader (scheduler and its
  extender) SIGKILLed; the standby takes the Lease and finishes the burst;
- a node deleted under its running agent and created again: kube-controller-manager's pod GC
  removes the pods bound to it (and the agent DaemonSet's pod, so the agent's bound token dies
  with it), the Deployment makes new pods, and once the node is back its agent, with a token
  bound to the DaemonSet's new pod, renews its Lease and the node takes pods again.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from controlplane.harness import ControlPlane, SchedulerProcess
from controlplane.pytest_plugin import wait_for
from placement.nodegpustate import GROUP, LEASE_PREFIX, PLURAL, VERSION, parse_time
from tests.e2e.bursts import Burst, Cluster
from tests.e2e.faults import FaultRecord, Trial
from tests.e2e.world import (
    SCHEDULER_SA,
    SYSTEM,
    Extender,
    agent_pod,
    shipped_scheduler_config,
    start_extender,
)

pytestmark = pytest.mark.integration

SETTLE_S = 240.0
"""How long a burst may take to become whole after a fault (a slow shared machine included)."""


def per_trial(
    record: FaultRecord, burst: Burst, started: float, whole_at: float, detail: str
) -> None:
    trial = Trial(
        double_booked=len(burst.worst),
        lost=burst.lost(),
        recovery_s=round(whole_at - started, 2),
        detail=detail,
    )
    record.trials.append(trial)
    assert not burst.worst, f"GPUs double-booked during the burst: {sorted(burst.worst)}"
    assert trial.lost == 0, f"{trial.lost} pods of the burst lost"


# ----- the extender killed ---------------------------------------------------------------------


@pytest.mark.fault("extender-sigkill")
def test_extender_sigkill_mid_burst(
    cluster: Cluster, namespace: str, fault_record: Callable[[str], FaultRecord], trial: int
) -> None:
    # 20 pods of 2 GPUs at 70 GiB each: the 4 H100 nodes hold 16.
    burst = cluster.burst(namespace, f"kill-{trial}", 20, expected=16)
    with burst.watching():
        burst.scale()
        wait_for("the burst to start", burst.bound, interval=0.02)
        cluster.extender.kill()
        at_kill = len(burst.bound())
        time.sleep(2)  # kube-scheduler keeps trying, and failing, while the extender is gone
        started = time.monotonic()
        cluster.extender.start()
        whole_at = burst.wait_whole(SETTLE_S)
    per_trial(
        fault_record("extender-sigkill"), burst, started, whole_at, f"{at_kill} bound at the kill"
    )
    assert at_kill < 16, "the kill came after the burst"


# ----- kube-apiserver restarted ----------------------------------------------------------------


def watch_restarts(extender: Extender) -> dict[tuple[str, str], int]:
    """(resource, cause) -> watches the extender restarted (cause ``expired``: 410 Gone)."""
    found: dict[tuple[str, str], int] = {}
    for line in extender.metrics().splitlines():
        if line.startswith("vramfit_extender_watch_restarts_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            found[labels["resource"], labels["cause"]] = int(float(line.rsplit(" ", 1)[1]))
    return found


def restarted(before: dict[tuple[str, str], int], after: dict[tuple[str, str], int]) -> set[str]:
    """Resources with a watch restarted between the two readings."""
    return {
        resource for (resource, cause), n in after.items() if n > before.get((resource, cause), 0)
    }


@pytest.mark.fault("apiserver-restart")
def test_apiserver_restart_mid_burst(
    cluster: Cluster,
    namespace: str,
    control_plane: ControlPlane,
    fault_record: Callable[[str], FaultRecord],
    trial: int,
) -> None:
    burst = cluster.burst(namespace, f"restart-{trial}", 20, expected=16)
    restarts_before = watch_restarts(cluster.extender)
    seen_down: list[tuple[int, str]] = []

    def while_down() -> None:
        """Until the extender says it is not ready (or 20 s): the outage lasts that long."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status = cluster.extender.readyz()
            seen_down.append(status)
            if status[0] == 503:
                return
            time.sleep(0.2)

    with burst.watching():
        burst.scale()
        wait_for("the burst to start", burst.bound, interval=0.02)
        at_fault = len(burst.bound())
        restarted_at = time.time()
        control_plane.restart_apiserver(while_down)
        started = time.monotonic()
        wait_for("the extender ready again", lambda: cluster.extender.readyz()[0] == 200, 120)
        ready_s = time.monotonic() - started
        whole_at = burst.wait_whole(SETTLE_S)
    restarts = watch_restarts(cluster.extender)
    gone = sum(n - restarts_before.get(k, 0) for k, n in restarts.items() if k[1] == "expired")
    detail = (
        f"{at_fault} bound at the restart; extender ready {ready_s:.1f}s after the API server; "
        f"{gone} watches told 410 Gone"
    )
    per_trial(fault_record("apiserver-restart"), burst, started, whole_at, detail)
    assert seen_down and seen_down[-1][0] == 503, (
        f"the extender's /readyz never said the API server was gone: {seen_down[-3:]}"
    )
    assert "lost the watch" in seen_down[-1][1]
    # Every watch broke with the API server and was listed again (after a 410 Gone, or at
    # once after an error the new API server gave while it started).
    assert {"pods", "nodegpustates", "leases"} <= restarted(restarts_before, restarts), restarts
    assert at_fault < 16, "the API server went down after the burst"
    for node in cluster.pool.nodes:  # every agent writes again
        wait_for(
            f"{node}'s Lease renewed after the restart",
            functools.partial(_renewed_after, cluster, node, restarted_at),
            timeout=60,
        )


def _renewed_after(cluster: Cluster, node: str, at: float) -> bool:
    lease = k8s.CoordinationV1Api(cluster.core.api_client).read_namespaced_lease(
        f"{LEASE_PREFIX}{node}", SYSTEM
    )
    return bool(lease.spec.renew_time and lease.spec.renew_time.timestamp() > at)


# ----- the leader killed ---------------------------------------------------------------------

HA_PROFILE = "vramfit-ha"
ELECTION_LEASE = "vramfit-scheduler"


def ha_config(extender_url: str) -> dict[str, Any]:
    """The shipped configuration (leader election on, its own Lease) under a profile of its own,
    so this pair never competes with the package's vramfit scheduler for a pod."""
    config = shipped_scheduler_config(extender_url)
    config["profiles"] = [{"schedulerName": HA_PROFILE}]
    return config


def lease_holder(core: k8s.CoreV1Api) -> str:
    try:
        lease = k8s.CoordinationV1Api(core.api_client).read_namespaced_lease(ELECTION_LEASE, SYSTEM)
    except k8s.ApiException:
        return ""
    return str(lease.spec.holder_identity or "")


class Replica:
    """One scheduler pod: kube-scheduler and its extender sidecar, each its own process."""

    def __init__(self, plane: ControlPlane, name: str) -> None:
        self.extender = start_extender(plane, label=name)
        identity = plane.service_account_identity(SYSTEM, SCHEDULER_SA, label=name)
        self.scheduler: SchedulerProcess = plane.start_scheduler(
            ha_config(self.extender.url),
            name=f"scheduler-{name}-{self.extender.port}",
            leader_elect=True,
            kubeconfig=identity.kubeconfig,
        )

    def kill(self) -> None:
        os.kill(self.scheduler.pid, signal.SIGKILL)
        self.extender.kill()

    def stop(self) -> None:
        self.scheduler.stop()
        self.extender.stop()


@pytest.fixture
def replicas(control_plane: ControlPlane, cluster: Cluster) -> Iterator[tuple[Replica, Replica]]:
    """Two replicas; the first holds the election Lease before the second starts."""
    started: list[Replica] = []
    try:
        started.append(Replica(control_plane, "ha-a"))
        wait_for("a leader", lambda: lease_holder(cluster.core), timeout=60)
        started.append(Replica(control_plane, "ha-b"))
        yield started[0], started[1]
    finally:
        for replica in started:
            replica.stop()
        k8s.CoordinationV1Api(cluster.core.api_client).delete_namespaced_lease(
            ELECTION_LEASE, SYSTEM
        )


@pytest.mark.fault("leader-failover")
def test_leader_killed_mid_burst(
    cluster: Cluster,
    namespace: str,
    replicas: tuple[Replica, Replica],
    fault_record: Callable[[str], FaultRecord],
    trial: int,
) -> None:
    leader, standby = replicas
    first_holder = lease_holder(cluster.core)
    burst = cluster.burst(namespace, f"ha-{trial}", 20, expected=16, scheduler=HA_PROFILE)
    with burst.watching():
        burst.scale()
        wait_for("the burst to start", burst.bound, interval=0.02)
        leader.kill()
        at_kill = len(burst.bound())
        started = time.monotonic()
        whole_at = burst.wait_whole(SETTLE_S)
    new_holder = lease_holder(cluster.core)
    per_trial(
        fault_record("leader-failover"), burst, started, whole_at, f"{at_kill} bound at the kill"
    )
    assert new_holder and new_holder != first_holder, "the standby never took the Lease"
    assert standby.scheduler.running
    assert at_kill < 16, "the kill came after the burst"


# ----- a node deleted and created again --------------------------------------------------------


def _bound_to(core: k8s.CoreV1Api, node: str) -> list[str]:
    pods = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
    return [f"{p.metadata.namespace}/{p.metadata.name}" for p in pods]


@pytest.mark.fault("node-recreate")
def test_node_deleted_and_recreated_under_its_agent(
    cluster: Cluster, namespace: str, fault_record: Callable[[str], FaultRecord], trial: int
) -> None:
    pool, core = cluster.pool, cluster.core
    node = pool.h100[-1]
    agent = pool.agents[node]
    old_agent_pod = agent_pod(core, node)
    assert old_agent_pod is not None
    # As many pods as the H100 nodes hold: while the node is gone, a quarter of them wait.
    burst = cluster.burst(namespace, f"node-{trial}", 16, expected=16)
    with burst.watching():
        burst.scale()
        wait_for("the burst to start", burst.bound, interval=0.02)
        core.delete_node(node)
        # kube-controller-manager's pod GC deletes pods whose node is gone for 40 s.
        gone = wait_for(
            f"the pods bound to {node} removed",
            lambda: not _bound_to(core, node) or None,
            timeout=150,
            interval=1.0,
        )
        assert gone is True
        assert agent.process.running, "the agent must outlive its node object"
        pool.create_node(core, node)
        started = time.monotonic()
        recreated_at = time.time()
        whole_at = burst.wait_whole(SETTLE_S)
        # The agent's token died with its DaemonSet pod; it writes again once it reads the
        # token bound to the DaemonSet's new pod (the kubelet stand-in never stopped).
        back_at = wait_for(
            f"{node}'s agent writing again",
            functools.partial(_writing_since, cluster, node, recreated_at),
            timeout=150,
            interval=1.0,
        )
    on_node = [p for p in burst.bound() if p["spec"]["nodeName"] == node]
    per_trial(
        fault_record("node-recreate"),
        burst,
        started,
        max(whole_at, back_at),
        f"{len(on_node)} pods on the recreated node; agent back after {back_at - started:.1f}s",
    )
    assert on_node, "the recreated node never took a pod"
    new_agent_pod = agent_pod(core, node)
    assert new_agent_pod is not None
    assert new_agent_pod.metadata.uid != old_agent_pod.metadata.uid
    assert agent.identity.bound_pod_uid == new_agent_pod.metadata.uid


def _writing_since(cluster: Cluster, node: str, at: float) -> float | None:
    """When ``node``'s Lease and report were both written after ``at``: now, or ``None``."""
    lease = k8s.CoordinationV1Api(cluster.core.api_client).read_namespaced_lease(
        f"{LEASE_PREFIX}{node}", SYSTEM
    )
    report = cluster.custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, node)
    renewed = lease.spec.renew_time is not None and lease.spec.renew_time.timestamp() > at
    observed = parse_time(report["status"]["observedAt"]) > at
    return time.monotonic() if renewed and observed else None
