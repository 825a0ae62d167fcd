"""Typed, defaulted, validated settings of the extender.

Read once at start-up from the command line; every problem is reported at once, so an operator
fixes a manifest in one go instead of one restart per typo.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

from extender.decisions import Mode
from extender.objects import SCHEDULER_NAME
from extender.wire import DNS_SUBDOMAIN_MAX
from placement.dra import GPU_CLASSES
from placement.listen import format_listen, parse_listen
from placement.model import FitSettings, NvlinkMode
from placement.nodegpustate import LEASE_PREFIX
from placement.policies import PROFILES

AGENT_NAMESPACE = "vramfit-system"
_DEVICE_CLASS = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
NVLINK_ALLOCATIONS = ("strict", "best-effort")
"""``--nvlink-allocation``: a pod that requires one NVLink island goes where every set the
device plugin may hand out lies on one (``strict``), or where its predicted set does."""

MAX_NODE_NAMES = 10_000
"""Node names one filter request may carry at the default body limit (twice the 5,000 nodes
Kubernetes supports)."""
MAX_POD_BYTES = 1536 * 1024
"""The largest object the API server stores (etcd's default request limit, 1.5 MiB): a pod in
a request is never larger."""
MAX_BODY_BYTES = MAX_NODE_NAMES * (DNS_SUBDOMAIN_MAX + len('"",')) + MAX_POD_BYTES + 1024
"""The default request body limit: 10,000 node names of the longest kind, quoted, one pod of
the largest kind, and the envelope (about 3.9 MiB)."""


class SettingsError(ValueError):
    """Invalid settings; ``problems`` lists every one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid extender settings:\n  - " + "\n  - ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the extender can be told. Defaults suit the shipped Deployment."""

    kubeconfig: str | None = None
    host: str = "127.0.0.1"
    port: int = 8888
    metrics_host: str | None = None
    metrics_port: int | None = None
    policy: str = "binpack"
    mode: Mode = Mode.DECIDE
    assumed_ttl_s: float = 30.0
    fit: FitSettings = field(default_factory=FitSettings)
    max_body_bytes: int = MAX_BODY_BYTES
    threads: int = 8
    read_timeout_s: float = 10.0
    agent_namespace: str = AGENT_NAMESPACE
    scheduler_name: str = SCHEDULER_NAME
    lease_prefix: str = LEASE_PREFIX
    bind_lock_timeout_s: float = 5.0
    api_timeout_s: float = 5.0
    watch_timeout_s: int = 300
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    log_level: str = "info"
    # DeviceClasses whose ResourceClaims ask for whole GPUs (none: claims are not watched).
    dra_device_classes: frozenset[str] = GPU_CLASSES
    # Decide new GPU pods from the pod watch and set their nomination (extender.ahead).
    nominate_ahead: bool = False

    @property
    def listen(self) -> str:
        return format_listen(self.host, self.port)

    @property
    def max_connections(self) -> int:
        """Verb connections open at once, idle keep-alive ones included (more wait unaccepted):
        kube-scheduler holds one or two, bench and tests a few per thread."""
        return 8 * self.threads

    @property
    def metrics_listen(self) -> str | None:
        """The probe and metrics listener, which never answers the scheduler verbs."""
        if self.metrics_host is None or self.metrics_port is None:
            return None
        return format_listen(self.metrics_host, self.metrics_port)


def _listeners(
    listen: str, metrics_listen: str | None, problems: list[str]
) -> tuple[tuple[str, int], tuple[str | None, int | None]]:
    """The scheduler listener and the optional probe listener, which must use another port."""
    defaults = Settings()
    host, port = defaults.host, defaults.port
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        problems.append(f"--listen: {exc}")
    if metrics_listen is None:
        return (host, port), (None, None)
    metrics_host: str | None = None
    metrics_port: int | None = None
    try:
        metrics_host, metrics_port = parse_listen(metrics_listen)
    except ValueError as exc:
        problems.append(f"--metrics-listen: {exc}")
    if metrics_port == port:
        problems.append(f"--metrics-listen {metrics_listen!r}: must use another port")
    return (host, port), (metrics_host, metrics_port)


def _choice_problems(*, policy: str, mode: str, nvlink: str, nvlink_allocation: str) -> list[str]:
    problems = []
    if policy not in PROFILES:
        problems.append(f"--policy {policy!r}: expected one of {', '.join(sorted(PROFILES))}")
    modes = [m.value for m in Mode]
    if mode not in modes:
        problems.append(f"--mode {mode!r}: expected one of {', '.join(modes)}")
    nvlinks = [m.value for m in NvlinkMode]
    if nvlink not in nvlinks:
        problems.append(f"--nvlink {nvlink!r}: expected one of {', '.join(nvlinks)}")
    if nvlink_allocation not in NVLINK_ALLOCATIONS:
        problems.append(
            f"--nvlink-allocation {nvlink_allocation!r}: expected one of "
            f"{', '.join(NVLINK_ALLOCATIONS)}"
        )
    return problems


def _limit_problems(
    *,
    seconds: dict[str, float],
    max_body_bytes: int,
    threads: int,
    watch_timeout_s: int,
    agent_namespace: str,
    scheduler_name: str,
) -> list[str]:
    problems = [
        f"{flag} {value!r}: must be a positive number of seconds"
        for flag, value in seconds.items()
        if not value > 0
    ]
    if max_body_bytes < 1024:
        problems.append(f"--max-body-bytes {max_body_bytes}: must be at least 1024")
    if not 1 <= threads <= 256:
        problems.append(f"--threads {threads}: must be in 1..256")
    if not 10 <= watch_timeout_s <= 3600:
        problems.append(f"--watch-timeout {watch_timeout_s}: must be in 10..3600 seconds")
    if not agent_namespace:
        problems.append("--agent-namespace: must not be empty")
    if not scheduler_name:
        problems.append("--scheduler-name: must not be empty")
    return problems


def _file_problems(
    kubeconfig: str | None, tls_cert: str | None, tls_key: str | None, tls_client_ca: str | None
) -> list[str]:
    problems = []
    if kubeconfig is not None and not os.path.isfile(kubeconfig):
        problems.append(f"--kubeconfig {kubeconfig!r}: no such file")
    if (tls_cert is None) != (tls_key is None):
        problems.append("--tls-cert and --tls-key: give both or neither")
    if tls_client_ca is not None and tls_cert is None:
        problems.append("--tls-client-ca: needs --tls-cert and --tls-key (it checks TLS clients)")
    for flag, path in (
        ("--tls-cert", tls_cert),
        ("--tls-key", tls_key),
        ("--tls-client-ca", tls_client_ca),
    ):
        if path is not None and not os.path.isfile(path):
            problems.append(f"{flag} {path!r}: no such file")
    return problems


def build_settings(
    *,
    kubeconfig: str | None,
    listen: str,
    metrics_listen: str | None,
    policy: str,
    mode: str,
    assumed_ttl_s: float,
    max_report_age_s: float,
    nvlink: str,
    max_body_bytes: int,
    nvlink_allocation: str = NVLINK_ALLOCATIONS[0],
    threads: int,
    agent_namespace: str,
    scheduler_name: str,
    bind_lock_timeout_s: float,
    api_timeout_s: float,
    read_timeout_s: float,
    watch_timeout_s: int,
    tls_cert: str | None,
    tls_key: str | None,
    tls_client_ca: str | None,
    log_level: str,
    dra_device_classes: tuple[str, ...] | None = None,
    load_budget_s: float = FitSettings().load_budget_s or 0.0,
    nominate_ahead: bool = False,
) -> Settings:
    """Validate raw values into ``Settings``; raises ``SettingsError`` listing every problem.
    ``load_budget_s`` 0 turns the load budget off (``placement.loadbudget``)."""
    problems: list[str] = []
    if not (math.isfinite(load_budget_s) and load_budget_s >= 0):
        problems.append(f"--load-budget {load_budget_s!r}: must be 0 (off) or a number of seconds")
    (host, port), (metrics_host, metrics_port) = _listeners(listen, metrics_listen, problems)
    problems += _choice_problems(
        policy=policy, mode=mode, nvlink=nvlink, nvlink_allocation=nvlink_allocation
    )
    problems += _limit_problems(
        seconds={
            "--assumed-ttl": assumed_ttl_s,
            "--max-report-age": max_report_age_s,
            "--bind-lock-timeout": bind_lock_timeout_s,
            "--api-timeout": api_timeout_s,
            "--read-timeout": read_timeout_s,
        },
        max_body_bytes=max_body_bytes,
        threads=threads,
        watch_timeout_s=watch_timeout_s,
        agent_namespace=agent_namespace,
        scheduler_name=scheduler_name,
    )
    problems += _file_problems(kubeconfig, tls_cert, tls_key, tls_client_ca)
    levels = ("debug", "info", "warning", "error")
    if log_level not in levels:
        problems.append(f"--log-level {log_level!r}: expected one of {', '.join(levels)}")
    classes = GPU_CLASSES if dra_device_classes is None else frozenset(dra_device_classes) - {""}
    problems += [
        f"--dra-device-class {c!r}: not a DeviceClass name (a DNS subdomain)"
        for c in sorted(classes)
        if len(c) > DNS_SUBDOMAIN_MAX or not _DEVICE_CLASS.fullmatch(c)
    ]
    if problems:
        raise SettingsError(problems)
    return Settings(
        kubeconfig=kubeconfig,
        host=host,
        port=port,
        metrics_host=metrics_host,
        metrics_port=metrics_port,
        policy=policy,
        mode=Mode(mode),
        assumed_ttl_s=assumed_ttl_s,
        fit=FitSettings(
            max_report_age_s=max_report_age_s,
            nvlink_for_multi_gpu=NvlinkMode(nvlink),
            nvlink_best_effort=nvlink_allocation == "best-effort",
            load_budget_s=load_budget_s if load_budget_s > 0 else None,
        ),
        max_body_bytes=max_body_bytes,
        threads=threads,
        agent_namespace=agent_namespace,
        scheduler_name=scheduler_name,
        bind_lock_timeout_s=bind_lock_timeout_s,
        api_timeout_s=api_timeout_s,
        read_timeout_s=read_timeout_s,
        watch_timeout_s=watch_timeout_s,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=tls_client_ca,
        log_level=log_level,
        dra_device_classes=classes,
        nominate_ahead=nominate_ahead,
    )
