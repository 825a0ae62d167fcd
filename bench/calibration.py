"""What every benchmark puts beside its absolute timings: how fast this machine runs plain
Python in the same run, and each figure as the median of rounds with their spread.

Machines of the same kind differ by a factor of two or more, so an absolute time alone says
little; the calibration figure is the time of a plain Python loop of 5 million additions,
taken a few times around the measurements, so a reader can scale a figure to their machine
and a target can be held as a ratio measured in one run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

LOOP_ADDITIONS = 5_000_000


def loop_seconds(additions: int = LOOP_ADDITIONS) -> float:
    """Seconds a plain Python loop of ``additions`` additions takes here, now."""
    start = time.perf_counter()
    total = 0
    for k in range(additions):
        total += k
    elapsed = time.perf_counter() - start
    assert total == additions * (additions - 1) // 2
    return elapsed


def spread(values: Sequence[float], digits: int = 4) -> dict[str, Any]:
    """The median of ``values`` with their least and greatest and every round, rounded."""
    if not values:
        raise ValueError("no rounds to summarise")
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "rounds": [round(v, digits) for v in values],
    }


class Calibration:
    """The loop's time, taken as often as a benchmark asks (before, between and after its
    rounds), and summarised once at the end."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def take(self) -> float:
        """Time the loop once more; returns the seconds."""
        seconds = loop_seconds()
        self.samples.append(seconds)
        return seconds

    def figure(self) -> dict[str, Any]:
        """The JSON figure: what was timed, and its median, spread and samples in seconds."""
        if not self.samples:
            self.take()
        return {
            "what": f"a plain Python loop of {LOOP_ADDITIONS:,} additions",
            "seconds": spread(self.samples, 3),
        }


def line(figure: dict[str, Any]) -> str:
    """The calibration figure in words, for a table's caption."""
    s = figure["seconds"]
    return (
        f"calibration: {figure['what']} took {s['median']:.2f} s "
        f"({s['min']:.2f} to {s['max']:.2f} s over {len(s['rounds'])} takes) in the same run"
    )
