"""The run's clock: simpy's environment, counting its events, and timers that a pod can outlive.

The engine and the kubelet schedule their next steps the same two ways: a plain callback after a
delay, and a pod callback that fires only if the pod has not been deleted (or restarted) since
it was scheduled. Both go through ``Clock`` so the pieces of a run share one environment and
one meaning of "later".
"""

from __future__ import annotations

from collections.abc import Callable

import simpy

from simulator.cluster import SimPod


class CountingEnvironment(simpy.Environment):
    """A simpy environment that counts the events it processes."""

    def __init__(self) -> None:
        super().__init__()
        self.processed = 0

    def step(self) -> None:
        self.processed += 1
        super().step()


class Clock:
    """Time and timers on one ``CountingEnvironment``."""

    def __init__(self, env: CountingEnvironment) -> None:
        self.env = env

    @property
    def now(self) -> float:
        """Simulated seconds since the start of the run."""
        return float(self.env.now)

    def after(self, delay: float, fn: Callable[[], None]) -> None:
        """Call ``fn`` ``delay`` seconds from now."""
        event = self.env.timeout(delay)
        event.callbacks.append(lambda _e: fn())

    def after_pod(self, pod: SimPod, delay: float, fn: Callable[[SimPod], None]) -> None:
        """Call ``fn(pod)`` ``delay`` seconds from now, unless the pod's generation changed."""
        generation = pod.generation

        def fire(_e: simpy.Event) -> None:
            if pod.generation == generation:
                fn(pod)

        self.env.timeout(delay).callbacks.append(fire)
