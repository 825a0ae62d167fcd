"""The webhook's own certificates: a private CA, a serving certificate it signs, and when to renew.

The API server calls the webhook over TLS and trusts the PEM bundle in the webhook
configuration's ``caBundle``. vramfit keeps a CA and a serving certificate in one Secret and
renews each when a third of its life is left. A new serving certificate from the same CA changes
nothing the API server sees; a new CA is added to the bundle beside the old one, which stays until
it expires, so no certificate in use is ever untrusted while replicas and the bundle catch up.
With cert-manager none of this runs (the certificate comes from mounted files).

Pure apart from key generation's randomness: times are passed in, nothing is read or written.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME: Final = "vramfit-admission-ca"
RENEW_FRACTION: Final = 1 / 3
"""Renew a certificate when less than this share of its validity is left."""
BACKDATE: Final = dt.timedelta(minutes=5)
"""Certificates start a little in the past, so a clock slightly behind still accepts them."""

# Secret data keys.
K_CA_CERT: Final = "ca.crt"
K_CA_KEY: Final = "ca.key"
K_TLS_CERT: Final = "tls.crt"
K_TLS_KEY: Final = "tls.key"
K_BUNDLE: Final = "ca-bundle.crt"


@dataclass(frozen=True, slots=True)
class Bundle:
    """Everything the Secret holds (PEM bytes): the CA, the serving pair, and the CAs to trust."""

    ca_cert: bytes
    ca_key: bytes
    tls_cert: bytes
    tls_key: bytes
    trusted: bytes

    def data(self) -> dict[str, bytes]:
        return {
            K_CA_CERT: self.ca_cert,
            K_CA_KEY: self.ca_key,
            K_TLS_CERT: self.tls_cert,
            K_TLS_KEY: self.tls_key,
            K_BUNDLE: self.trusted,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, bytes]) -> Bundle | None:
        """The bundle in a Secret's decoded data; ``None`` when a part is missing or unreadable."""
        parts = [data.get(k) for k in (K_CA_CERT, K_CA_KEY, K_TLS_CERT, K_TLS_KEY, K_BUNDLE)]
        if any(not p for p in parts):
            return None
        bundle = cls(*(p for p in parts if p is not None))
        try:
            x509.load_pem_x509_certificate(bundle.ca_cert)
            x509.load_pem_x509_certificate(bundle.tls_cert)
            x509.load_pem_x509_certificates(bundle.trusted)
            serialization.load_pem_private_key(bundle.ca_key, None)
            serialization.load_pem_private_key(bundle.tls_key, None)
        except ValueError:
            return None
        return bundle

    @property
    def serving_pem(self) -> bytes:
        """Certificate then key, one file, so a server never loads a mismatched pair."""
        return self.tls_cert + self.tls_key

    @property
    def not_after(self) -> dt.datetime:
        return x509.load_pem_x509_certificate(self.tls_cert).not_valid_after_utc


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """How long each certificate is valid."""

    ca: dt.timedelta = dt.timedelta(days=3650)
    serving: dt.timedelta = dt.timedelta(days=90)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _alt_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def new_ca(now: dt.datetime, lifetime: dt.timedelta) -> tuple[bytes, bytes]:
    """A self-signed CA certificate and its key (PEM)."""
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _pem(cert), _pem_key(key)


def new_serving(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    hosts: Sequence[str],
    now: dt.datetime,
    lifetime: dt.timedelta,
) -> tuple[bytes, bytes]:
    """A serving certificate for ``hosts`` (DNS names or IP addresses) signed by the CA."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an EC key")
    key = _key()
    not_after = min(now + lifetime, ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(_alt_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return _pem(cert), _pem_key(key)


def _due(cert: x509.Certificate, now: dt.datetime) -> bool:
    """Is less than ``RENEW_FRACTION`` of the certificate's life left (or is it not valid yet)?"""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return now < start or (end - now) < (end - start) * RENEW_FRACTION


def _hosts(cert: x509.Certificate) -> set[str]:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(n) for n in names.get_values_for_type(x509.DNSName)} | {
        str(ip) for ip in names.get_values_for_type(x509.IPAddress)
    }


def _trusted(cas: Sequence[x509.Certificate], now: dt.datetime) -> bytes:
    """The CAs still valid, each once, newest first."""
    seen: set[bytes] = set()
    kept = []
    for ca in sorted(cas, key=lambda c: c.not_valid_before_utc, reverse=True):
        der = ca.public_bytes(serialization.Encoding.DER)
        if ca.not_valid_after_utc > now and der not in seen:
            seen.add(der)
            kept.append(_pem(ca))
    return b"".join(kept)


def renewed(
    current: Bundle | None, hosts: Sequence[str], now: dt.datetime, lifetimes: Lifetimes
) -> Bundle | None:
    """The bundle to store, or ``None`` when ``current`` is good as it is.

    Nothing stored (or unreadable): a new CA and serving pair. A CA within its renewal window: a
    new CA, trusted beside the old one, and a serving pair from it. A serving certificate within
    its window, for other hosts, or not from the current CA: a new serving pair. CAs that have
    expired leave the trusted bundle.
    """
    if not hosts:
        raise ValueError("a serving certificate needs at least one host name")
    if current is None:
        ca_cert, ca_key = new_ca(now, lifetimes.ca)
        tls_cert, tls_key = new_serving(ca_cert, ca_key, hosts, now, lifetimes.serving)
        return Bundle(ca_cert, ca_key, tls_cert, tls_key, ca_cert)
    ca = x509.load_pem_x509_certificate(current.ca_cert)
    serving = x509.load_pem_x509_certificate(current.tls_cert)
    trusted = x509.load_pem_x509_certificates(current.trusted)
    bundle = current
    if _due(ca, now):
        ca_cert, ca_key = new_ca(now, lifetimes.ca)
        ca = x509.load_pem_x509_certificate(ca_cert)
        bundle = replace(bundle, ca_cert=ca_cert, ca_key=ca_key)
    if (
        bundle is not current
        or _due(serving, now)
        or _hosts(serving) != set(hosts)
        or serving.issuer != ca.subject
        or not _signed_by(serving, ca)
    ):
        tls_cert, tls_key = new_serving(
            bundle.ca_cert, bundle.ca_key, hosts, now, lifetimes.serving
        )
        bundle = replace(bundle, tls_cert=tls_cert, tls_key=tls_key)
    bundle = replace(bundle, trusted=_trusted([ca, *trusted], now))
    return None if bundle == current else bundle


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
