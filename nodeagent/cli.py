"""Command-line entry point of vramfit's node agent (``vramfit-agent``).

    vramfit-agent --backend {nvml,simulated} --node-name N [--spec PATH] [--kubeconfig PATH]
                  [--listen HOST:PORT] [...]

Parses and validates the arguments (every error at once), builds the agent and runs it until
SIGTERM or SIGINT. ``--once`` prints one status as JSON without touching the API server.
Exit codes: 0 stopped, 1 NVML unavailable with ``--once``, 2 bad arguments or configuration,
3 NVML needs a restart (driver changed).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time

from nodeagent.agent import build_agent, kube_client
from nodeagent.config import ConfigError, argument_parser, settings_from_args
from nodeagent.kube import KubeConfigError


def main(argv: list[str] | None = None) -> int:
    """Run the agent; returns the process exit code."""
    args = argument_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        sys.stderr.write(f"vramfit-agent: {exc}\n")
        return 2
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        client = None if settings.once else kube_client(settings)
        agent = build_agent(settings, client=client)
    except (KubeConfigError, ConfigError) as exc:
        sys.stderr.write(f"vramfit-agent: {exc}\n")
        return 2
    if settings.once:
        sample = agent.poll()
        if settings.backend == "nvml" and sample.reading.error:
            # One retry after the backoff NVML asked for, so a slow driver start is not fatal.
            time.sleep(1.5)
            sample = agent.poll()
        sys.stdout.write(json.dumps(sample.status, indent=2) + "\n")
        agent.sampler.backend.close()
        return 1 if sample.reading.error else 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return agent.run(stop)


if __name__ == "__main__":
    raise SystemExit(main())
