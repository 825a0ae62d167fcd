"""Command-line entry point of vramfit's extender; argument parsing only, the work lives elsewhere."""

from __future__ import annotations

import argparse
import logging
import sys

from extender.config import Settings, SettingsError, build_settings
from extender.server import serve

DEFAULTS = Settings()
"""What each flag defaults to: the settings' own defaults, stated once in ``Settings``."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vramfit-extender",
        description=(
            "kube-scheduler extender that places GPU pods by free VRAM, NVLink islands, loads "
            "in flight and cached weights. Serves /scheduler/{filter,prioritize,bind}, "
            "/healthz, /readyz and /metrics."
        ),
    )
    p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster service account)")
    p.add_argument("--listen", default=DEFAULTS.listen, help="HOST:PORT (default %(default)s)")
    p.add_argument(
        "--metrics-listen",
        help="HOST:PORT of a second listener for /metrics, /healthz and /readyz only "
        "(for probes and Prometheus when --listen is loopback)",
    )
    p.add_argument(
        "--policy",
        default=DEFAULTS.policy,
        help="default policy: binpack or spread (default %(default)s)",
    )
    p.add_argument(
        "--mode",
        default=DEFAULTS.mode.value,
        help="decide: filter returns the best node only; all-feasible: every fit "
        "(default %(default)s)",
    )
    p.add_argument(
        "--assumed-ttl",
        type=float,
        default=DEFAULTS.assumed_ttl_s,
        help="seconds a filter decision holds its GPUs without a bind (default %(default)s)",
    )
    p.add_argument(
        "--max-report-age",
        type=float,
        default=DEFAULTS.fit.max_report_age_s,
        help="seconds after which a node's GPU report is too old to trust (default %(default)s)",
    )
    p.add_argument(
        "--load-budget",
        type=float,
        default=DEFAULTS.fit.load_budget_s or 0.0,
        help="a node takes another cold load (weights not on its disk) only while every cold "
        "load in flight there could finish within this many seconds at its remote bandwidth; "
        "0: no budget (default %(default)s)",
    )
    p.add_argument(
        "--nvlink",
        default=DEFAULTS.fit.nvlink_for_multi_gpu.value,
        help="multi-GPU pods without a vramfit.io/nvlink annotation: required (their GPUs on "
        "one NVLink island), or preferred or none (no such need; linked GPUs only score "
        "higher: none acts as preferred) (default %(default)s)",
    )
    p.add_argument(
        "--nvlink-allocation",
        default="best-effort" if DEFAULTS.fit.nvlink_best_effort else "strict",
        help="pods that require one NVLink island: strict places them only where every set of "
        "GPUs the device plugin may hand out lies on one island; best-effort where its "
        "predicted set does (default %(default)s)",
    )
    p.add_argument("--max-body-bytes", type=int, default=DEFAULTS.max_body_bytes)
    p.add_argument(
        "--threads",
        type=int,
        default=DEFAULTS.threads,
        help="request threads (default %(default)s)",
    )
    p.add_argument(
        "--agent-namespace",
        default=DEFAULTS.agent_namespace,
        help="namespace of the node agents' Leases (default %(default)s)",
    )
    p.add_argument(
        "--scheduler-name",
        default=DEFAULTS.scheduler_name,
        help="schedulerName of the profile that calls this extender: a reservation annotation "
        "on a pod another scheduler places is ignored (default %(default)s)",
    )
    p.add_argument("--bind-lock-timeout", type=float, default=DEFAULTS.bind_lock_timeout_s)
    p.add_argument("--api-timeout", type=float, default=DEFAULTS.api_timeout_s)
    p.add_argument(
        "--read-timeout",
        type=float,
        default=DEFAULTS.read_timeout_s,
        help="seconds a verb connection may take for each read or write; a client that sends "
        "half a request loses its thread after it (default %(default)s)",
    )
    p.add_argument("--watch-timeout", type=int, default=DEFAULTS.watch_timeout_s)
    p.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", help="private key of --tls-cert (PEM)")
    p.add_argument(
        "--tls-client-ca",
        help="require a client certificate signed by this CA (PEM): kube-scheduler presents "
        "one with its extender tlsConfig certFile/keyFile; use it whenever --listen is not "
        "loopback",
    )
    p.add_argument("--log-level", default=DEFAULTS.log_level, help="debug, info, warning, error")
    p.add_argument(
        "--dra-device-class",
        action="append",
        help="a DeviceClass whose ResourceClaims ask for whole GPUs (repeatable; default "
        + ", ".join(sorted(DEFAULTS.dra_device_classes))
        + "; '' alone: watch no claims)",
    )
    p.add_argument(
        "--nominate-ahead",
        action="store_true",
        default=DEFAULTS.nominate_ahead,
        help="decide each new GPU pod from the pod watch and set its status.nominatedNodeName, "
        "so that kube-scheduler's cycle for it checks that one node instead of every node",
    )
    return p


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Validated settings from parsed arguments; raises ``SettingsError`` listing every problem."""
    return build_settings(
        kubeconfig=args.kubeconfig,
        listen=args.listen,
        metrics_listen=args.metrics_listen,
        policy=args.policy,
        mode=args.mode,
        assumed_ttl_s=args.assumed_ttl,
        max_report_age_s=args.max_report_age,
        nvlink=args.nvlink,
        nvlink_allocation=args.nvlink_allocation,
        max_body_bytes=args.max_body_bytes,
        threads=args.threads,
        agent_namespace=args.agent_namespace,
        scheduler_name=args.scheduler_name,
        bind_lock_timeout_s=args.bind_lock_timeout,
        api_timeout_s=args.api_timeout,
        read_timeout_s=args.read_timeout,
        watch_timeout_s=args.watch_timeout,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        log_level=args.log_level,
        dra_device_classes=tuple(args.dra_device_class) if args.dra_device_class else None,
        load_budget_s=args.load_budget,
        nominate_ahead=args.nominate_ahead,
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        sys.stderr.write(f"vramfit-extender: {exc}\n")
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    serve(settings)
    return 0
