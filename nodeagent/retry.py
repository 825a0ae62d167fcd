"""Exponential backoff with jitter, for everything the agent retries (NVML start, API writes).

Jitter keeps a fleet of agents that lost the API server at the same moment from coming back
in lock step. The random source is injected so tests and benchmarks are reproducible.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays ``base * 2**n`` capped at ``cap``, each drawn from the upper half of that range
    ("equal jitter": never zero, never more than the cap)."""

    def __init__(self, base_s: float, cap_s: float, rng: random.Random | None = None) -> None:
        if base_s <= 0 or cap_s < base_s:
            raise ValueError(f"backoff: need 0 < base ({base_s}) <= cap ({cap_s})")
        self._base = base_s
        self._cap = cap_s
        self._rng = rng or random.Random()
        self.failures = 0

    def next_delay(self) -> float:
        """Record one more failure and return how long to wait before the next try."""
        ceiling = min(self._cap, self._base * 2 ** min(self.failures, 32))
        self.failures += 1
        return float(ceiling / 2 + self._rng.uniform(0, ceiling / 2))

    def reset(self) -> None:
        """The last try worked: start again from ``base``."""
        self.failures = 0
