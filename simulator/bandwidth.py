"""Shared load bandwidth: concurrent weight loads on one node split its disk or network evenly.

Each node has two links, local disk and remote storage. A link is a processor-sharing queue:
with ``n`` transfers in flight each moves at ``bandwidth / n`` bytes per second. When a transfer
starts or ends, every remaining transfer's progress is brought up to date and the next
completion is rescheduled; a stale completion event (from before the change) is ignored.
"""

from __future__ import annotations

from collections.abc import Callable

import simpy


class Transfer:
    """One load in flight: ``size`` bytes, ``remaining`` as of the link's last update."""

    __slots__ = ("on_done", "remaining", "size")

    def __init__(self, size: float, on_done: Callable[[], None]) -> None:
        self.size = size
        self.remaining = size
        self.on_done = on_done


class SharedLink:
    """A node's disk or network link shared by the transfers in flight on it."""

    def __init__(self, env: simpy.Environment, bytes_per_s: float) -> None:
        if not bytes_per_s > 0:
            raise ValueError(f"bandwidth must be above zero, got {bytes_per_s!r}")
        self.env = env
        self.bytes_per_s = bytes_per_s
        self.active: list[Transfer] = []
        self._updated_at = 0.0
        self._generation = 0

    def _advance(self) -> None:
        now = float(self.env.now)
        if self.active and now > self._updated_at:
            moved = (now - self._updated_at) * self.bytes_per_s / len(self.active)
            for t in self.active:
                t.remaining -= moved
        self._updated_at = now

    def _reschedule(self) -> None:
        self._generation += 1
        if not self.active:
            return
        rate = self.bytes_per_s / len(self.active)
        soonest = min(t.remaining for t in self.active)
        generation = self._generation
        event = self.env.timeout(max(0.0, soonest / rate))
        event.callbacks.append(lambda _e: self._complete(generation))

    def _complete(self, generation: int) -> None:
        if generation != self._generation:
            return
        self._advance()
        done = [t for t in self.active if t.remaining <= 1e-9 * t.size + 1e-6]
        self.active = [t for t in self.active if t not in done]
        self._reschedule()
        for t in done:
            t.remaining = 0.0
            t.on_done()

    def start(self, size: float, on_done: Callable[[], None]) -> Transfer:
        """Begin moving ``size`` bytes; ``on_done`` runs when the last byte arrives."""
        self._advance()
        t = Transfer(size, on_done)
        self.active.append(t)
        self._reschedule()
        return t

    def cancel(self, transfer: Transfer) -> None:
        """Stop a transfer (its pod is gone or crashed); the others speed up."""
        if transfer in self.active:
            self._advance()
            self.active.remove(transfer)
            self._reschedule()

    def moved(self, transfer: Transfer) -> float:
        """Bytes ``transfer`` has moved by now."""
        if transfer not in self.active:
            return transfer.size - transfer.remaining
        elapsed = float(self.env.now) - self._updated_at
        share = elapsed * self.bytes_per_s / len(self.active)
        return min(transfer.size, transfer.size - transfer.remaining + share)
