"""One poll: read the GPUs, attribute them to pods, and build the state to publish.

The backend, the holder source, the PID resolver and the cache scanner are injected, so the
same sampler serves the NVML agent, the simulated node and the tests. It is also what the
metrics collector calls on every scrape, so /metrics always shows a fresh reading.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from nodeagent.reading import NodeReading
from nodeagent.state import Attribution, build_node_state, status_of
from placement.model import CachedModel, NodeState
from placement.nodegpustate import StatusJSON


class Backend(Protocol):
    """Where GPU readings come from."""

    @property
    def ready(self) -> bool: ...

    @property
    def error(self) -> str: ...

    def read(self, now: float) -> NodeReading: ...

    def close(self) -> None: ...


class HolderSource(Protocol):
    """Who holds which device (``None`` when unknown this poll)."""

    def holders(self, reading: NodeReading) -> dict[str, str] | None: ...


@dataclass(frozen=True, slots=True)
class Sample:
    """The result of one poll."""

    reading: NodeReading
    state: NodeState
    status: StatusJSON
    holders_known: bool


class Sampler:
    """Reads and attributes (thread-safe: the poll loop and scrapes share it)."""

    def __init__(
        self,
        node: str,
        backend: Backend,
        *,
        holders: HolderSource | None = None,
        pod_of_pid: Callable[[int], str | None] | None = None,
        cached_models: Callable[[float], tuple[CachedModel, ...]] | None = None,
        local_disk_bytes_per_s: float | None = None,
        remote_bytes_per_s: float | None = None,
    ) -> None:
        self.node = node
        self.backend = backend
        self._holders = holders
        self._pod_of_pid = pod_of_pid
        self._cached_models = cached_models
        self._local = local_disk_bytes_per_s
        self._remote = remote_bytes_per_s
        self._lock = threading.Lock()
        self.last: Sample | None = None

    def sample(self, now: float) -> Sample:
        """A fresh poll at ``now``."""
        with self._lock:
            reading = self.backend.read(now)
            holders = self._holders.holders(reading) if self._holders is not None else None
            pids: dict[int, str] = {}
            if self._pod_of_pid is not None:
                for g in reading.gpus:
                    for p in g.all_processes():
                        if p.pid is not None and p.pid not in pids:
                            uid = self._pod_of_pid(p.pid)
                            if uid is not None:
                                pids[p.pid] = uid
            cached = self._cached_models(now) if self._cached_models is not None else ()
            state = build_node_state(
                self.node,
                reading,
                Attribution(holders=holders, pod_of_pid=pids),
                cached_models=cached,
                local_disk_bytes_per_s=self._local,
                remote_bytes_per_s=self._remote,
            )
            sample = Sample(reading, state, status_of(state, reading), holders is not None)
            self.last = sample
            return sample
