"""The webhook's settings: defaults that suit the Deployment, every problem reported at once."""

from __future__ import annotations

import pytest

from admission.cli import parser, settings_from_args
from admission.config import SettingsError


def test_defaults() -> None:
    s = settings_from_args(parser().parse_args([]))
    assert (s.listen, s.metrics_listen, s.cert_mode) == ("0.0.0.0:9443", "0.0.0.0:9444", "self")
    assert s.hosts == (
        "vramfit-admission.vramfit-system.svc",
        "vramfit-admission.vramfit-system.svc.cluster.local",
    )
    assert (s.secret_namespace, s.secret_name) == ("vramfit-system", "vramfit-admission-tls")


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        pytest.param(["--listen", "nowhere"], "--listen", id="listen"),
        pytest.param(["--metrics-listen", "0.0.0.0:9443"], "another port", id="same-port"),
        pytest.param(["--certificates", "acme"], "--certificates 'acme'", id="mode"),
        pytest.param(["--certificates", "files"], "give --tls-cert and --tls-key", id="files"),
        pytest.param(["--tls-cert", "/no/such"], "--tls-cert '/no/such'", id="cert-file"),
        pytest.param(["--secret", "just-a-name"], "NAMESPACE/NAME", id="secret"),
        pytest.param(["--hosts", " , "], "--hosts", id="hosts"),
        pytest.param(["--serving-days", "4000"], "need 1 <= serving < CA", id="lifetimes"),
        pytest.param(
            ["--gpu-memory-utilization", "1.5"], "--gpu-memory-utilization", id="headroom"
        ),
        pytest.param(["--check-interval", "0"], "--check-interval", id="interval"),
        pytest.param(["--max-body-bytes", "10"], "--max-body-bytes", id="body"),
        pytest.param(["--threads", "0"], "--threads", id="threads"),
        pytest.param(["--log-level", "loud"], "--log-level", id="log-level"),
    ],
)
def test_each_problem_is_named(argv: list[str], problem: str) -> None:
    with pytest.raises(SettingsError) as caught:
        settings_from_args(parser().parse_args(argv))
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_every_problem_at_once() -> None:
    argv = ["--threads", "0", "--log-level", "loud", "--secret", "x"]
    with pytest.raises(SettingsError) as caught:
        settings_from_args(parser().parse_args(argv))
    assert len(caught.value.problems) == 3
