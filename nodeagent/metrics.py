"""Prometheus metrics of the node's GPUs and of the agent itself, read fresh on every scrape.

A custom collector calls the sampler when Prometheus scrapes, so a scrape never returns a
reading older than itself (the stale-but-healthy values that make dcgm-exporter hard to trust).
Memory is in bytes; a value the agent could not read is left out rather than exported as an
old number. The registry is injected (prometheus-client's own advice for libraries).

/metrics is unauthenticated, so GPUs are labelled by index: their UUIDs (and those of MIG
devices) are what a reservation names, and are published only when the operator asks
(``--metrics-gpu-uuids``, for dashboards that join on them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from nodeagent.change import WriteReason
from nodeagent.publish import PublishStats
from nodeagent.sampler import Sample

log = logging.getLogger(__name__)

GPU_LABELS = ["node", "gpu", "product"]
UUID_LABELS = ["node", "gpu", "uuid", "product"]


class AgentCollector(Collector):
    """Exports one fresh ``Sample`` and the publisher's counters per scrape."""

    def __init__(
        self,
        node: str,
        sample: Callable[[], Sample],
        stats: Callable[[], PublishStats | None],
        xid_events: Callable[[], int] = lambda: 0,
        *,
        gpu_uuids: bool = False,
    ) -> None:
        self._node = node
        self._uuids = gpu_uuids
        self._sample = sample
        self._stats = stats
        self._xids = xid_events

    def describe(self) -> Iterator[Metric]:
        """Nothing up front: describing would cost a GPU reading at registration."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """Read the GPUs now and yield every metric."""
        n = self._node
        try:
            s = self._sample()
        except Exception as exc:  # a scrape must answer; the error shows as backend_up 0
            log.warning("metrics: reading failed: %s", exc)
            up = GaugeMetricFamily(
                "vramfit_agent_backend_up", "1 when GPU readings work", labels=["node"]
            )
            up.add_metric([n], 0)
            yield up
            return
        up = GaugeMetricFamily(
            "vramfit_agent_backend_up",
            "1 when GPU readings work (NVML initialised, or the simulated node), else 0",
            labels=["node"],
        )
        up.add_metric([n], 0 if s.reading.error else 1)
        yield up
        holders = GaugeMetricFamily(
            "vramfit_agent_pod_resources_up",
            "1 when the kubelet pod-resources API answered on this scrape",
            labels=["node"],
        )
        holders.add_metric([n], 1 if s.holders_known else 0)
        yield holders
        unsupported = GaugeMetricFamily(
            "vramfit_agent_unsupported_fields",
            "GPU fields this driver does not offer (published as absent)",
            labels=["node"],
        )
        unsupported.add_metric([n], len(s.reading.unsupported))
        yield unsupported
        yield from self._gpu_metrics(s)
        yield from self._agent_metrics()

    def _gpu_metrics(self, s: Sample) -> Iterator[Metric]:
        n = self._node
        labels = UUID_LABELS if self._uuids else GPU_LABELS
        mig_labels = [*labels, *(["mig_uuid"] if self._uuids else []), "gpu_instance"]
        mig_labels.append("compute_instance")

        def uuid(value: str) -> list[str]:
            return [value] if self._uuids else []

        total = GaugeMetricFamily(
            "vramfit_gpu_memory_total_bytes", "GPU memory size", labels=labels
        )
        free = GaugeMetricFamily(
            "vramfit_gpu_memory_free_bytes", "GPU memory free now", labels=labels
        )
        used = GaugeMetricFamily(
            "vramfit_gpu_memory_used_bytes", "GPU memory used now", labels=labels
        )
        reserved = GaugeMetricFamily(
            "vramfit_gpu_memory_reserved_bytes",
            "GPU memory reserved by the driver (memory info v2 only)",
            labels=labels,
        )
        healthy = GaugeMetricFamily(
            "vramfit_gpu_healthy", "1 when the GPU is healthy, 0 when not", labels=labels
        )
        peers = GaugeMetricFamily(
            "vramfit_gpu_nvlink_peers",
            "GPUs of this node joined to this one by NVLink",
            labels=labels,
        )
        held = GaugeMetricFamily(
            "vramfit_gpu_holder_info",
            "The pod the kubelet allocated this GPU to (value 1)",
            labels=[*labels, "pod_uid"],
        )
        pod_mem = GaugeMetricFamily(
            "vramfit_gpu_pod_memory_bytes",
            "GPU memory used by one pod's processes",
            labels=[*labels, "pod_uid"],
        )
        mig_total = GaugeMetricFamily(
            "vramfit_mig_device_memory_total_bytes",
            "MIG device memory size",
            labels=mig_labels,
        )
        mig_free = GaugeMetricFamily(
            "vramfit_mig_device_memory_free_bytes",
            "MIG device memory free now",
            labels=mig_labels,
        )
        by_uuid = {g.uuid: g for g in s.state.gpus}
        for r in s.reading.gpus:
            lv = [n, str(r.index), *uuid(r.uuid), r.product]
            total.add_metric(lv, r.total_bytes)
            if r.free_bytes is not None:
                free.add_metric(lv, r.free_bytes)
            if r.used_bytes is not None:
                used.add_metric(lv, r.used_bytes)
            if r.reserved_bytes is not None:
                reserved.add_metric(lv, r.reserved_bytes)
            healthy.add_metric(lv, 1 if r.healthy else 0)
            peers.add_metric(lv, len(r.nvlink_peers))
            g = by_uuid.get(r.uuid)
            if g is not None:
                if g.holder_pod_uid:
                    held.add_metric([*lv, g.holder_pod_uid], 1)
                for pm in g.pod_memory:
                    pod_mem.add_metric([*lv, pm.pod_uid], pm.bytes)
            for m in r.mig_devices:
                mlv = [
                    *lv,
                    *uuid(m.uuid),
                    "" if m.gpu_instance_id is None else str(m.gpu_instance_id),
                    "" if m.compute_instance_id is None else str(m.compute_instance_id),
                ]
                if m.total_bytes is not None:
                    mig_total.add_metric(mlv, m.total_bytes)
                if m.free_bytes is not None:
                    mig_free.add_metric(mlv, m.free_bytes)
        cached = GaugeMetricFamily(
            "vramfit_node_cached_model_bytes",
            "Model weights cached on the node's disk",
            labels=["node", "model"],
        )
        for cm in s.state.cached_models:
            cached.add_metric([n, cm.model_id], cm.bytes)
        yield from (
            total,
            free,
            used,
            reserved,
            healthy,
            peers,
            held,
            pod_mem,
            mig_total,
            mig_free,
            cached,
        )

    def _agent_metrics(self) -> Iterator[Metric]:
        n = self._node
        xids = CounterMetricFamily(
            "vramfit_agent_xid_events",
            "Critical XID events seen since the agent started",
            labels=["node"],
        )
        xids.add_metric([n], self._xids())
        yield xids
        st = self._stats()
        if st is None:
            return
        writes = CounterMetricFamily(
            "vramfit_agent_status_writes",
            "NodeGPUState status writes, by why they were made",
            labels=["node", "reason"],
        )
        for reason in WriteReason:
            writes.add_metric([n, reason.value], st.status_writes.get(reason.value, 0))
        yield writes
        renewals = CounterMetricFamily(
            "vramfit_agent_lease_renewals", "Lease renewals", labels=["node"]
        )
        renewals.add_metric([n], st.lease_renewals)
        yield renewals
        failures = CounterMetricFamily(
            "vramfit_agent_api_failures", "API calls that failed (then retried)", labels=["node"]
        )
        failures.add_metric([n], st.failures)
        yield failures
        api = GaugeMetricFamily(
            "vramfit_agent_api_up", "1 when the last API call worked", labels=["node"]
        )
        api.add_metric([n], 1 if st.api_ok else 0)
        yield api
        if st.last_status_write_at is not None:
            last = GaugeMetricFamily(
                "vramfit_agent_last_status_write_timestamp_seconds",
                "When the NodeGPUState status was last written",
                labels=["node"],
            )
            last.add_metric([n], st.last_status_write_at)
            yield last


def make_registry(collector: AgentCollector, *, process: bool = True) -> CollectorRegistry:
    """A fresh registry holding ``collector`` and, by default, the process metrics (RSS, CPU)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    if process:
        ProcessCollector(registry=registry)
    return registry
