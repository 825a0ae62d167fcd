"""The control-plane harness: scheduler configurations, start-up errors, logs, and stopping."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from controlplane.binaries import locate
from controlplane.harness import (
    ControlPlane,
    ControlPlaneError,
    kubeconfig_document,
    scheduler_configuration,
)
from controlplane.processes import free_ports, runs_executable, tail
from controlplane.pytest_plugin import StartScheduler

KUBECONFIG = Path("/run/plane/kubeconfig")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            {},
            {
                "apiVersion": "kubescheduler.config.k8s.io/v1",
                "kind": "KubeSchedulerConfiguration",
                "clientConnection": {"kubeconfig": str(KUBECONFIG)},
                "leaderElection": {"leaderElect": False},
                "podInitialBackoffSeconds": 1,
                "podMaxBackoffSeconds": 2,
            },
        ),
        (
            {
                "clientConnection": {"kubeconfig": "/etc/kubernetes/scheduler.conf", "qps": 50},
                "leaderElection": {"leaderElect": True, "resourceName": "vramfit"},
                "podMaxBackoffSeconds": 30,
                "profiles": [{"schedulerName": "vramfit"}],
            },
            {
                "apiVersion": "kubescheduler.config.k8s.io/v1",
                "kind": "KubeSchedulerConfiguration",
                "clientConnection": {"kubeconfig": str(KUBECONFIG), "qps": 50},
                "leaderElection": {"leaderElect": False, "resourceName": "vramfit"},
                "podMaxBackoffSeconds": 30,
                "profiles": [{"schedulerName": "vramfit"}],
            },
        ),
    ],
    ids=["empty-gets-defaults", "deployed-config-is-redirected-and-keeps-its-backoff"],
)
def test_scheduler_configuration(given: dict[str, Any], expected: dict[str, Any]) -> None:
    before = json.dumps(given, sort_keys=True)
    assert scheduler_configuration(given, KUBECONFIG) == expected
    assert json.dumps(given, sort_keys=True) == before  # the caller's dict is left alone


def test_scheduler_configuration_can_keep_leader_election() -> None:
    config = {"leaderElection": {"leaderElect": True}}
    prepared = scheduler_configuration(config, KUBECONFIG, leader_elect=True, fast_backoff=False)
    assert prepared["leaderElection"] == {"leaderElect": True}
    assert "podInitialBackoffSeconds" not in prepared


def test_scheduler_configuration_rejects_another_kind() -> None:
    with pytest.raises(ControlPlaneError, match="kind is 'KubeletConfiguration'"):
        scheduler_configuration({"kind": "KubeletConfiguration"}, KUBECONFIG)


def test_kubeconfig_document_verifies_the_server() -> None:
    document = kubeconfig_document("https://127.0.0.1:1", Path("/ca.crt"), "tok", "c")
    (cluster,) = document["clusters"]
    assert cluster["cluster"] == {
        "server": "https://127.0.0.1:1",
        "certificate-authority": "/ca.crt",
    }
    assert "insecure-skip-tls-verify" not in json.dumps(document)
    assert document["users"][0]["user"] == {"token": "tok"}


# --- against the real binaries -----------------------------------------------------------------


@pytest.mark.integration
def test_the_api_server_bootstraps_namespaces_and_rbac(control_plane: ControlPlane) -> None:
    namespaces = control_plane.kubectl("get", "namespaces", "-o", "name").stdout.split()
    assert {"namespace/default", "namespace/kube-system", "namespace/kube-public"} <= set(
        namespaces
    )
    roles = control_plane.kubectl("get", "clusterroles", "-o", "name").stdout.split()
    assert "clusterrole.rbac.authorization.k8s.io/cluster-admin" in roles
    assert "clusterrole.rbac.authorization.k8s.io/system:kube-scheduler" in roles
    version = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.37.")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"podMaxBackoffSecondz": 2}, 'unknown field \\"podMaxBackoffSecondz\\"'),
        ({"podInitialBackoffSeconds": 5, "podMaxBackoffSeconds": 1}, "podMaxBackoffSeconds"),
        (
            {
                "extenders": [
                    {"urlPrefix": "http://127.0.0.1:1", "prioritizeVerb": "p", "weight": 0}
                ]
            },
            "must have a positive weight",
        ),
    ],
    ids=["unknown-field", "max-backoff-below-initial", "extender-without-weight"],
)
def test_a_rejected_scheduler_configuration_raises_with_the_scheduler_message(
    start_scheduler: StartScheduler, config: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ControlPlaneError) as caught:
        start_scheduler(config)
    assert "did not start with the configuration in" in str(caught.value)
    assert fragment in str(caught.value)


@pytest.mark.integration
def test_a_scheduler_is_ready_and_logs_to_its_own_file(
    control_plane: ControlPlane, start_scheduler: StartScheduler
) -> None:
    scheduler = start_scheduler({}, name="logging-scheduler")
    assert scheduler.running
    assert scheduler.log_path == control_plane.workdir / "logs" / "logging-scheduler.log"
    tails = control_plane.log_tails(5)
    for name in ("etcd", "kube-apiserver", "logging-scheduler"):
        assert f"----- {name} (pid " in tails
    scheduler.stop()
    assert not scheduler.running
    assert "logging-scheduler" not in control_plane.log_tails(5)


@pytest.mark.integration
def test_stop_ends_every_process_and_a_plane_can_be_restarted_elsewhere(tmp_path: Path) -> None:
    binaries = locate()
    with ControlPlane(binaries, tmp_path / "one") as plane:
        plane.start_scheduler({})
        records = plane.records()
        assert [r.name for r in records] == ["etcd", "kube-apiserver", "kube-scheduler-1"]
    for record in records:
        assert not runs_executable(record.pid, Path(record.executable)), record
    assert plane.records() == []
    assert "--- " in tail(tmp_path / "one" / "logs" / "etcd.log", 100)


@pytest.mark.integration
def test_a_port_taken_between_choosing_and_binding_is_retried(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        calls: list[int] = []

        def pick_ports(count: int) -> list[int]:
            calls.append(count)
            ports = free_ports(count)
            if len(calls) in (1, 3, 5):  # the first try of etcd, kube-apiserver, kube-scheduler
                ports[0] = taken.getsockname()[1]
            return ports

        with ControlPlane(locate(), tmp_path, pick_ports=pick_ports) as plane:
            scheduler = plane.start_scheduler({})
            assert scheduler.running
            assert plane.kubectl("get", "namespace", "default").returncode == 0
    assert calls == [2, 2, 1, 1, 1, 1]
    for name in ("etcd", "kube-apiserver", "kube-scheduler-1"):
        assert "address already in use" in tail(tmp_path / "logs" / f"{name}.log", 400), name


OWNER = textwrap.dedent(
    """
    import json, signal, sys, time
    from pathlib import Path
    from controlplane.binaries import locate
    from controlplane.harness import ControlPlane

    # Ctrl-C raises KeyboardInterrupt, as in a terminal; a shell's background job would
    # otherwise inherit SIGINT ignored, and the owner would not stop at all.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    plane = ControlPlane(locate(), Path(sys.argv[1])).start()
    plane.start_scheduler({})
    print(json.dumps([[r.pid, r.executable] for r in plane.records()]), flush=True)
    time.sleep(600)
    """
)


@pytest.mark.integration
@pytest.mark.parametrize(
    "signum",
    [signal.SIGTERM, signal.SIGINT, signal.SIGKILL],
    ids=["sigterm", "sigint", "sigkill"],
)
def test_no_process_outlives_its_owner(tmp_path: Path, signum: signal.Signals) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        line = owner.stdout.readline()
        assert line, f"the owner did not start a plane: {owner.communicate(timeout=30)[1]}"
        children = [(pid, Path(exe)) for pid, exe in json.loads(line)]
        assert len(children) == 3
        os.kill(owner.pid, signum)
        owner.wait(30)
        deadline = time.monotonic() + 15
        while any(runs_executable(pid, exe) for pid, exe in children):
            assert time.monotonic() < deadline, f"still running after {signum.name}: {children}"
            time.sleep(0.1)
    finally:
        owner.kill()
        owner.communicate()


FAILING_TEST = textwrap.dedent(
    """
    def test_fails(control_plane):
        assert control_plane.kubectl("get", "namespaces").returncode == 1
    """
)


def run_failing_test(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run ``FAILING_TEST`` in a pytest of its own that loads only the control-plane plugin."""
    (tmp_path / "test_inner.py").write_text(FAILING_TEST)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "controlplane.pytest_plugin",
         "-p", "no:cacheprovider", *args, f"--rootdir={tmp_path}", str(tmp_path / "test_inner.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=timeout,
        check=False,
    )  # fmt: skip


@pytest.mark.integration
def test_a_failing_test_shows_the_control_plane_logs(tmp_path: Path) -> None:
    result = run_failing_test(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "control plane log tails" in result.stdout
    assert "----- kube-apiserver (pid " in result.stdout
    assert "----- etcd (pid " in result.stdout


def test_a_missing_binary_fails_the_test_loudly(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEST_ASSET_")}
    env["KUBEBUILDER_ASSETS"] = str(tmp_path / "empty")
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    result = run_failing_test(tmp_path, "-rA", env=env, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "control plane unavailable: missing control-plane binaries: etcd" in result.stdout
    assert "1 error" in result.stdout
    assert "skipped" not in result.stdout
