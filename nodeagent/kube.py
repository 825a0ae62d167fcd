"""A small Kubernetes API client: exactly the calls the agent makes, on the standard library.

The agent runs on every GPU node, so its memory counts: the full ``kubernetes`` client loads
about 50 MB of generated models, which alone would exceed the agent's whole budget. This client
speaks JSON over ``http.client`` with the credentials of a kubeconfig (token, token file, client
certificate, CA) or of the pod's service account (whose projected token rotates, so it is
re-read), and raises ``ApiError`` carrying the HTTP status and the API server's message.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from documents import DocumentError, load_document

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_S = 60.0

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


class KubeConfigError(ValueError):
    """A kubeconfig (or in-cluster environment) that cannot be used; says what is missing."""


class ApiError(Exception):
    """An API call that failed: HTTP ``status`` (0 when the server was not reached)."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"{method} {path}: {status or 'unreachable'} {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Credentials:
    """Where and how to reach the API server."""

    server: str
    token: str = ""
    token_file: Path | None = None
    ca_file: Path | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    insecure: bool = False


def _data_file(directory: Path, name: str, b64: str) -> Path:
    path = directory / name
    path.write_bytes(base64.b64decode(b64))
    path.chmod(0o600)
    return path


def load_kubeconfig(path: Path) -> Credentials:
    """Credentials of the current context of the kubeconfig at ``path``.

    Supports token, tokenFile, client certificates and CAs (as files or inline data) and
    insecure-skip-tls-verify; exec and auth-provider plugins are refused with a clear error.
    """
    try:
        raw = load_document(path, syntax="yaml")  # a kubeconfig in JSON is YAML too
    except DocumentError as exc:
        raise KubeConfigError(f"kubeconfig {exc}") from None
    if not isinstance(raw, Mapping):
        raise KubeConfigError(f"kubeconfig {path}: expected a YAML mapping")

    def named(kind: str, name: str) -> Mapping[str, Any]:
        for item in raw.get(kind) or []:
            if isinstance(item, Mapping) and item.get("name") == name:
                body = item.get(kind[:-1]) or {}
                if isinstance(body, Mapping):
                    return body
        raise KubeConfigError(f"kubeconfig {path}: no {kind[:-1]} named {name!r}")

    context_name = raw.get("current-context")
    if not context_name:
        raise KubeConfigError(f"kubeconfig {path}: no current-context")
    context = named("contexts", str(context_name))
    cluster = named("clusters", str(context.get("cluster", "")))
    user = named("users", str(context.get("user", ""))) if context.get("user") else {}
    if "exec" in user or "auth-provider" in user:
        raise KubeConfigError(
            f"kubeconfig {path}: user {context.get('user')!r} uses an exec or auth-provider "
            "plugin, which vramfit-agent does not run; use a token or client certificate"
        )
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise KubeConfigError(
            f"kubeconfig {path}: cluster {context.get('cluster')!r} has no server"
        )
    base = path.parent
    secrets = Path(tempfile.mkdtemp(prefix="vramfit-agent-"))

    def file_or_data(obj: Mapping[str, Any], key: str, name: str) -> Path | None:
        if obj.get(f"{key}-data"):
            return _data_file(secrets, name, str(obj[f"{key}-data"]))
        if obj.get(key):
            p = Path(str(obj[key]))
            return p if p.is_absolute() else base / p
        return None

    token_file = user.get("tokenFile")
    return Credentials(
        server=server.rstrip("/"),
        token=str(user.get("token") or ""),
        token_file=Path(str(token_file)) if token_file else None,
        ca_file=file_or_data(cluster, "certificate-authority", "ca.crt"),
        client_cert_file=file_or_data(user, "client-certificate", "client.crt"),
        client_key_file=file_or_data(user, "client-key", "client.key"),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
    )


def in_cluster(
    env: Mapping[str, str] = os.environ, sa_dir: Path = SERVICE_ACCOUNT_DIR
) -> Credentials:
    """Credentials of the pod's service account (``KUBERNETES_SERVICE_HOST`` and the token)."""
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise KubeConfigError(
            "not running in a cluster (KUBERNETES_SERVICE_HOST/PORT unset); pass --kubeconfig"
        )
    token = sa_dir / "token"
    if not token.exists():
        raise KubeConfigError(f"no service-account token at {token}")
    if ":" in host:
        host = f"[{host}]"
    return Credentials(server=f"https://{host}:{port}", token_file=token, ca_file=sa_dir / "ca.crt")


class KubeClient:
    """JSON requests to one API server; connections are pooled and rebuilt after errors."""

    def __init__(
        self, creds: Credentials, *, timeout_s: float = 10.0, user_agent: str = ""
    ) -> None:
        self._creds = creds
        self._timeout = timeout_s
        self._user_agent = user_agent or "vramfit-agent"
        url = urlsplit(creds.server)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise KubeConfigError(f"API server {creds.server!r} is not an http(s) URL")
        self._https = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port or (443 if self._https else 80)
        self._prefix = url.path.rstrip("/")
        self._ssl = self._context() if self._https else None
        self._idle: list[http.client.HTTPConnection] = []
        self._watching: set[socket.socket] = set()
        self._closed = False
        self._lock = threading.Lock()
        self._token = creds.token
        self._token_read_at = -TOKEN_REREAD_S

    def _context(self) -> ssl.SSLContext:
        c = self._creds
        if c.insecure:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx = ssl.create_default_context(cafile=str(c.ca_file) if c.ca_file else None)
        if c.client_cert_file is not None:
            ctx.load_cert_chain(
                str(c.client_cert_file), str(c.client_key_file) if c.client_key_file else None
            )
        return ctx

    def _bearer(self) -> str:
        tf = self._creds.token_file
        if tf is not None and time.monotonic() - self._token_read_at >= TOKEN_REREAD_S:
            try:
                self._token = tf.read_text().strip()
                self._token_read_at = time.monotonic()
            except OSError as exc:
                raise ApiError("READ", str(tf), 0, f"token file: {exc}") from None
        return self._token

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._ssl
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"Accept": JSON, "User-Agent": self._user_agent}
        token = self._bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def url(self, path: str, query: Mapping[str, str] | None = None) -> str:
        """``path`` under the server's prefix, with ``query`` encoded."""
        return self._prefix + path + (f"?{urlencode(query)}" if query else "")

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, str] | None = None,
        content_type: str = JSON,
    ) -> dict[str, Any]:
        """One call; returns the decoded JSON object or raises ``ApiError``."""
        target = self.url(path, query)
        payload = None if body is None else json.dumps(body).encode()
        headers = self._headers(content_type if payload is not None else "")
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect(self._timeout)
        try:
            conn.request(method, target, body=payload, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise ApiError(method, path, 0, f"{type(exc).__name__}: {exc}") from None
        with self._lock:
            if len(self._idle) < 4 and not resp.will_close and not self._closed:
                self._idle.append(conn)
            else:
                conn.close()
        return _decode(method, path, resp.status, data)

    def watch(
        self, path: str, query: Mapping[str, str], *, timeout_s: float
    ) -> Iterator[dict[str, Any]]:
        """Stream watch events (``{"type": ..., "object": ...}``) until the server ends it."""
        q = dict(query)
        q["watch"] = "true"
        target = self.url(path, q)
        conn = self._connect(timeout_s)
        sock: socket.socket | None = None
        try:
            try:
                conn.request("GET", target, headers=self._headers(""))
                sock = conn.sock  # kept: the response may own the socket once it is read
                if sock is not None:
                    with self._lock:
                        self._watching.add(sock)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                raise ApiError("WATCH", path, 0, f"{type(exc).__name__}: {exc}") from None
            if resp.status != 200:
                _decode("WATCH", path, resp.status, resp.read())
            while True:
                try:
                    line = resp.readline()
                except (OSError, http.client.HTTPException) as exc:
                    raise ApiError("WATCH", path, 0, f"{type(exc).__name__}: {exc}") from None
                if not line:
                    return
                if line.strip():
                    event = json.loads(line)
                    if isinstance(event, dict):
                        yield event
        finally:
            with self._lock:
                if sock is not None:
                    self._watching.discard(sock)
            conn.close()
            if sock is not None:
                sock.close()

    def close(self) -> None:
        """Close pooled connections and end running watches (their readers see the end)."""
        with self._lock:
            self._closed = True
            for conn in self._idle:
                conn.close()
            self._idle.clear()
            for sock in self._watching:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _decode(method: str, path: str, status: int, data: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data) if data else {}
    except ValueError:
        obj = {"message": data[:200].decode(errors="replace")}
    if not 200 <= status < 300:
        message = obj.get("message", "") if isinstance(obj, dict) else ""
        raise ApiError(method, path, status, str(message))
    if not isinstance(obj, dict):
        raise ApiError(method, path, status, "expected a JSON object in the reply")
    return obj
