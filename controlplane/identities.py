"""Who each component is when it talks to the test API server: never the admin.

The admin kubeconfig (``system:masters``) would hide any permission a component lacks, so the
end-to-end tests give every component the identity it has in a real cluster, each in a
kubeconfig of its own:

- **ServiceAccounts**, with tokens from the TokenRequest API, optionally bound to a Pod: a
  token bound to a Pod that is scheduled on a node carries that node's name
  (``authentication.kubernetes.io/node-name``), which the agent's admission policy reads. The
  kubeconfig names a token *file*; :meth:`ServiceAccountIdentity.renew` rewrites it in place,
  as the kubelet rotates a projected token, so a running component picks up the new token.
- **Kubelets** (``system:node:<name>`` in ``system:nodes``): client certificates from the
  plane's client CA, checked by the Node authorizer and the NodeRestriction admission plugin,
  as a real kubelet's are. The simulated kubelet stand-in writes pod status with one.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from kubernetes import client as k8s_client

DEFAULT_TOKEN_SECONDS: Final = 6 * 3600
"""Long enough for a soak run; a bound token dies earlier with the Pod it is bound to."""
_SAFE = re.compile(r"[^a-z0-9.-]+")


class IdentityError(RuntimeError):
    """A credential could not be made; the message says which and why."""


def kubeconfig_for(server: str, ca_file: Path, name: str, user: dict[str, Any]) -> dict[str, Any]:
    """Pure: a kubeconfig for one cluster and one user (``user``: the kubeconfig user body)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "vramfit",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": "vramfit", "user": name}}],
        "current-context": name,
    }


def service_account_username(namespace: str, name: str) -> str:
    """Pure: the user name the API server gives a ServiceAccount's tokens."""
    return f"system:serviceaccount:{namespace}:{name}"


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a reader sees the old or the new file), mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


@dataclass
class ServiceAccountIdentity:
    """A kubeconfig that authenticates as one ServiceAccount with a token file."""

    core: k8s_client.CoreV1Api
    namespace: str
    name: str
    kubeconfig: Path
    token_file: Path
    expiration_s: int = DEFAULT_TOKEN_SECONDS
    bound_pod: str = ""
    bound_pod_uid: str = ""

    @property
    def username(self) -> str:
        return service_account_username(self.namespace, self.name)

    def renew(self, pod: k8s_client.V1Pod | None = None) -> str:
        """Request a new token (bound to ``pod`` when given) and write it to the token file;
        returns the token."""
        spec: dict[str, Any] = {"expirationSeconds": self.expiration_s}
        if pod is not None:
            spec["boundObjectRef"] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": pod.metadata.name,
                "uid": pod.metadata.uid,
            }
        answer = self.core.create_namespaced_service_account_token(
            self.name, self.namespace, {"spec": spec}
        )
        token: str = answer.status.token
        _write_private(self.token_file, token)
        self.bound_pod = pod.metadata.name if pod is not None else ""
        self.bound_pod_uid = pod.metadata.uid if pod is not None else ""
        return token


def service_account_identity(
    core: k8s_client.CoreV1Api,
    *,
    server: str,
    ca_file: Path,
    directory: Path,
    namespace: str,
    name: str,
    pod: k8s_client.V1Pod | None = None,
    expiration_s: int = DEFAULT_TOKEN_SECONDS,
) -> ServiceAccountIdentity:
    """A kubeconfig in ``directory`` for ServiceAccount ``namespace/name``, its token from the
    TokenRequest API (bound to ``pod`` when given). ``core`` must be allowed to create tokens."""
    token_file = directory / "token"
    identity = ServiceAccountIdentity(
        core,
        namespace,
        name,
        kubeconfig=directory / "kubeconfig",
        token_file=token_file,
        expiration_s=expiration_s,
    )
    identity.renew(pod)
    document = kubeconfig_for(
        server, ca_file, identity.username, {"tokenFile": str(token_file.absolute())}
    )
    _write_private(identity.kubeconfig, yaml.safe_dump(document, sort_keys=False))
    return identity


@dataclass(frozen=True)
class ClientCA:
    """The CA whose certificates the API server accepts as client identities
    (``--client-ca-file``); the subject's CN is the user name, each O a group."""

    cert: Path
    key: Path

    @classmethod
    def create(cls, directory: Path) -> ClientCA:
        """Make the CA in ``directory`` unless it is there already."""
        ca = cls(directory / "client-ca.crt", directory / "client-ca.key")
        if not (ca.cert.exists() and ca.key.exists()):
            _openssl(
                "req", "-x509", *_EC_KEY, "-keyout", str(ca.key), "-out", str(ca.cert),
                "-days", "3650", "-subj", "/CN=vramfit-test-client-ca",
            )  # fmt: skip
        return ca

    def issue(self, directory: Path, user: str, groups: tuple[str, ...]) -> tuple[Path, Path]:
        """A client certificate and key for ``user`` in ``groups``, in ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        stem = _SAFE.sub("-", user.lower()).strip("-") or "user"
        cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
        subject = "".join(f"/O={g}" for g in groups) + f"/CN={user}"
        _openssl(
            "req", "-x509", *_EC_KEY, "-keyout", str(key), "-out", str(cert), "-days", "365",
            "-subj", subject, "-CA", str(self.cert), "-CAkey", str(self.key),
            "-addext", "extendedKeyUsage=clientAuth",
            "-addext", "basicConstraints=critical,CA:FALSE",
        )  # fmt: skip
        return cert, key


_EC_KEY: Final = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def kubelet_identity(
    ca: ClientCA, *, server: str, ca_file: Path, directory: Path, node: str
) -> Path:
    """A kubeconfig in ``directory`` that authenticates as node ``node``'s kubelet; returns it."""
    user = f"system:node:{node}"
    cert, key = ca.issue(directory, user, ("system:nodes",))
    path = directory / "kubeconfig"
    user_body = {"client-certificate": str(cert.absolute()), "client-key": str(key.absolute())}
    _write_private(path, yaml.safe_dump(kubeconfig_for(server, ca_file, user, user_body)))
    return path


def _openssl(*args: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise IdentityError(
            "the openssl command is needed to make client certificates; "
            "install it (Debian/Ubuntu: apt-get install openssl)"
        )
    result = subprocess.run(
        [openssl, *args], capture_output=True, text=True, check=False, timeout=60
    )
    if result.returncode != 0:
        raise IdentityError(f"openssl {args[0]} failed: {result.stderr.strip()}")


__all__ = (
    "ClientCA",
    "IdentityError",
    "ServiceAccountIdentity",
    "kubeconfig_for",
    "kubelet_identity",
    "service_account_identity",
    "service_account_username",
)
