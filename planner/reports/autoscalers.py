"""The plan as autoscaler configuration: Karpenter NodePools, cluster-autoscaler node groups.

An autoscaler adds nodes for pods it simulates as unschedulable, but it simulates without
scheduler extenders, so the plan's knowledge has to reach it as configuration it reads:

- ``karpenter``: one ``karpenter.sh/v1`` NodePool per pool the plan uses, restricted to the
  pool's instance type, labelled with the GPU Feature Discovery labels its nodes will carry
  (so Karpenter can match the ``nvidia.com/gpu.memory`` and ``nvidia.com/gpu.product`` node
  affinity vramfit's admission webhook adds before any such node exists), tainted as the catalog
  says, and limited to the GPUs of the peak scenario. Pools the plan never uses get no NodePool,
  so Karpenter cannot buy a node type vramfit would refuse.
- ``cluster-autoscaler``: a ConfigMap with one node group per pool: minimum (the ``min``
  scenario's nodes) and maximum (the peak's), the ``--nodes=MIN:MAX:NAME`` flags, and the
  node-template labels, taints and resources to tag a node group with, which is how
  cluster-autoscaler learns a node group's labels while it has no node (scale from zero).

Pure: the report and the catalog in, YAML text out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import yaml

from placement.demand import GPU_RESOURCE
from planner.inputs.catalog import Catalog, PoolType
from planner.reports.document import Report

MANAGED_BY: Final = {"app.kubernetes.io/managed-by": "vramfit-plan"}
CA_NAMESPACE: Final = "kube-system"
CA_CONFIGMAP: Final = "vramfit-cluster-autoscaler-node-groups"
CA_TEMPLATE: Final = "k8s.io/cluster-autoscaler/node-template"

# Karpenter's node class per cloud provider (each provider's own CRD).
NODE_CLASSES: Final[Mapping[str, Mapping[str, str]]] = {
    "aws": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
    "azure": {"group": "karpenter.azure.com", "kind": "AKSNodeClass", "name": "default"},
    "gcp": {"group": "karpenter.k8s.gcp", "kind": "GCENodeClass", "name": "default"},
    "kwok": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"},
}
# Label domains Karpenter does not let a NodePool template set (it sets them itself).
_RESTRICTED = re.compile(r"(^|\.)(kubernetes\.io|k8s\.io|karpenter\.sh)/")


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (a ConfigMap's files) as literal blocks a person can read."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def _dns_name(text: str) -> str:
    """A pool name as an object name (RFC 1123 subdomain, at most 63 characters)."""
    name = re.sub(r"[^a-z0-9.-]+", "-", text.lower()).strip("-.")
    return name[:63].rstrip("-.") or "pool"


def _nodes(report: Report, scenario: str) -> dict[str, int]:
    found = report["scenarios"].get(scenario)
    return {p["name"]: p["nodes"] for p in found["pools"]} if found else {}


def peak_nodes(report: Report) -> tuple[dict[str, int], str]:
    """Nodes per pool at peak, and which scenario said so: ``peak`` when it was planned, else
    the most of every planned scenario."""
    if "peak" in report["scenarios"]:
        return _nodes(report, "peak"), "peak"
    most: dict[str, int] = {}
    for name in report["scenarios"]:
        for pool, n in _nodes(report, name).items():
            most[pool] = max(most.get(pool, 0), n)
    return most, "the most of " + ", ".join(sorted(report["scenarios"]))


def _template_labels(pool: PoolType) -> dict[str, str]:
    return {k: v for k, v in pool.labels if not _RESTRICTED.search(k)}


def _taints(pool: PoolType) -> list[dict[str, str]]:
    return [
        {"key": t.key, "effect": t.effect, **({"value": t.value} if t.value else {})}
        for t in pool.taints
    ]


def node_pool(pool: PoolType, nodes: int, source: str) -> dict[str, Any]:
    """One NodePool for ``pool``, limited to ``nodes`` nodes' worth of GPUs. Pure."""
    spec: dict[str, Any] = {
        "requirements": [
            {
                "key": "node.kubernetes.io/instance-type",
                "operator": "In",
                "values": [pool.instance_type],
            },
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
        ],
        "nodeClassRef": dict(NODE_CLASSES.get(pool.cloud, NODE_CLASSES["aws"])),
    }
    taints = _taints(pool)
    if taints:
        spec["taints"] = taints
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {
            "name": _dns_name(f"vramfit-{pool.name}"),
            "labels": dict(MANAGED_BY),
            "annotations": {"vramfit.io/pool": pool.name, "vramfit.io/limits-from": source},
        },
        "spec": {
            "template": {"metadata": {"labels": _template_labels(pool)}, "spec": spec},
            "limits": {GPU_RESOURCE: str(nodes * pool.gpus)},
            "disruption": {
                "consolidationPolicy": "WhenEmptyOrUnderutilized",
                "consolidateAfter": "5m",
            },
        },
    }


def _used(report: Report, catalog: Catalog) -> list[tuple[PoolType, int, int]]:
    """(pool, min-scenario nodes, peak nodes) for every pool the plan uses, in catalog order."""
    peak, _ = peak_nodes(report)
    least = _nodes(report, "min")
    by_name = {p.name: p for p in catalog.pools}
    return [
        (by_name[name], least.get(name, 0), n)
        for name, n in sorted(peak.items(), key=lambda item: list(by_name).index(item[0]))
        if n > 0 and name in by_name
    ]


def render_karpenter(report: Report, catalog: Catalog) -> str:
    """NodePools for every pool the plan uses (YAML stream). Pure."""
    _, source = peak_nodes(report)
    pools = [node_pool(pool, peak, source) for pool, _, peak in _used(report, catalog)]
    header = (
        "# Karpenter NodePools from vramfit's plan: one per pool the plan uses, GPU limits from "
        f"{source}.\n# nodeClassRef names each cloud's default node class; edit it to yours.\n"
    )
    return header + yaml.safe_dump_all(pools, sort_keys=False)


def node_group(pool: PoolType, least: int, peak: int) -> dict[str, Any]:
    """One cluster-autoscaler node group for ``pool``. Pure."""
    labels = dict(pool.labels)
    resources = {
        GPU_RESOURCE: str(pool.gpus),
        "cpu": f"{pool.cpu_milli}m",
        "memory": f"{pool.memory_bytes // 1024**2}Mi",
    }
    tags = {f"{CA_TEMPLATE}/label/{k}": v for k, v in labels.items()}
    tags.update({f"{CA_TEMPLATE}/taint/{t.key}": f"{t.value}:{t.effect}" for t in pool.taints})
    tags.update({f"{CA_TEMPLATE}/resources/{k}": v for k, v in resources.items()})
    return {
        "name": pool.name,
        "cloud": pool.cloud,
        "instanceType": pool.instance_type,
        "minSize": least,
        "maxSize": peak,
        "nodeTemplate": {"labels": labels, "taints": _taints(pool), "resources": resources},
        "tags": tags,
    }


def render_cluster_autoscaler(report: Report, catalog: Catalog) -> str:
    """A ConfigMap holding a node group per pool the plan uses (YAML). Pure."""
    _, source = peak_nodes(report)
    groups = [node_group(pool, least, peak) for pool, least, peak in _used(report, catalog)]
    flags = "".join(f"--nodes={g['minSize']}:{g['maxSize']}:{g['name']}\n" for g in groups)
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": CA_CONFIGMAP,
            "namespace": CA_NAMESPACE,
            "labels": dict(MANAGED_BY),
            "annotations": {"vramfit.io/max-from": source, "vramfit.io/min-from": "min"},
        },
        "data": {
            "node-groups.yaml": yaml.dump(groups, Dumper=_Dumper, sort_keys=False),
            "nodes-flags": flags,
        },
    }
    header = (
        "# cluster-autoscaler node groups from vramfit's plan: minSize from the min scenario, "
        f"maxSize from {source}.\n# Pass nodes-flags to cluster-autoscaler (or the chart's "
        "autoscalingGroups) and tag each node group\n# with its `tags` so that it can scale "
        "from zero knowing the GPU labels.\n"
    )
    return header + yaml.dump(config_map, Dumper=_Dumper, sort_keys=False)
