"""Typed, defaulted, validated settings of the admission webhook, read once at start-up.

Every problem is reported at once. The certificate comes from one of two places: ``self`` (the
default: vramfit generates a CA and a serving certificate into a Secret, renews them and patches
the webhook configuration's ``caBundle``) or ``files`` (a certificate another tool keeps, such as
cert-manager's Secret mounted into the pod, whose ``caBundle`` that tool's CA injector fills).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from typing import Final

from placement.listen import format_listen, parse_listen
from placement.models import Headroom

NAMESPACE: Final = "vramfit-system"
SERVICE: Final = "vramfit-admission"
CERT_MODES: Final = ("self", "files")
LOG_LEVELS: Final = ("debug", "info", "warning", "error")


class SettingsError(ValueError):
    """Invalid settings; ``problems`` lists every one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid admission settings:\n  - " + "\n  - ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the webhook can be told. Defaults suit the shipped Deployment."""

    kubeconfig: str | None = None
    host: str = "0.0.0.0"
    port: int = 9443
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 9444
    cert_mode: str = "self"
    tls_cert: str | None = None
    tls_key: str | None = None
    secret_namespace: str = NAMESPACE
    secret_name: str = "vramfit-admission-tls"
    webhook_configuration: str = "vramfit-admission"
    hosts: tuple[str, ...] = (
        f"{SERVICE}.{NAMESPACE}.svc",
        f"{SERVICE}.{NAMESPACE}.svc.cluster.local",
    )
    cert_dir: str = "/tmp/vramfit-admission"
    ca_days: int = 3650
    serving_days: int = 90
    check_interval_s: float = 3600.0
    model_catalog: str | None = None
    headroom: Headroom = field(default_factory=Headroom)
    max_body_bytes: int = 4 * 1024 * 1024
    threads: int = 8
    request_timeout_s: float = 10.0
    api_timeout_s: float = 5.0
    log_level: str = "info"

    @property
    def listen(self) -> str:
        return format_listen(self.host, self.port)

    @property
    def metrics_listen(self) -> str:
        return format_listen(self.metrics_host, self.metrics_port)

    @property
    def lifetimes(self) -> tuple[dt.timedelta, dt.timedelta]:
        return dt.timedelta(days=self.ca_days), dt.timedelta(days=self.serving_days)

    @property
    def serving_file(self) -> str:
        """The PEM file (certificate then key) the TLS listener loads for each connection."""
        return os.path.join(self.cert_dir, "serving.pem")


def _listen(flag: str, text: str, default: tuple[str, int], problems: list[str]) -> tuple[str, int]:
    try:
        return parse_listen(text)
    except ValueError as exc:
        problems.append(f"{flag}: {exc}")
        return default


def _hosts(text: str) -> tuple[str, ...]:
    return tuple(h.strip() for h in text.split(",") if h.strip())


def _file_problems(**paths: str | None) -> list[str]:
    return [
        f"--{flag.replace('_', '-')} {path!r}: no such file"
        for flag, path in paths.items()
        if path is not None and not os.path.isfile(path)
    ]


def _certificate_problems(
    cert_mode: str, tls_cert: str | None, tls_key: str | None, hosts: str
) -> list[str]:
    problems = []
    if cert_mode not in CERT_MODES:
        problems.append(f"--certificates {cert_mode!r}: expected one of {', '.join(CERT_MODES)}")
    if cert_mode == "files" and not (tls_cert and tls_key):
        problems.append("--certificates files: give --tls-cert and --tls-key")
    problems += _file_problems(tls_cert=tls_cert, tls_key=tls_key)
    if cert_mode == "self" and not _hosts(hosts):
        problems.append("--hosts: at least one DNS name or IP address for the certificate")
    return problems


def build_settings(
    *,
    listen: str,
    metrics_listen: str,
    kubeconfig: str | None = None,
    cert_mode: str = "self",
    tls_cert: str | None = None,
    tls_key: str | None = None,
    secret: str = f"{NAMESPACE}/vramfit-admission-tls",
    webhook_configuration: str = "vramfit-admission",
    hosts: str = ",".join(Settings().hosts),
    cert_dir: str = Settings().cert_dir,
    ca_days: int = 3650,
    serving_days: int = 90,
    check_interval_s: float = 3600.0,
    model_catalog: str | None = None,
    gpu_memory_utilization: float = Headroom().gpu_memory_utilization,
    kv_cache_fraction: float = Headroom().kv_cache_fraction,
    max_body_bytes: int = Settings().max_body_bytes,
    threads: int = 8,
    request_timeout_s: float = 10.0,
    api_timeout_s: float = 5.0,
    log_level: str = "info",
) -> Settings:
    """Validate raw values into ``Settings``; raises ``SettingsError`` listing every problem."""
    problems: list[str] = []
    defaults = Settings()
    host, port = _listen("--listen", listen, (defaults.host, defaults.port), problems)
    metrics_host, metrics_port = _listen(
        "--metrics-listen", metrics_listen, (defaults.metrics_host, defaults.metrics_port), problems
    )
    if port == metrics_port:
        problems.append("--metrics-listen: must use another port than --listen")
    problems += _certificate_problems(cert_mode, tls_cert, tls_key, hosts)
    problems += _file_problems(kubeconfig=kubeconfig, model_catalog=model_catalog)
    secret_namespace, slash, secret_name = secret.partition("/")
    if not (slash and secret_namespace and secret_name):
        problems.append(f"--secret {secret!r}: expected NAMESPACE/NAME")
    host_list = _hosts(hosts)
    if not webhook_configuration:
        problems.append("--webhook-configuration: must not be empty")
    if not 1 <= serving_days < ca_days:
        problems.append(
            f"--serving-days {serving_days} and --ca-days {ca_days}: need 1 <= serving < CA"
        )
    headroom = Headroom(
        gpu_memory_utilization=gpu_memory_utilization, kv_cache_fraction=kv_cache_fraction
    )
    problems += headroom.errors()
    for flag, seconds in (
        ("--check-interval", check_interval_s),
        ("--request-timeout", request_timeout_s),
        ("--api-timeout", api_timeout_s),
    ):
        if not seconds > 0:
            problems.append(f"{flag} {seconds!r}: must be a positive number of seconds")
    if max_body_bytes < 64 * 1024:
        problems.append(f"--max-body-bytes {max_body_bytes}: must be at least 65536")
    if not 1 <= threads <= 256:
        problems.append(f"--threads {threads}: must be in 1..256")
    if log_level not in LOG_LEVELS:
        problems.append(f"--log-level {log_level!r}: expected one of {', '.join(LOG_LEVELS)}")
    if problems:
        raise SettingsError(problems)
    return Settings(
        kubeconfig=kubeconfig,
        host=host,
        port=port,
        metrics_host=metrics_host,
        metrics_port=metrics_port,
        cert_mode=cert_mode,
        tls_cert=tls_cert,
        tls_key=tls_key,
        secret_namespace=secret_namespace,
        secret_name=secret_name,
        webhook_configuration=webhook_configuration,
        hosts=host_list,
        cert_dir=cert_dir,
        ca_days=ca_days,
        serving_days=serving_days,
        check_interval_s=check_interval_s,
        model_catalog=model_catalog,
        headroom=headroom,
        max_body_bytes=max_body_bytes,
        threads=threads,
        request_timeout_s=request_timeout_s,
        api_timeout_s=api_timeout_s,
        log_level=log_level,
    )
