"""``make demo``: plan the bundled example fleet (about 30 InferenceServices and two
LLMInferenceServices, 7B to 671B, some scale-to-zero, some tensor parallel, prefill and decode
apart, two multi-node groups, one model too large for the pool its nodeSelector pins) and print
the report; then replay the burst simulator's morning burst when the simulator is installed."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from rich.console import Console

from planner.cli import EXIT_OK, EXIT_UNPLACEABLE
from planner.cli import main as plan_main


def _data(name: str) -> Path:
    return Path(str(resources.files("planner.data").joinpath(name)))


def main() -> int:
    """Run the plan on the example fleet, then the burst comparison if available."""
    console = Console()
    console.rule("vramfit-plan on the example fleet")
    rc = plan_main(
        [
            "--from",
            str(_data("fleet")),
            "--traffic",
            str(_data("fleet-traffic.yaml")),
            "--time-limit",
            "5",
            "-o",
            "table",
        ]
    )
    if rc == EXIT_UNPLACEABLE:
        console.print(
            "The example fleet pins one model to L4 GPUs that are too small for it; the planner "
            "names it and plans everything else (exit code 3 in scripts)."
        )
    elif rc != EXIT_OK:
        return rc
    from simulator import demo_main  # noqa: PLC0415 (simpy only when the demo gets here)

    console.rule("Morning burst: placement policies compared")
    return demo_main()


if __name__ == "__main__":
    sys.exit(main())
