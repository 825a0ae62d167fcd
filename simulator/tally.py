"""What a run counts while it goes: cold starts, loads, out-of-memory crashes, loads in flight.

The autoscaler opens and closes cold starts, the kubelet counts loads and crashes; both write
to one ``Tally``, which the engine reads into a ``RunResult`` when the run ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.cluster import ServiceState
from simulator.metrics import ColdStart


@dataclass(eq=False)
class Tally:
    """The running counts of one run; ``series`` is loads in flight over time."""

    cold_starts: list[ColdStart] = field(default_factory=list)
    loads_started: int = 0
    out_of_memory: int = 0
    overcommitted: int = 0
    overcommitted_pods: int = 0
    conflicts: int = 0
    in_flight: int = 0
    series: list[tuple[float, int]] = field(default_factory=lambda: [(0.0, 0)])

    def loads(self, delta: int, now: float) -> None:
        """Loads in flight change by ``delta`` at ``now`` (one point per instant)."""
        self.in_flight += delta
        if self.series[-1][0] == now:
            self.series[-1] = (now, self.in_flight)
        else:
            self.series.append((now, self.in_flight))

    def close_cold_start(self, svc: ServiceState, now: float, *, completed: bool) -> None:
        """End the service's open cold start, if any, at ``now``."""
        if svc.episode_start is not None:
            self.cold_starts.append(ColdStart(svc.spec.name, svc.episode_start, now, completed))
            svc.episode_start = None
