"""End to end: multi-node groups placed whole by the real kube-scheduler and the extender.

Each group is a two-pod LeaderWorkerSet replica (a leader and one worker, 8 GPUs each at 70 GiB
per GPU, so one H100 node per pod), made as plain pods with the labels and the size annotation
LWS's controller and webhook put on them: LWS's own controller is not part of the test control
plane. Single-node pods of the same size compete for the same H100 nodes, more than fit.

While the burst lands, a sampler reads every pod every 0.3 s: a group with some members bound
and others not must become whole within seconds (the extender reserved the rest when it placed
the first), never hold its GPUs while it waits; the burst settles with no node idle that a
pending pod could use (no two groups deadlocked, each holding half), and every group binds once
pods are deleted to free capacity.

The same burst runs again with kube-scheduler 1.37's own gang scheduling switched on: a second
control plane with the ``GenericWorkload`` feature gate (kube-apiserver, controller-manager,
scheduler) and ``scheduling.k8s.io/v1beta1`` served; each group gets a PodGroup (gang,
``minCount: 2``) and its pods name it in ``spec.schedulingGroup``.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client as k8s

from controlplane.binaries import locate
from controlplane.harness import ControlPlane
from controlplane.pytest_plugin import wait_for
from placement.membership import LWS_GROUP_INDEX, LWS_NAME, LWS_SIZE, LWS_WORKER_INDEX
from tests.e2e.bursts import Cluster, assert_no_double_booking, gpu_pod, is_bound
from tests.e2e.world import (
    SCHEDULER_SA,
    SYSTEM,
    api_clients,
    apply_deploy,
    make_pool,
    shipped_scheduler_config,
    start_extender,
)

pytestmark = pytest.mark.integration

PODGROUPS = ("scheduling.k8s.io", "v1beta1", "podgroups")
HALF_PLACED_LIMIT_S = 15.0
"""How long a group may have some members bound and others not: the time its remaining
members take to pass their (reserved) filter and bind, never a wait for capacity."""


def group_pods(name: str, *, pod_group: str = "") -> list[dict[str, Any]]:
    """A two-pod LWS replica: ``<name>-0`` (leader) and ``<name>-0-1`` (worker)."""
    pods = []
    for worker in (0, 1):
        pod = gpu_pod(f"{name}-0" if worker == 0 else f"{name}-0-1", gpus=8, vram="70Gi")
        pod["metadata"]["labels"] |= {
            LWS_NAME: name,
            LWS_GROUP_INDEX: "0",
            LWS_WORKER_INDEX: str(worker),
        }
        pod["metadata"]["annotations"][LWS_SIZE] = "2"
        if pod_group:
            pod["spec"]["schedulingGroup"] = {"podGroupName": pod_group}
        pods.append(pod)
    return pods


def group_of(pod: dict[str, Any]) -> str:
    return str((pod["metadata"].get("labels") or {}).get(LWS_NAME, ""))


@dataclass
class Watch:
    """Samples a namespace's pods in the background: how long each group stayed half placed,
    which groups were ever whole, and GPUs ever double-booked."""

    cluster: Cluster
    namespace: str
    half_since: dict[str, float] = field(default_factory=dict)
    longest_half: dict[str, float] = field(default_factory=dict)
    whole: set[str] = field(default_factory=set)
    double_booked: list[str] = field(default_factory=list)
    errors: int = 0

    def sample(self) -> list[dict[str, Any]]:
        pods = [
            p
            for p in self.cluster.pods(self.namespace)
            if not p["metadata"].get("deletionTimestamp")
        ]
        now = time.monotonic()
        bound: dict[str, list[bool]] = {}
        for p in pods:
            if group_of(p):
                bound.setdefault(group_of(p), []).append(is_bound(p))
        for group, states in bound.items():
            if len(states) == 2 and all(states):
                self.whole.add(group)
            if any(states) and not all(states):
                since = self.half_since.setdefault(group, now)
                self.longest_half[group] = max(self.longest_half.get(group, 0.0), now - since)
            else:
                self.half_since.pop(group, None)
        try:
            assert_no_double_booking(pods, self.cluster)
        except AssertionError as exc:
            self.double_booked.append(str(exc))
        return pods

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(0.3):
                try:
                    self.sample()
                except Exception:  # an API hiccup: count it, sample again
                    self.errors += 1

        thread = threading.Thread(target=run, name="group-watch", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=10)

    def check(self) -> None:
        assert not self.double_booked, self.double_booked[:3]
        slow = {g: round(s, 1) for g, s in self.longest_half.items() if s > HALF_PLACED_LIMIT_S}
        assert not slow, f"groups half placed for longer than {HALF_PLACED_LIMIT_S}s: {slow}"


def settled(watch: Watch, nodes: list[str]) -> dict[str, Any] | None:
    """The burst's state once no pending pod could use a free node and no group is half placed
    (``None`` before)."""
    pods = watch.sample()
    busy = {p["spec"]["nodeName"] for p in pods if is_bound(p)}
    free = len([n for n in nodes if n not in busy])
    groups: dict[str, int] = {}
    singles_pending = 0
    for p in pods:
        if group_of(p):
            groups[group_of(p)] = groups.get(group_of(p), 0) + is_bound(p)
        elif not is_bound(p):
            singles_pending += 1
    if any(n == 1 for n in groups.values()):
        return None  # a group is half placed: not settled
    groups_pending = sum(1 for n in groups.values() if n == 0)
    if (singles_pending and free) or (groups_pending and free >= 2):
        return None  # a pending pod could use a free node: not settled (or deadlocked)
    return {"free": free, "whole": sorted(g for g, n in groups.items() if n == 2)}


def wait_settled(watch: Watch, nodes: list[str], timeout: float = 120) -> dict[str, Any]:
    """Until ``settled`` holds for 3 s in a row."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            first = wait_for(
                "the burst to settle with no usable node idle and no group half placed",
                lambda: settled(watch, nodes),
                timeout=max(1.0, deadline - time.monotonic()),
                interval=0.3,
            )
        except AssertionError:
            watch.check()  # the groups that stayed half placed, when that is why
            raise
        time.sleep(3)
        again = settled(watch, nodes)
        if again == first:
            return again


def delete(cluster: Cluster, namespace: str, names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(k8s.ApiException):
            cluster.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)


def absent(watch: Watch, group: str) -> bool:
    return not any(group_of(p) == group for p in watch.sample())


def burst(cluster: Cluster, namespace: str, *, groups: int, singles: int, gang: bool) -> None:
    """Groups and single pods, more than the H100 nodes hold; then capacity freed until every
    group has been whole."""
    h100 = cluster.pool.h100
    names = [f"g{i}" for i in range(groups)]
    pods: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        if gang:
            body = {
                "apiVersion": "scheduling.k8s.io/v1beta1",
                "kind": "PodGroup",
                "metadata": {"name": f"pg-{name}"},
                "spec": {"schedulingPolicy": {"gang": {"minCount": 2}}},
            }
            cluster.custom.create_namespaced_custom_object(
                *PODGROUPS[:2], namespace, PODGROUPS[2], body
            )
        pods += group_pods(name, pod_group=f"pg-{name}" if gang else "")
        if i < singles:
            pods.append(gpu_pod(f"solo-{i}", gpus=8, vram="70Gi"))
    pods += [gpu_pod(f"solo-{i}", gpus=8, vram="70Gi") for i in range(groups, singles)]
    watch = Watch(cluster, namespace)
    with watch.running():
        cluster.create(namespace, pods)
        wait_settled(watch, h100)
        # Free capacity: the single pods first, then each whole group once every group that
        # was waiting got its turn.
        delete(cluster, namespace, [f"solo-{i}" for i in range(singles)])
        while watch.whole != set(names):
            state = wait_settled(watch, h100)
            done = list(state["whole"])
            pending = set(names) - watch.whole
            if not pending:
                break
            assert done, f"no group is whole and {sorted(pending)} wait: {state}"
            gone = done[0]
            delete(cluster, namespace, [f"{gone}-0", f"{gone}-0-1"])
            wait_for(f"group {gone} to go", functools.partial(absent, watch, gone), timeout=30)
    watch.check()
    assert watch.whole == set(names)


def test_groups_are_never_half_placed_and_all_bind_once_capacity_exists(
    cluster: Cluster, namespace: str
) -> None:
    burst(cluster, namespace, groups=3, singles=3, gang=False)


# ----- the same with kube-scheduler 1.37's gang scheduling -------------------------------------


@pytest.fixture(scope="module")
def gang_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A control plane of its own with gang scheduling on, deploy/ applied, two H100 and two
    A100 nodes with agents, the extender and the vramfit kube-scheduler."""
    plane = ControlPlane(
        locate(),
        tmp_path_factory.mktemp("gang-plane"),
        feature_gates={"GenericWorkload": True},
        runtime_config={"scheduling.k8s.io/v1beta1": "true"},
    )
    with plane:
        plane.start_controller_manager()
        apply_deploy(plane)
        plane.start_scheduler({}, name="scheduler-default-gang")
        pool = make_pool(plane, tmp_path_factory.mktemp("gang-pool"), per_product=3)
        extender = start_extender(plane, "gang-extender")
        identity = plane.service_account_identity(SYSTEM, SCHEDULER_SA, label="gang-scheduler")
        plane.start_scheduler(
            shipped_scheduler_config(extender.url),
            name="scheduler-vramfit-gang",
            kubeconfig=identity.kubeconfig,
        )
        with api_clients(plane) as (core, custom):
            try:
                yield Cluster(pool, extender, core, custom)
            finally:
                pool.stop(core)


def test_gang_scheduling_on_groups_bind_whole(gang_cluster: Cluster) -> None:
    core = gang_cluster.core
    namespace = "gangs"
    core.create_namespace({"metadata": {"name": namespace}})
    try:
        burst(gang_cluster, namespace, groups=3, singles=2, gang=True)
        conditions = {
            pg["metadata"]["name"]: {
                c["type"]: c["status"] for c in (pg.get("status") or {}).get("conditions", [])
            }
            for pg in gang_cluster.custom.list_namespaced_custom_object(
                *PODGROUPS[:2], namespace, PODGROUPS[2]
            )["items"]
        }
        # kube-scheduler placed each group in its own pod-group cycle (gang on, not pod by pod).
        assert set(conditions) == {"pg-g0", "pg-g1", "pg-g2"}
        assert all(c.get("PodGroupInitiallyScheduled") == "True" for c in conditions.values()), (
            conditions
        )
    finally:
        core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
        core.delete_namespace(namespace)
