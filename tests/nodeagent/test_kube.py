"""Reading credentials from a kubeconfig or the pod's service account."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from nodeagent.kube import (
    ApiError,
    Credentials,
    KubeClient,
    KubeConfigError,
    in_cluster,
    load_kubeconfig,
)


def write(tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any] | None) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user or {}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_token_and_ca_file(tmp_path: Path) -> None:
    creds = load_kubeconfig(
        write(
            tmp_path,
            {"server": "https://127.0.0.1:6443/", "certificate-authority": "ca.crt"},
            {"token": "t"},
        )
    )
    assert creds.server == "https://127.0.0.1:6443" and creds.token == "t"
    assert creds.ca_file == tmp_path / "ca.crt"


def test_inline_data_is_written_privately(tmp_path: Path) -> None:
    data = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode()
    creds = load_kubeconfig(
        write(
            tmp_path,
            {"server": "https://k", "certificate-authority-data": data},
            {"client-certificate-data": data, "client-key-data": data},
        )
    )
    assert creds.ca_file is not None and creds.ca_file.read_bytes().startswith(b"-----BEGIN")
    assert creds.client_key_file is not None and creds.client_key_file.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("cluster", "user", "message"),
    [
        pytest.param(
            {"server": "https://k"},
            {"exec": {"command": "aws"}},
            "exec or auth-provider",
            id="exec",
        ),
        pytest.param({}, {"token": "t"}, "has no server", id="no-server"),
    ],
)
def test_unusable_kubeconfig(
    tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any], message: str
) -> None:
    with pytest.raises(KubeConfigError, match=message):
        load_kubeconfig(write(tmp_path, cluster, user))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("- just a list", "expected a YAML mapping", id="a-list"),
        pytest.param("clusters: [", r"kubeconfig .*/k: not valid YAML at line", id="broken-yaml"),
        pytest.param(None, r"kubeconfig .*/k: file not found", id="missing"),
    ],
)
def test_not_a_kubeconfig(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "k").write_text(content)
    with pytest.raises(KubeConfigError, match=message):
        load_kubeconfig(tmp_path / "k")


def test_in_cluster(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("sa-token\n")
    creds = in_cluster(
        {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}, tmp_path
    )
    assert creds.server == "https://10.0.0.1:443" and creds.token_file == tmp_path / "token"
    with pytest.raises(KubeConfigError, match="not running in a cluster"):
        in_cluster({}, tmp_path)


def test_unreachable_server_is_an_api_error_with_status_zero() -> None:
    client = KubeClient(Credentials(server="http://127.0.0.1:9"), timeout_s=1.0)
    with pytest.raises(ApiError) as err:
        client.request("GET", "/version")
    assert err.value.status == 0
