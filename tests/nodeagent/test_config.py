"""Start-up settings: defaults, and every error reported at once with its flag."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from nodeagent.config import (
    ConfigError,
    Settings,
    argument_parser,
    settings_from_args,
)


def settings(*argv: str):  # type: ignore[no-untyped-def]
    return settings_from_args(argument_parser().parse_args(list(argv)))


def test_defaults() -> None:
    s = settings("--backend", "nvml", "--node-name", "gpu-node-1")
    assert (s.listen_host, s.listen_port, s.poll_interval_s) == ("0.0.0.0", 9402, 1.0)
    assert s.publish.lease_duration_s == 40 and s.publish.lease_renew_s == 10.0
    assert s.publish.change.max_age_s == 60.0
    assert s.pod_resources_socket == Path("/var/lib/kubelet/pod-resources/kubelet.sock")


@pytest.mark.parametrize("backend", ["nvml", "simulated"])
def test_no_optional_flags_give_the_default_settings(backend: str) -> None:
    """The command line states no default of its own: every one is the settings' default."""
    expect = Settings(backend=backend, node_name="n")
    if backend == "simulated":
        expect = dataclasses.replace(expect, pod_resources_socket=None)
    assert settings("--backend", backend, "--node-name", "n") == expect


def test_simulated_takes_no_pod_resources_socket() -> None:
    assert settings("--backend", "simulated", "--node-name", "h100-0").pod_resources_socket is None


def test_every_error_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        settings(
            "--backend", "nvml",
            "--node-name", "Bad_Name",
            "--spec", str(tmp_path / "x.yaml"),
            "--kubeconfig", str(tmp_path / "missing"),
            "--listen", "nowhere",
            "--poll-interval", "0",
            "--max-report-age", "1",
            "--lease-renew", "30",
            "--cache-dir", "relative/dir",
            "--ignore-xids", "13,x",
            "--log-level", "chatty",
            "--remote-bandwidth", "fast",
            "--memory-threshold-mib", "-1",
        )  # fmt: skip
    flags = [p.split(":")[0] for p in err.value.problems]
    assert flags == [
        "--node-name",
        "--spec",
        "--kubeconfig",
        "--listen",
        "--poll-interval",
        "--max-report-age",
        "--min-write-interval",
        "--memory-threshold-mib",
        "--lease-renew",
        "--cache-dir",
        "--ignore-xids",
        "--log-level",
        "--remote-bandwidth",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("127.0.0.1:0", ("127.0.0.1", 0), id="ephemeral"),
        pytest.param(":9402", ("0.0.0.0", 9402), id="any-host"),
        pytest.param("[::1]:80", ("::1", 80), id="ipv6"),
    ],
)
def test_listen(value: str, expected: tuple[str, int]) -> None:
    s = settings("--backend", "nvml", "--node-name", "n", "--listen", value)
    assert (s.listen_host, s.listen_port) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("9402", id="no-host-or-colon"),
        pytest.param("host:port", id="port-not-a-number"),
        pytest.param("h:70000", id="port-out-of-range"),
        pytest.param("::1:80", id="ipv6-without-brackets"),
    ],
)
def test_listen_rejects(value: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings("--backend", "nvml", "--node-name", "n", "--listen", value)
    assert [p.split(":")[0] for p in err.value.problems] == ["--listen"]


@pytest.mark.parametrize(
    ("backend", "exists", "problem"),
    [
        pytest.param("simulated", True, "", id="simulated-with-a-file"),
        pytest.param("simulated", False, "{path} is not a file", id="simulated-missing-file"),
        pytest.param("nvml", True, "only used with --backend simulated", id="nvml-refuses-it"),
    ],
)
def test_kubelet_kubeconfig_is_the_simulated_kubelets_own(
    tmp_path: Path, backend: str, exists: bool, problem: str
) -> None:
    path = tmp_path / "kubelet.kubeconfig"
    if exists:
        path.write_text("{}")
    argv = ("--backend", backend, "--node-name", "n", "--kubelet-kubeconfig", str(path))
    if not problem:
        assert settings(*argv).kubelet_kubeconfig == path
        return
    with pytest.raises(ConfigError) as err:
        settings(*argv)
    assert err.value.problems == [f"--kubelet-kubeconfig: {problem.format(path=path)}"]


@pytest.mark.parametrize(
    ("argv", "honours", "problem"),
    [
        pytest.param(("--backend", "simulated"), False, "", id="off-by-default"),
        pytest.param(
            ("--backend", "simulated", "--kubelet-honours-reservations"), True, "", id="asked-for"
        ),
        pytest.param(
            ("--backend", "nvml", "--kubelet-honours-reservations"),
            False,
            "--kubelet-honours-reservations: only used with --backend simulated",
            id="nvml-refuses-it",
        ),
    ],
)
def test_the_simulated_kubelet_honours_reservations_only_when_told(
    argv: tuple[str, ...], honours: bool, problem: str
) -> None:
    if not problem:
        assert settings(*argv, "--node-name", "n").kubelet_honours_reservations is honours
        return
    with pytest.raises(ConfigError) as err:
        settings(*argv, "--node-name", "n")
    assert err.value.problems == [problem]
