"""Command-line entry point of vramfit's planner; argument parsing only, the work lives elsewhere."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Not built yet: say so and fail, rather than pretend to work."""
    args = sys.argv[1:] if argv is None else argv
    sys.stderr.write(f"vramfit planner: not available in this build (arguments: {args})\n")
    return 2
