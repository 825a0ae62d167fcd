"""The agent's settings: typed, defaulted, and validated at start-up with every error at once.

A DaemonSet that crash-loops on its first bad flag, then on the next, wastes an operator's
afternoon; ``settings_from_args`` checks everything and raises one ``ConfigError`` listing each
problem with the flag that carries it.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path

from nodeagent.change import MIB, ChangeSettings
from nodeagent.nvml.backend import NvmlSettings
from nodeagent.podresources import DEFAULT_SOCKET
from nodeagent.publish import PublishSettings
from placement.listen import format_listen, parse_listen

BACKENDS = ("nvml", "simulated")
ANY_HOST = "0.0.0.0"
"""The host of a ``--listen`` that names none (``:9402``): every interface, for Prometheus."""
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class ConfigError(ValueError):
    """Invalid settings; ``problems`` names every bad flag."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid settings:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the agent is told at start-up."""

    backend: str
    node_name: str
    spec_path: Path | None = None
    kubeconfig: Path | None = None
    kubelet_kubeconfig: Path | None = None
    listen_host: str = ANY_HOST
    listen_port: int = 9402
    poll_interval_s: float = 1.0
    publish: PublishSettings = field(default_factory=PublishSettings)
    nvml: NvmlSettings = field(default_factory=NvmlSettings)
    pod_resources_socket: Path | None = DEFAULT_SOCKET
    proc_root: Path = Path("/proc")
    cache_dirs: tuple[Path, ...] = ()
    cache_rescan_s: float = 60.0
    model_catalog: Path | None = None
    local_disk_bandwidth: float | None = None
    remote_bandwidth: float | None = None
    complete_deletions: bool = True
    kubelet_honours_reservations: bool = False
    dra_driver: bool = False
    once: bool = False
    metrics_gpu_uuids: bool = False
    log_level: str = "INFO"


DEFAULTS = Settings(backend=BACKENDS[0], node_name="")
"""What each optional flag defaults to, stated once in ``Settings`` and the settings it holds
(``--backend`` and ``--node-name`` are required, so their values here are never used)."""


def _bandwidth(value: str | None, flag: str, problems: list[str]) -> float | None:
    if value is None:
        return None
    # Imported here: the quantity parser loads the kubernetes client package, which an agent
    # that is not told a bandwidth does not need to carry.
    from placement.quantity import QuantityError, parse_bytes  # noqa: PLC0415

    try:
        n = parse_bytes(value, flag)
    except QuantityError as exc:
        problems.append(str(exc))
        return None
    if n <= 0:
        problems.append(f"{flag}: must be more than 0 bytes per second")
        return None
    return float(n)


def _node_name(value: object, problems: list[str]) -> str:
    node = str(value or "")
    if not node:
        problems.append(
            "--node-name: required (in a DaemonSet, pass the NODE_NAME from spec.nodeName)"
        )
    elif len(node) > 253 or not _DNS_SUBDOMAIN.fullmatch(node):
        problems.append(f"--node-name: {node!r} is not a valid node name (RFC 1123 subdomain)")
    return node


def _files(
    args: argparse.Namespace, backend: str, problems: list[str]
) -> tuple[Path | None, Path | None]:
    """The simulated node spec and the kubeconfig, each a file that exists."""
    spec = Path(args.spec) if args.spec else None
    if spec is not None and backend == "nvml":
        problems.append("--spec: only used with --backend simulated")
    if spec is not None and backend == "simulated" and not spec.is_file():
        problems.append(f"--spec: {spec} is not a file")
    kubeconfig = Path(args.kubeconfig) if args.kubeconfig else None
    if kubeconfig is not None and not kubeconfig.is_file():
        problems.append(f"--kubeconfig: {kubeconfig} is not a file")
    if getattr(args, "kubelet_honours_reservations", False) and backend == "nvml":
        problems.append("--kubelet-honours-reservations: only used with --backend simulated")
    if getattr(args, "dra_driver", False) and backend == "nvml":
        problems.append("--dra-driver: only used with --backend simulated")
    kubelet = getattr(args, "kubelet_kubeconfig", None)
    if kubelet and backend == "nvml":
        problems.append("--kubelet-kubeconfig: only used with --backend simulated")
    elif kubelet and not Path(kubelet).is_file():
        problems.append(f"--kubelet-kubeconfig: {kubelet} is not a file")
    return spec, kubeconfig


def _publish(args: argparse.Namespace, poll: float, problems: list[str]) -> PublishSettings:
    """When the status and the Lease are written; the status at least twice per report age."""
    max_age = float(args.max_report_age)
    if max_age < max(2 * poll, 5.0):
        problems.append(
            f"--max-report-age: {max_age}s must be at least 5s and twice the poll interval"
        )
    min_interval = float(args.min_write_interval)
    if min_interval < 0 or min_interval > max_age:
        problems.append(
            f"--min-write-interval: {min_interval}s must be between 0 and --max-report-age"
        )
    threshold_mib = int(args.memory_threshold_mib)
    if threshold_mib < 0:
        problems.append(f"--memory-threshold-mib: {threshold_mib} must not be negative")
    lease_duration = int(args.lease_duration)
    lease_renew = float(args.lease_renew)
    if lease_duration < 10:
        problems.append(f"--lease-duration: {lease_duration}s must be at least 10s")
    if not 1 <= lease_renew <= lease_duration / 2:
        problems.append(
            f"--lease-renew: {lease_renew}s must be between 1s and half the lease duration"
        )
    return PublishSettings(
        namespace=str(args.lease_namespace),
        lease_duration_s=lease_duration,
        lease_renew_s=lease_renew,
        change=ChangeSettings(
            memory_threshold_bytes=threshold_mib * MIB,
            min_interval_s=min_interval,
            max_age_s=max_age,
        ),
        stale_after_s=max(DEFAULTS.publish.stale_after_s, 5 * poll),
    )


def _cache(
    args: argparse.Namespace, problems: list[str]
) -> tuple[tuple[Path, ...], float, Path | None]:
    """The model cache folders (absolute), how often they are scanned, and the model catalog
    that names KServe's cached models (``None``: the shipped one)."""
    cache_dirs = tuple(Path(d) for d in args.cache_dir or ())
    for d in cache_dirs:
        if not d.is_absolute():
            problems.append(f"--cache-dir: {d} must be an absolute path")
    rescan = float(args.cache_rescan)
    if rescan < 1:
        problems.append(f"--cache-rescan: {rescan}s must be at least 1s")
    catalog = getattr(args, "model_catalog", None)
    if catalog and not Path(catalog).is_file():
        problems.append(f"--model-catalog: {catalog} is not a file")
    return cache_dirs, rescan, Path(catalog) if catalog else None


def _nvml(args: argparse.Namespace, problems: list[str]) -> NvmlSettings:
    """How long a critical XID holds a GPU, and which XIDs do not count."""
    xid_hold = float(args.xid_hold)
    if xid_hold < 0:
        problems.append(f"--xid-hold: {xid_hold}s must not be negative")
    ignored = DEFAULTS.nvml.ignored_xids
    if args.ignore_xids is not None:
        try:
            ignored = frozenset(int(x) for x in str(args.ignore_xids).split(",") if x.strip())
        except ValueError:
            problems.append(
                f"--ignore-xids: {args.ignore_xids!r} is not a comma-separated list of numbers"
            )
    return NvmlSettings(xid_hold_s=xid_hold, ignored_xids=ignored)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Validated settings from parsed arguments; ``ConfigError`` lists every problem."""
    problems: list[str] = []
    backend = str(args.backend)
    if backend not in BACKENDS:
        problems.append(f"--backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    node = _node_name(args.node_name, problems)
    spec, kubeconfig = _files(args, backend, problems)
    host, port = DEFAULTS.listen_host, DEFAULTS.listen_port
    try:
        host, port = parse_listen(str(args.listen), any_host=ANY_HOST, allow_port_zero=True)
    except ValueError as exc:
        problems.append(f"--listen: {exc}")
    poll = float(args.poll_interval)
    if not 0.05 <= poll <= 60:
        problems.append(f"--poll-interval: {poll} must be between 0.05 and 60 seconds")
    publish = _publish(args, poll, problems)
    socket: Path | None = Path(args.pod_resources_socket) if args.pod_resources_socket else None
    cache_dirs, rescan, model_catalog = _cache(args, problems)
    nvml = _nvml(args, problems)
    level = str(args.log_level).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        problems.append(f"--log-level: {args.log_level!r} is not DEBUG, INFO, WARNING or ERROR")
    local = _bandwidth(args.local_disk_bandwidth, "--local-disk-bandwidth", problems)
    remote = _bandwidth(args.remote_bandwidth, "--remote-bandwidth", problems)
    if problems:
        raise ConfigError(problems)
    return Settings(
        backend=backend,
        node_name=node,
        spec_path=spec,
        kubeconfig=kubeconfig,
        kubelet_kubeconfig=Path(kubelet)
        if (kubelet := getattr(args, "kubelet_kubeconfig", None))
        else None,
        listen_host=host,
        listen_port=port,
        poll_interval_s=poll,
        publish=publish,
        nvml=nvml,
        pod_resources_socket=socket if backend == "nvml" else None,
        proc_root=Path(args.proc_root),
        cache_dirs=cache_dirs,
        cache_rescan_s=rescan,
        model_catalog=model_catalog,
        local_disk_bandwidth=local,
        remote_bandwidth=remote,
        complete_deletions=not args.no_complete_deletions,
        kubelet_honours_reservations=bool(args.kubelet_honours_reservations),
        dra_driver=bool(getattr(args, "dra_driver", False)),
        once=bool(args.once),
        metrics_gpu_uuids=bool(args.metrics_gpu_uuids),
        log_level=level,
    )


def argument_parser() -> argparse.ArgumentParser:
    """The ``vramfit-agent`` command line; every default is read from ``DEFAULTS``."""
    d, change = DEFAULTS, DEFAULTS.publish.change
    p = argparse.ArgumentParser(
        prog="vramfit-agent",
        description="Publish what this GPU node really has (NodeGPUState + Lease + /metrics).",
    )
    p.add_argument(
        "--backend", required=True, choices=BACKENDS, help="where GPU readings come from"
    )
    p.add_argument("--node-name", required=True, help="this node's name (spec.nodeName)")
    p.add_argument("--spec", help="simulated node spec YAML (default: the built-in cluster)")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: the pod's service account)")
    p.add_argument(
        "--listen",
        default=format_listen(d.listen_host, d.listen_port),
        help="HOST:PORT for /metrics /healthz /readyz (default %(default)s)",
    )
    p.add_argument(
        "--metrics-gpu-uuids",
        action="store_true",
        help="label /metrics series with GPU and MIG UUIDs too (default: by index only; "
        "/metrics is unauthenticated, and a UUID is what a reservation names)",
    )
    p.add_argument(
        "--poll-interval",
        type=float,
        default=d.poll_interval_s,
        help="seconds between GPU readings (default %(default)s)",
    )
    p.add_argument(
        "--max-report-age",
        type=float,
        default=change.max_age_s,
        help="rewrite the status at least this often (s, default %(default)s)",
    )
    p.add_argument(
        "--min-write-interval",
        type=float,
        default=change.min_interval_s,
        help="least seconds between memory-only writes (default %(default)s)",
    )
    p.add_argument(
        "--memory-threshold-mib",
        type=int,
        default=change.memory_threshold_bytes // MIB,
        help="memory move (MiB) worth a write (default %(default)s)",
    )
    p.add_argument(
        "--lease-namespace",
        default=d.publish.namespace,
        help="namespace of the agent's Lease (default %(default)s)",
    )
    p.add_argument(
        "--lease-duration",
        type=int,
        default=d.publish.lease_duration_s,
        help="Lease duration (s, default %(default)s)",
    )
    p.add_argument(
        "--lease-renew",
        type=float,
        default=d.publish.lease_renew_s,
        help="seconds between Lease renewals (default %(default)s)",
    )
    p.add_argument(
        "--pod-resources-socket",
        default=str(d.pod_resources_socket or ""),
        help="kubelet pod-resources socket ('' to go without: holders from process cgroups)",
    )
    p.add_argument(
        "--proc-root",
        default=str(d.proc_root),
        help="where host processes are visible (hostPID; default %(default)s)",
    )
    p.add_argument(
        "--cache-dir",
        action="append",
        help="folder with cached model weights (repeatable); for KServe's LocalModelCache, "
        "its host folder (the one holding models/)",
    )
    p.add_argument(
        "--cache-rescan",
        type=float,
        default=d.cache_rescan_s,
        help="seconds between cache scans (default %(default)s)",
    )
    p.add_argument(
        "--model-catalog",
        help="model catalog YAML that names KServe's cached models, as the planner's --models "
        "(default: the shipped catalog)",
    )
    p.add_argument(
        "--local-disk-bandwidth", help="measured local disk read bandwidth, bytes/s quantity"
    )
    p.add_argument("--remote-bandwidth", help="measured remote storage bandwidth, bytes/s quantity")
    p.add_argument(
        "--xid-hold",
        type=float,
        default=d.nvml.xid_hold_s,
        help="seconds a critical XID keeps a GPU unhealthy (default %(default)s)",
    )
    p.add_argument(
        "--ignore-xids",
        help="comma-separated XIDs that do not make a GPU unhealthy (default "
        + ",".join(map(str, sorted(d.nvml.ignored_xids)))
        + ")",
    )
    p.add_argument(
        "--kubelet-kubeconfig",
        help="simulated kubelet: the kubelet's own kubeconfig for its pod status writes and "
        "deletions (a real kubelet is not the agent; default: --kubeconfig)",
    )
    p.add_argument(
        "--no-complete-deletions",
        action="store_true",
        help="simulated kubelet: leave deleted pods Terminating instead of finishing their deletion",
    )
    p.add_argument(
        "--kubelet-honours-reservations",
        action="store_true",
        help="simulated kubelet: give a pod the GPUs in vramfit's reservation when they are free, "
        "which no real kubelet does (default: the device plugin's rule, reservation unread)",
    )
    p.add_argument(
        "--dra-driver",
        action="store_true",
        help="simulated kubelet: play NVIDIA's DRA driver for GPUs (publish the node's GPUs in "
        "a ResourceSlice of gpu.nvidia.com, give pods the GPUs their ResourceClaims were "
        "allocated) as well as the device plugin",
    )
    p.add_argument("--once", action="store_true", help="print one status as JSON and exit (no API)")
    p.add_argument(
        "--log-level",
        default=d.log_level,
        help="DEBUG, INFO, WARNING or ERROR (default %(default)s)",
    )
    return p
