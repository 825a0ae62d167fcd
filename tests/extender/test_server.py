"""The real server: ``vramfit-extender`` as a process (gunicorn, one gthread worker), over HTTP.

No API server is needed here: the kubeconfig points at a closed port, so the watches keep
retrying and ``/readyz`` must say not ready (and filter must refuse to guess) while the
process stays up and answers. TLS is served when a certificate is given.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from controlplane.pytest_plugin import wait_for
from tests.extender.conftest import pod_object


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def kubeconfig(tmp: Path) -> Path:
    path = tmp / "kubeconfig"
    closed = free_port()
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{closed}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return path


def start(args: list[str], probe: http.client.HTTPConnection, log: Path) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / "vramfit-extender"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(exe), *args], stderr=out)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"extender exited: {log.read_text()[-2000:]}")
        try:
            probe.request("GET", "/healthz")
            if probe.getresponse().read() == b"ok\n":
                return proc
        except (OSError, http.client.HTTPException):
            probe.close()
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("extender did not answer /healthz")


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[http.client.HTTPConnection]:
    port = free_port()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    proc = start(
        [
            f"--kubeconfig={kubeconfig(tmp_path)}",
            f"--listen=127.0.0.1:{port}",
            "--max-body-bytes=65536",
        ],
        conn,
        tmp_path / "extender.log",
    )
    try:
        yield conn
    finally:
        conn.close()
        proc.terminate()
        assert proc.wait(timeout=20) == 0


def request(
    conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None
) -> tuple[int, bytes]:
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, resp.read()


def test_not_ready_without_the_api_server_and_says_why(plain: http.client.HTTPConnection) -> None:
    status, body = request(plain, "GET", "/readyz")
    assert status == 503
    assert b"waiting for the first list of pods, nodegpustates, leases" in body
    filt = json.dumps({"Pod": pod_object("p"), "NodeNames": ["n0"]}).encode()
    status, body = request(plain, "POST", "/scheduler/filter", filt)
    assert status == 200
    answer = json.loads(body)
    assert answer["NodeNames"] == [] and "not rebuilt" in answer["Error"]


def test_bad_requests_over_real_http(plain: http.client.HTTPConnection) -> None:
    assert request(plain, "POST", "/scheduler/filter", b"{")[0] == 400
    assert request(plain, "POST", "/scheduler/evict", b"{}")[0] == 404
    assert request(plain, "POST", "/scheduler/filter", b"x" * 70_000)[0] == 413
    # The same keep-alive connection still serves after every refusal.
    assert request(plain, "GET", "/healthz") == (200, b"ok\n")


def test_chunked_body_over_the_limit_is_413(plain: http.client.HTTPConnection) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * 4096

    plain.request(
        "POST",
        "/scheduler/filter",
        body=chunks(),
        headers={"Content-Type": "application/json"},
        encode_chunked=True,
    )
    resp = plain.getresponse()
    assert resp.status == 413


def test_metrics_over_http_with_the_promtool_content_type(
    plain: http.client.HTTPConnection,
) -> None:
    plain.request("GET", "/metrics")
    resp = plain.getresponse()
    body = resp.read()
    assert resp.status == 200
    # Exactly Prometheus' own media type: a second charset parameter makes Go's
    # mime.ParseMediaType (and so a Prometheus scrape) refuse the reply.
    assert resp.getheader("Content-Type") == CONTENT_TYPE_LATEST
    assert b"vramfit_extender_ready 0.0" in body


def test_bad_settings_are_all_reported_at_once(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "vramfit-extender"
    result = subprocess.run(
        [
            str(exe),
            f"--kubeconfig={tmp_path / 'missing'}",
            "--listen=nowhere",
            "--policy=fastest",
            "--mode=guess",
            "--threads=0",
            "--tls-cert=/nope.pem",
            "--tls-client-ca=/nope-ca.pem",
            "--scheduler-name=",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    flags = ("--kubeconfig", "--listen", "--policy", "--mode", "--threads", "--tls-cert")
    for flag in (*flags, "--tls-client-ca", "--scheduler-name"):
        assert flag in result.stderr


def openssl(*args: str) -> None:
    exe = shutil.which("openssl")
    assert exe is not None, "openssl is required for the TLS tests"
    subprocess.run([exe, *args], check=True, capture_output=True)


def self_signed(tmp: Path, name: str, *extra: str) -> tuple[Path, Path]:
    cert, key = tmp / f"{name}.crt", tmp / f"{name}.key"
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
        *extra, "-keyout", str(key), "-out", str(cert),
    )  # fmt: skip
    return cert, key


def signed_by(tmp: Path, name: str, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    cert, key, csr = tmp / f"{name}.crt", tmp / f"{name}.key", tmp / f"{name}.csr"
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
        "-keyout", str(key), "-out", str(csr),
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
        "-CAcreateserial", "-days", "1", "-out", str(cert),
    )  # fmt: skip
    return cert, key


def https(
    port: int, server_cert: Path, client: tuple[Path, Path] | None
) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cafile=str(server_cert))
    if client is not None:
        context.load_cert_chain(str(client[0]), str(client[1]))
    return http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)


def test_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1")
    port = free_port()
    conn = https(port, cert, None)
    proc = start(
        [
            f"--kubeconfig={kubeconfig(tmp_path)}",
            f"--listen=127.0.0.1:{port}",
            f"--tls-cert={cert}",
            f"--tls-key={key}",
        ],
        conn,
        tmp_path / "extender.log",
    )
    plain = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        assert request(conn, "GET", "/healthz") == (200, b"ok\n")
        with pytest.raises((http.client.HTTPException, OSError)):
            request(plain, "GET", "/healthz")
    finally:
        plain.close()
        conn.close()
        proc.terminate()
        proc.wait(timeout=20)


def test_tls_client_ca_admits_only_the_clients_it_signed(tmp_path: Path) -> None:
    """Regression: TLS had no client authentication, so whoever reached an off-loopback verb
    port could bind any pending pod to any node. With --tls-client-ca only a client holding a
    certificate that CA signed (kube-scheduler, through its extender tlsConfig) gets an answer."""
    cert, key = self_signed(tmp_path, "127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1")
    ca = self_signed(tmp_path, "vramfit-clients")
    scheduler = signed_by(tmp_path, "kube-scheduler", ca)
    stranger = self_signed(tmp_path, "stranger")
    port = free_port()
    conn = https(port, cert, scheduler)
    proc = start(
        [
            f"--kubeconfig={kubeconfig(tmp_path)}",
            f"--listen=127.0.0.1:{port}",
            f"--tls-cert={cert}",
            f"--tls-key={key}",
            f"--tls-client-ca={ca[0]}",
        ],
        conn,
        tmp_path / "extender.log",
    )
    try:
        bind = json.dumps(
            {"PodName": "p", "PodNamespace": "default", "PodUID": "u", "Node": "n0"}
        ).encode()
        assert request(conn, "POST", "/scheduler/bind", bind)[0] == 200
        for client in (None, stranger):
            other = https(port, cert, client)
            with pytest.raises((ssl.SSLError, http.client.HTTPException, OSError)):
                request(other, "POST", "/scheduler/bind", bind)
            other.close()
    finally:
        conn.close()
        proc.terminate()
        proc.wait(timeout=20)


def half_sent(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that each send half a request line and then nothing."""
    held = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"POST /scheduler/fil")
        held.append(s)
    return held


def _refused(exc: Exception) -> bool:
    """A connection closed unanswered, as the listener does while its queue is full."""
    return isinstance(exc, OSError | http.client.HTTPException)


def timed_filter(port: int) -> float:
    """Seconds a filter took on a fresh connection (it must answer 200 within 5 s)."""
    fresh = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    filt = json.dumps({"Pod": pod_object("p"), "NodeNames": ["n0"]}).encode()
    started = time.monotonic()
    try:
        status, _ = request(fresh, "POST", "/scheduler/filter", filt)
    finally:
        fresh.close()
    assert status == 200
    return time.monotonic() - started


@pytest.fixture
def two_ports(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """An extender with 8 verb threads, a 1 s read timeout and a probe listener."""
    port, metrics_port = free_port(), free_port()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    proc = start(
        [
            f"--kubeconfig={kubeconfig(tmp_path)}",
            f"--listen=127.0.0.1:{port}",
            f"--metrics-listen=127.0.0.1:{metrics_port}",
            "--threads=8",
            "--read-timeout=1",
        ],
        conn,
        tmp_path / "extender.log",
    )
    try:
        yield port, metrics_port
    finally:
        conn.close()
        proc.terminate()
        assert proc.wait(timeout=20) == 0
        assert "Traceback" not in (tmp_path / "extender.log").read_text()


def test_idle_connections_to_the_metrics_port_never_stall_a_filter(
    two_ports: tuple[int, int],
) -> None:
    """Regression: the probe listener shared the verbs' threads, so eight half-sent requests
    to it stopped every filter for as long as they stayed open."""
    port, metrics_port = two_ports
    held = half_sent(metrics_port, 16)
    try:
        time.sleep(0.3)
        # A stalled filter never answers while they are held: timed_filter's 5 s read
        # timeout fails the test. The bound leaves room for a loaded machine.
        assert timed_filter(port) < 4.0
    finally:
        for s in held:
            s.close()

    # Once they hang up, the probe listener answers without waiting out the read timeouts of
    # what it queued (they end at EOF).
    # Until the threads have read those EOFs the queue may still be full, and a connection
    # that finds it full is closed at once: retry those.
    def healthz() -> bool | None:
        probe = http.client.HTTPConnection("127.0.0.1", metrics_port, timeout=5)
        try:
            return request(probe, "GET", "/healthz") == (200, b"ok\n") or None
        finally:
            probe.close()

    started = time.monotonic()
    wait_for("the probe listener to answer", healthz, 10, retry_on=_refused)
    assert time.monotonic() - started < 3.0


def test_half_sent_verb_requests_lose_their_threads_after_the_read_timeout(
    two_ports: tuple[int, int],
) -> None:
    """Regression: gunicorn's threads read with no timeout, so as many half-sent requests as
    threads stopped every filter until they hung up."""
    port, _ = two_ports
    held = half_sent(port, 8)
    try:
        assert timed_filter(port) < 3.0
    finally:
        for s in held:
            s.close()


def test_the_probe_listener_answers_no_verb(two_ports: tuple[int, int]) -> None:
    _, metrics_port = two_ports
    probe = http.client.HTTPConnection("127.0.0.1", metrics_port, timeout=5)
    try:
        status, _ = request(probe, "POST", "/scheduler/bind", b"{}")
        assert status == 501
    finally:
        probe.close()
