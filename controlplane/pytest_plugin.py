"""pytest fixtures over the real control plane, loaded by ``tests/conftest.py``.

- ``control_plane`` (session): one etcd + kube-apiserver + kube-controller-manager for the
  whole run. The binaries are
  found as ``controlplane.binaries`` describes; a missing one is an error, never a skip
  (``make test`` builds them first).
- ``namespace``: a fresh namespace per test; its pods are force-deleted afterwards, so a pod
  bound to a fake node never holds that node's GPUs in a later test.
- ``start_scheduler``: starts kube-scheduler from a ``KubeSchedulerConfiguration`` dict and
  stops it after the test.
- ``make_gpu_nodes``: creates Ready fake GPU nodes with unique names and deletes them after the
  test.

When a test that uses the control plane fails, the end of every control-plane log is added to
its report.

``wait_for`` is how these tests wait for the cluster to get somewhere: it polls a probe until
the probe's answer is true, and on timeout fails with the last answer (or exception) it got.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any, Protocol, TypeVar

import pytest
from kubernetes import client as k8s_client

from controlplane.binaries import BinariesError, locate
from controlplane.harness import ControlPlane, SchedulerProcess
from controlplane.nodes import MIB, GpuNode, create_nodes, delete_nodes
from placement.quantity import parse_bytes

_PLANE_KEY = pytest.StashKey[ControlPlane]()
LOG_TAIL_LINES = 40
WAIT_S = 60.0

T = TypeVar("T")


class StartScheduler(Protocol):
    def __call__(
        self, config: Mapping[str, Any] | None = None, *, name: str | None = None
    ) -> SchedulerProcess: ...


class MakeGpuNodes(Protocol):
    def __call__(
        self,
        count: int = 1,
        *,
        gpus: int = 8,
        product: str = "NVIDIA-H100-80GB-HBM3",
        memory_per_gpu: str = "80Gi",
        prefix: str = "gpu",
        labels: Mapping[str, str] | None = None,
    ) -> list[str]: ...


@pytest.fixture(scope="session")
def control_plane(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager for the whole test run."""
    try:
        binaries = locate()
    except BinariesError as exc:
        pytest.fail(f"control plane unavailable: {exc}", pytrace=False)
    plane = ControlPlane(binaries, tmp_path_factory.mktemp("control-plane"))
    request.config.stash[_PLANE_KEY] = plane
    try:
        plane.start()
        plane.start_controller_manager()
        yield plane
    finally:
        plane.stop()
        del request.config.stash[_PLANE_KEY]


@pytest.fixture
def core_v1(control_plane: ControlPlane) -> Iterator[k8s_client.CoreV1Api]:
    """A CoreV1Api on the test control plane (its connection pool closed afterwards)."""
    with control_plane.api_client() as api:
        yield k8s_client.CoreV1Api(api)


@pytest.fixture
def namespace(core_v1: k8s_client.CoreV1Api) -> Iterator[str]:
    """A namespace of its own for each test."""
    name = f"t-{secrets.token_hex(4)}"
    core_v1.create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        # The controllers that own pods go first, so none is created again; then the pods,
        # at once: with no kubelet to confirm a graceful deletion, a bound pod would keep
        # counting against its node's resources in every scheduler.
        apps = k8s_client.AppsV1Api(core_v1.api_client)
        for delete in (
            apps.delete_collection_namespaced_deployment,
            apps.delete_collection_namespaced_stateful_set,
            apps.delete_collection_namespaced_replica_set,
            k8s_client.BatchV1Api(core_v1.api_client).delete_collection_namespaced_job,
        ):
            delete(name, propagation_policy="Orphan")
        core_v1.delete_collection_namespaced_pod(name, grace_period_seconds=0)
        core_v1.delete_namespace(name)


@pytest.fixture
def start_scheduler(control_plane: ControlPlane) -> Iterator[StartScheduler]:
    """Factory: start kube-scheduler with a configuration; stopped after the test."""
    started: list[SchedulerProcess] = []

    def start(
        config: Mapping[str, Any] | None = None, *, name: str | None = None
    ) -> SchedulerProcess:
        scheduler = control_plane.start_scheduler(config, name=name)
        started.append(scheduler)
        return scheduler

    try:
        yield start
    finally:
        for scheduler in reversed(started):
            scheduler.stop()


@pytest.fixture
def make_gpu_nodes(core_v1: k8s_client.CoreV1Api) -> Iterator[MakeGpuNodes]:
    """Factory: create ``count`` Ready fake GPU nodes; returns their names; deleted afterwards."""
    created: list[str] = []

    def make(
        count: int = 1,
        *,
        gpus: int = 8,
        product: str = "NVIDIA-H100-80GB-HBM3",
        memory_per_gpu: str = "80Gi",
        prefix: str = "gpu",
        labels: Mapping[str, str] | None = None,
    ) -> list[str]:
        stem = f"{prefix}-{secrets.token_hex(3)}"
        nodes = [
            GpuNode(
                name=f"{stem}-{i}",
                gpus=gpus,
                product=product,
                memory_per_gpu_bytes=parse_bytes(memory_per_gpu, "memory_per_gpu") if gpus else MIB,
                labels=dict(labels or {}),
            )
            for i in range(count)
        ]
        names = create_nodes(core_v1, nodes)
        created.extend(names)
        return names

    try:
        yield make
    finally:
        delete_nodes(core_v1, created)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Add the control plane's log tails to the report of a failed test that used it."""
    report = yield
    plane = item.config.stash.get(_PLANE_KEY, None)
    uses_plane = "control_plane" in getattr(item, "fixturenames", ())
    if report.failed and plane is not None and uses_plane:
        report.sections.append(
            ("control plane log tails", plane.log_tails(LOG_TAIL_LINES) or "(no logs)")
        )
    return report


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float = WAIT_S,
    *,
    interval: float = 0.1,
    retry_on: Callable[[Exception], bool] | None = None,
) -> T:
    """Call ``probe`` every ``interval`` seconds until it returns something true; return that.

    An exception that ``retry_on`` accepts (``not_found``, say, while an object is being
    created) counts as "not yet"; any other ends the wait. After ``timeout`` seconds the test
    fails, naming ``what`` and the probe's last answer or exception.
    """
    deadline = time.monotonic() + timeout
    while True:
        last: object
        try:
            last = value = probe()
        except Exception as exc:
            if retry_on is None or not retry_on(exc):
                raise
            last = exc
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what} ({_last(last)})"
            )
        time.sleep(interval)


def _last(answer: object) -> str:
    if isinstance(answer, Exception):
        return f"last error: {type(answer).__name__}: {' '.join(str(answer).split())}"
    return f"last answer: {answer!r}"


def not_found(exc: Exception) -> bool:
    """For ``wait_for``'s ``retry_on``: the API server answered 404 Not Found."""
    return isinstance(exc, k8s_client.ApiException) and exc.status == 404
