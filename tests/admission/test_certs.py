"""The webhook's own certificates: issued, kept, renewed at a third of their life, and a new CA
trusted beside the old one until it expires."""

from __future__ import annotations

import datetime as dt
import ssl
import tempfile
from pathlib import Path

import pytest
from cryptography import x509

from admission.certs import Bundle, Lifetimes, renewed

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LIFE = Lifetimes(ca=dt.timedelta(days=300), serving=dt.timedelta(days=30))
HOSTS = ("vramfit-admission.vramfit-system.svc", "127.0.0.1")


@pytest.fixture(scope="module")
def first() -> Bundle:
    bundle = renewed(None, HOSTS, T0, LIFE)
    assert bundle is not None
    return bundle


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def test_a_new_bundle_serves_its_hosts_and_a_client_trusting_the_ca_accepts_it(
    first: Bundle,
) -> None:
    serving = _cert(first.tls_cert)
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [HOSTS[0]]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == [HOSTS[1]]
    assert first.trusted == first.ca_cert
    serving.verify_directly_issued_by(_cert(first.ca_cert))
    with tempfile.TemporaryDirectory() as folder:  # the pair loads as one file, as gunicorn does
        path = Path(folder) / "serving.pem"
        path.write_bytes(first.serving_pem)
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(path, path)
    assert Bundle.from_data(first.data()) == first


@pytest.mark.parametrize(
    ("days", "hosts", "new_serving", "new_ca"),
    [
        pytest.param(1, HOSTS, False, False, id="fresh-kept"),
        pytest.param(19, HOSTS, False, False, id="two-thirds-of-serving-life-kept"),
        pytest.param(21, HOSTS, True, False, id="serving-due"),
        pytest.param(1, (*HOSTS, "other.svc"), True, False, id="hosts-changed"),
        pytest.param(201, HOSTS, True, True, id="ca-due"),
    ],
)
def test_renewal(
    first: Bundle, days: int, hosts: tuple[str, ...], new_serving: bool, new_ca: bool
) -> None:
    now = T0 + dt.timedelta(days=days)
    out = renewed(first, hosts, now, LIFE)
    if not new_serving:
        assert out is None
        return
    assert out is not None
    assert (out.tls_cert != first.tls_cert, out.ca_cert != first.ca_cert) == (True, new_ca)
    _cert(out.tls_cert).verify_directly_issued_by(_cert(out.ca_cert))
    trusted = x509.load_pem_x509_certificates(out.trusted)
    # A new CA is trusted beside the old one, so certificates still served stay valid.
    assert len(trusted) == (2 if new_ca else 1)
    assert _cert(out.ca_cert) in trusted and _cert(first.ca_cert) in trusted


def test_an_expired_ca_leaves_the_bundle(first: Bundle) -> None:
    rotated = renewed(first, HOSTS, T0 + dt.timedelta(days=201), LIFE)
    assert rotated is not None
    later = renewed(rotated, HOSTS, T0 + dt.timedelta(days=301), LIFE)
    assert later is not None
    assert x509.load_pem_x509_certificates(later.trusted) == [_cert(rotated.ca_cert)]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({}, id="empty"),
        pytest.param(
            {
                "ca.crt": b"x",
                "ca.key": b"x",
                "tls.crt": b"x",
                "tls.key": b"x",
                "ca-bundle.crt": b"x",
            },
            id="garbage",
        ),
    ],
)
def test_an_unreadable_secret_is_replaced(data: dict[str, bytes]) -> None:
    assert Bundle.from_data(data) is None


def test_a_serving_certificate_never_outlives_its_ca(first: Bundle) -> None:
    out = renewed(
        first,
        HOSTS,
        T0 + dt.timedelta(days=199, hours=12),
        Lifetimes(LIFE.ca, dt.timedelta(days=500)),
    )
    assert out is not None
    assert _cert(out.tls_cert).not_valid_after_utc <= _cert(out.ca_cert).not_valid_after_utc
