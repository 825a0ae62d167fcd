"""The evaluation over many seeds, as a benchmark that fails on a missed target.

Runs every built-in scenario under every policy for seeds 1-20 (``VRAMFIT_SEEDS`` to change
them, ``VRAMFIT_SEED_JOBS`` for the processes, 2 by default) with ``simulator.seeds``, writes
every seed's row, the means, the worst seeds and the targets missed to
``bench/results/seeds.json`` and the table to ``bench/results/seeds.md``, and exits 1 when the
default profile misses a target (``simulator.seeds.misses``). CPU-heavy: about half an hour on
two cores, most of it the 1,000-node day.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from simulator.engine import POLICIES
from simulator.scenario_files import BUILTINS, builtin_scenario
from simulator.seeds import misses, parse_seeds, sweep, to_json, to_markdown

RESULTS = Path(__file__).parent / "results"


def main() -> int:
    """Run the sweep; 0 when every target is met."""
    seeds = parse_seeds(os.environ.get("VRAMFIT_SEEDS", "1-20"))
    jobs = int(os.environ.get("VRAMFIT_SEED_JOBS", "2"))
    started = time.perf_counter()
    rows = sweep([builtin_scenario(n) for n in BUILTINS], POLICIES, seeds, jobs=jobs)
    (RESULTS / "seeds.json").write_text(to_json(rows) + "\n")
    (RESULTS / "seeds.md").write_text(to_markdown(rows))
    print(to_markdown(rows))
    missed = misses(rows)
    for line in missed:
        print(f"MISSED {line}")
    print(f"{len(rows)} runs in {time.perf_counter() - started:.0f}s")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
