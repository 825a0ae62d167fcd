"""The running agent: wires a backend to the sampler, the publisher, the HTTP server and (for a
simulated node) the kubelet stand-in, and runs the poll loop.

Threads: the poll loop (here), the publisher (API writes with backoff, so a slow or absent API
server never delays GPU readings), the node's pod watch, the reader of KServe's model caches
(with ``--cache-dir``), the simulated kubelet, the HTTP server and, with NVML, the XID event
thread. ``build_agent`` takes its clients as arguments so that a
test harness can run agents in-process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Protocol

from nodeagent.cgroup import CgroupResolver
from nodeagent.config import ConfigError, Settings
from nodeagent.kservecache import KServeCaches, load_model_catalog
from nodeagent.kube import KubeClient, in_cluster, load_kubeconfig
from nodeagent.metrics import AgentCollector, make_registry
from nodeagent.modelcache import ModelCacheScanner
from nodeagent.nvml.backend import NvmlBackend, load_pynvml
from nodeagent.nvml.calls import NvmlRestartRequiredError
from nodeagent.pods import NodePods
from nodeagent.publish import Publisher, PublishStats
from nodeagent.sampler import Backend, HolderSource, Sample, Sampler
from nodeagent.server import AgentServer
from placement.fields import InputError
from placement.model import CachedModel

log = logging.getLogger(__name__)

EXIT_RESTART = 3


class _Reader(Protocol):
    """A thread that reads the API server: started with the agent, stopped and joined with it."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def join(self, timeout: float) -> None: ...


@dataclass(slots=True)
class _Parts:
    sampler: Sampler
    publisher: Publisher | None
    pods: NodePods | None
    kubelet_run: Callable[[threading.Event], None] | None
    xid_events: Callable[[], int]
    client: KubeClient | None = None
    kserve: KServeCaches | None = None


def readiness(
    backend_ready: bool,
    backend_error: str,
    stats: PublishStats | None,
    lease_duration_s: float,
    now: float,
) -> tuple[bool, str]:
    """Pure: whether the agent is ready, and why not.

    Ready means the GPUs are readable and, for an agent that publishes (``stats``), that the
    status was written at least once and the Lease was renewed within its duration. An agent
    that cannot reach the API server stops being ready once its Lease lapses: by then the
    extender has taken the node out, and the pod's condition says why.
    """
    if not backend_ready:
        return False, backend_error or "GPU backend not ready"
    if stats is None:
        return True, "ok"
    if stats.last_status_write_at is None:
        return False, f"not published yet: {stats.last_error or 'no status written yet'}"
    renewed = stats.last_lease_renew_at
    if renewed is None or now - renewed > lease_duration_s:
        since = "never renewed" if renewed is None else f"not renewed for {now - renewed:.0f}s"
        why = stats.last_error or "no API error recorded"
        return False, (
            f"agent Lease {since} (duration {lease_duration_s:.0f}s), so schedulers using "
            f"vramfit keep this node out: {why}"
        )
    return True, "ok"


class Agent:
    """One node's agent; ``run`` blocks until ``stop`` is set and returns an exit code."""

    def __init__(self, settings: Settings, parts: _Parts, *, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.sampler = parts.sampler
        self.publisher = parts.publisher
        self._kubelet_run = parts.kubelet_run
        # Readers of the API server with threads of their own: the node's pods, KServe's caches.
        self._readers: list[_Reader] = [r for r in (parts.pods, parts.kserve) if r is not None]
        self._client = parts.client
        self._clock = clock
        self.last_poll_at: float | None = None
        self.collector = AgentCollector(
            settings.node_name,
            lambda: self.sampler.sample(self._clock()),
            lambda: self.publisher.stats if self.publisher is not None else None,
            parts.xid_events,
            gpu_uuids=settings.metrics_gpu_uuids,
        )
        self.registry = make_registry(self.collector)
        self.server: AgentServer | None = None

    def poll(self) -> Sample:
        """Read once and hand the result to the publisher."""
        sample = self.sampler.sample(self._clock())
        self.last_poll_at = self._clock()
        if self.publisher is not None:
            self.publisher.offer(sample.state, sample.status)
        return sample

    def live(self) -> tuple[bool, str]:
        """Liveness: the poll loop is turning."""
        if self.last_poll_at is None:
            return True, "starting"
        age = self._clock() - self.last_poll_at
        limit = max(30.0, 10 * self.settings.poll_interval_s)
        if age > limit:
            return False, f"no GPU reading for {age:.0f}s (limit {limit:.0f}s)"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        """Readiness: see ``readiness``."""
        backend = self.sampler.backend
        publisher = self.publisher
        return readiness(
            backend.ready,
            backend.error,
            publisher.stats if publisher is not None else None,
            publisher.lease_duration_s if publisher is not None else 0.0,
            self._clock(),
        )

    def run(self, stop: threading.Event) -> int:
        """Start every thread and poll until ``stop``; ``EXIT_RESTART`` when NVML needs it."""
        s = self.settings
        self.server = AgentServer(
            s.listen_host, s.listen_port, self.registry, live=self.live, ready=self.ready
        )
        self.server.start()
        host, port = self.server.address
        log.info("node %s: serving /metrics /healthz /readyz on %s:%d", s.node_name, host, port)
        threads = []
        for reader in self._readers:
            reader.start()
        if self._kubelet_run is not None:
            run_kubelet = self._kubelet_run
            threads.append(
                threading.Thread(target=lambda: run_kubelet(stop), name="kubelet", daemon=True)
            )
        if self.publisher is not None:
            threads.append(
                threading.Thread(
                    target=self.publisher.run, args=(stop,), name="publisher", daemon=True
                )
            )
        for t in threads:
            t.start()
        code = 0
        try:
            while not stop.is_set():
                started = self._clock()
                try:
                    self.poll()
                except NvmlRestartRequiredError as exc:
                    log.error("%s: exiting so that the container restarts", exc)
                    code = EXIT_RESTART
                    break
                elapsed = self._clock() - started
                stop.wait(max(0.0, s.poll_interval_s - elapsed))
        finally:
            stop.set()
            for reader in self._readers:
                reader.stop()
            for t in threads:
                t.join(timeout=5)
            if self._client is not None:
                self._client.close()  # also ends the pod watch
            for reader in self._readers:
                reader.join(timeout=5)
            self.server.stop()
            self.sampler.backend.close()
        return code


def kube_client(settings: Settings) -> KubeClient:
    """The API client the settings ask for (kubeconfig, else the pod's service account)."""
    creds = load_kubeconfig(settings.kubeconfig) if settings.kubeconfig else in_cluster()
    return KubeClient(creds, user_agent=f"vramfit-agent/{settings.node_name}")


def build_agent(
    settings: Settings,
    *,
    client: KubeClient | None,
    nvml_module: ModuleType | None = None,
    clock: Callable[[], float] = time.time,
) -> Agent:
    """An agent for ``settings``; ``client`` is ``None`` for an agent that publishes nothing.

    Raises ``ConfigError`` when the simulated node spec is malformed or lacks the node.
    """
    if settings.backend == "simulated":
        parts = _simulated(settings, client, clock)
    else:
        parts = _nvml(settings, client, nvml_module, clock)
    if client is not None:
        parts.publisher = Publisher(
            client, settings.node_name, settings=settings.publish, clock=clock
        )
        parts.client = client
    return Agent(settings, parts, clock=clock)


def _model_cache(
    settings: Settings, client: KubeClient | None
) -> tuple[ModelCacheScanner | None, KServeCaches | None]:
    """The scanner of ``--cache-dir`` folders and, with an API client, the reader of KServe's
    objects that name the folders of its LocalModelCache (``nodeagent.kservecache``)."""
    if not settings.cache_dirs:
        return None, None
    kserve = None
    if client is not None:
        try:
            catalog = load_model_catalog(settings.model_catalog)
        except InputError as exc:
            raise ConfigError([f"--model-catalog: {exc}"]) from None
        kserve = KServeCaches(
            client, settings.node_name, catalog, interval_s=settings.cache_rescan_s
        )
    scanner = ModelCacheScanner(
        settings.cache_dirs,
        settings.cache_rescan_s,
        kserve=kserve.folders if kserve is not None else None,
    )
    if kserve is not None:
        kserve.on_change = scanner.invalidate
    return scanner, kserve


def _nvml(
    settings: Settings,
    client: KubeClient | None,
    module: ModuleType | None,
    clock: Callable[[], float],
) -> _Parts:
    nvml = module if module is not None else load_pynvml()
    backend = NvmlBackend(nvml, settings=settings.nvml, clock=clock)
    # The node's pod watch serves only to name the pods that pod-resources reports: without
    # that socket, holders come from process cgroups and no watch is opened.
    pods = None
    holders: HolderSource | None = None
    if settings.pod_resources_socket is not None and client is not None:
        pods = NodePods(client, settings.node_name)
        from nodeagent.holders import PodResourcesHolders  # noqa: PLC0415 - loads gRPC
        from nodeagent.podresources.client import PodResourcesClient  # noqa: PLC0415

        holders = PodResourcesHolders(
            PodResourcesClient(settings.pod_resources_socket), pods.uid_of
        )
    scanner, kserve = _model_cache(settings, client)
    sampler = Sampler(
        settings.node_name,
        backend,
        holders=holders,
        pod_of_pid=CgroupResolver(settings.proc_root).pod_of,
        cached_models=scanner.models if scanner is not None else None,
        local_disk_bytes_per_s=settings.local_disk_bandwidth,
        remote_bytes_per_s=settings.remote_bandwidth,
    )
    return _Parts(sampler, None, pods, None, lambda: backend.xids.total, kserve=kserve)


def _simulated(settings: Settings, client: KubeClient | None, clock: Callable[[], float]) -> _Parts:
    from nodeagent.simulated.backend import SimulatedBackend  # noqa: PLC0415
    from nodeagent.simulated.kubelet import SimulatedKubelet  # noqa: PLC0415
    from nodeagent.simulated.spec import (  # noqa: PLC0415 - loads the quantity parser
        default_cluster,
        find_node,
        load_spec,
    )

    try:
        if settings.spec_path is not None:
            specs, source = load_spec(settings.spec_path), str(settings.spec_path)
        else:
            specs, source = default_cluster(), "built-in default cluster"
        spec = find_node(specs, settings.node_name, source)
    except InputError as exc:
        raise ConfigError([f"--spec: {exc}"]) from None
    wake = threading.Event()
    pods = NodePods(client, settings.node_name, on_change=wake.set) if client is not None else None
    kubelet_client = client
    if client is not None and settings.kubelet_kubeconfig is not None:
        kubelet_client = KubeClient(
            load_kubeconfig(settings.kubelet_kubeconfig),
            user_agent=f"vramfit-simulated-kubelet/{settings.node_name}",
        )
    dra = None
    if settings.dra_driver and kubelet_client is not None:
        from nodeagent.simulated.dra import SimulatedDraDriver  # noqa: PLC0415

        dra = SimulatedDraDriver(spec, kubelet_client)
    kubelet = SimulatedKubelet(
        spec,
        pods.snapshot if pods is not None else dict,
        kubelet_client,
        complete_deletions=settings.complete_deletions,
        honour_reservations=settings.kubelet_honours_reservations,
        claims=dra.allocation if dra is not None else None,
    )
    kubelet.wake = wake
    backend: Backend = SimulatedBackend(spec, kubelet)
    cached = tuple(CachedModel(m.model_id, m.bytes) for m in spec.cached_models)
    scanner, kserve = _model_cache(settings, client)

    def cached_models(now: float) -> tuple[CachedModel, ...]:
        """The spec's cached models, and what ``--cache-dir`` folders really hold."""
        if scanner is None:
            return cached
        found = {m.model_id: m for m in cached}
        found.update((m.model_id, m) for m in scanner.models(now))
        return tuple(found[k] for k in sorted(found))

    sampler = Sampler(
        settings.node_name,
        backend,
        cached_models=cached_models,
        local_disk_bytes_per_s=settings.local_disk_bandwidth or spec.local_disk_bandwidth,
        remote_bytes_per_s=settings.remote_bandwidth or spec.remote_bandwidth,
    )

    def run_kubelet(stop: threading.Event) -> None:
        # As NVIDIA's DRA driver, the node's GPUs are published before any pod is served.
        while dra is not None and not dra.publish() and not stop.wait(2.0):
            pass
        kubelet.run(stop, clock)

    return _Parts(
        sampler, None, pods, run_kubelet if pods is not None else None, lambda: 0, kserve=kserve
    )
