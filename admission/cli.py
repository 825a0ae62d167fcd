"""Command-line entry point of vramfit's admission webhook; argument parsing only."""

from __future__ import annotations

import argparse
import logging
import sys

from admission.config import Settings, SettingsError, build_settings
from admission.server import serve

DEFAULTS = Settings()
"""What each flag defaults to: the settings' own defaults, stated once in ``Settings``."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vramfit-admission",
        description=(
            "Mutating admission webhook for GPU pods: fills absent vramfit.io/* annotations from "
            "what KServe puts on the pod and the model catalog, and adds required node affinity "
            "on GPU Feature Discovery labels so that autoscalers see the GPU memory a pod needs. "
            "Serves POST /mutate over TLS; /healthz, /readyz and /metrics on --metrics-listen."
        ),
    )
    p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster service account)")
    p.add_argument("--listen", default=DEFAULTS.listen, help="TLS HOST:PORT (default %(default)s)")
    p.add_argument(
        "--metrics-listen",
        default=DEFAULTS.metrics_listen,
        help="plain-HTTP HOST:PORT for probes and metrics (default %(default)s)",
    )
    p.add_argument(
        "--certificates",
        default=DEFAULTS.cert_mode,
        help="self: generate a CA and serving certificate into --secret, renew them, and patch "
        "the caBundle of --webhook-configuration; files: serve --tls-cert/--tls-key as another "
        "tool (cert-manager) keeps them (default %(default)s)",
    )
    p.add_argument("--tls-cert", help="serving certificate (PEM), --certificates files")
    p.add_argument("--tls-key", help="its private key (PEM), --certificates files")
    p.add_argument(
        "--secret",
        default=f"{DEFAULTS.secret_namespace}/{DEFAULTS.secret_name}",
        help="NAMESPACE/NAME of the certificate Secret (default %(default)s)",
    )
    p.add_argument(
        "--webhook-configuration",
        default=DEFAULTS.webhook_configuration,
        help="MutatingWebhookConfiguration whose caBundle is kept (default %(default)s)",
    )
    p.add_argument(
        "--hosts",
        default=",".join(DEFAULTS.hosts),
        help="comma-separated DNS names and IP addresses of the serving certificate (default %(default)s)",
    )
    p.add_argument(
        "--cert-dir",
        default=DEFAULTS.cert_dir,
        help="folder of the serving file (default %(default)s)",
    )
    p.add_argument("--ca-days", type=int, default=DEFAULTS.ca_days)
    p.add_argument("--serving-days", type=int, default=DEFAULTS.serving_days)
    p.add_argument(
        "--check-interval",
        type=float,
        default=DEFAULTS.check_interval_s,
        help="seconds between certificate checks (default %(default)s)",
    )
    p.add_argument("--model-catalog", help="model catalog YAML (default: the shipped catalog)")
    p.add_argument(
        "--gpu-memory-utilization", type=float, default=DEFAULTS.headroom.gpu_memory_utilization
    )
    p.add_argument("--kv-cache-fraction", type=float, default=DEFAULTS.headroom.kv_cache_fraction)
    p.add_argument("--max-body-bytes", type=int, default=DEFAULTS.max_body_bytes)
    p.add_argument("--threads", type=int, default=DEFAULTS.threads)
    p.add_argument("--request-timeout", type=float, default=DEFAULTS.request_timeout_s)
    p.add_argument("--api-timeout", type=float, default=DEFAULTS.api_timeout_s)
    p.add_argument("--log-level", default=DEFAULTS.log_level, help="debug, info, warning, error")
    return p


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Validated settings from parsed arguments; raises ``SettingsError`` listing every problem."""
    return build_settings(
        listen=args.listen,
        metrics_listen=args.metrics_listen,
        kubeconfig=args.kubeconfig,
        cert_mode=args.certificates,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        secret=args.secret,
        webhook_configuration=args.webhook_configuration,
        hosts=args.hosts,
        cert_dir=args.cert_dir,
        ca_days=args.ca_days,
        serving_days=args.serving_days,
        check_interval_s=args.check_interval,
        model_catalog=args.model_catalog,
        gpu_memory_utilization=args.gpu_memory_utilization,
        kv_cache_fraction=args.kv_cache_fraction,
        max_body_bytes=args.max_body_bytes,
        threads=args.threads,
        request_timeout_s=args.request_timeout,
        api_timeout_s=args.api_timeout,
        log_level=args.log_level,
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        sys.stderr.write(f"vramfit-admission: {exc}\n")
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    serve(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
