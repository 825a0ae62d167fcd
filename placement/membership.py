"""Which multi-node group a pod belongs to, read from the pod alone (pure).

A model too large for one node runs as a group of pods, one per node, that serve together or
not at all: placing some of them holds GPUs that nothing can use until the others land, and two
half-placed groups can each hold what the other needs. The extender places such a group whole
(``placement.groups``); this module says which pods form one, from three shapes:

* a pod whose ``spec.schedulingGroup.podGroupName`` names a PodGroup (``scheduling.k8s.io``,
  Kubernetes 1.37 with the ``GenericWorkload`` gate; the field is dropped by the API server
  while the gate is off). The PodGroup's ``minCount`` is on the PodGroup, not the pod, so the
  group's size is left open unless the pod also carries LeaderWorkerSet's size;
* a LeaderWorkerSet pod: labels ``leaderworkerset.sigs.k8s.io/name`` and ``.../group-index``
  (else ``.../group-key``), the group's size in the annotation ``.../size``, the member's rank in
  the label ``.../worker-index`` (0 is the leader), and an optional topology key in the
  annotation ``.../exclusive-topology`` (the LWS webhook copies it to the leader only);
* a KServe v1beta1 multi-node predictor pod (``workerSpec``): head and workers carry the labels
  ``serving.kserve.io/inferenceservice`` and ``isvc.generation`` (only multi-node predictors
  get the latter), and the group's size in the ``RAY_NODE_COUNT`` environment variable.

A group of one pod is no group. Sizes are bounded (``MAX_GROUP_SIZE``); a size that is not a
whole number in range is an error the caller reports on the pod.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LWS_NAME = "leaderworkerset.sigs.k8s.io/name"
LWS_GROUP_INDEX = "leaderworkerset.sigs.k8s.io/group-index"
LWS_GROUP_KEY = "leaderworkerset.sigs.k8s.io/group-key"
LWS_WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index"
LWS_SIZE = "leaderworkerset.sigs.k8s.io/size"
LWS_EXCLUSIVE_TOPOLOGY = "leaderworkerset.sigs.k8s.io/exclusive-topology"
KSERVE_ISVC = "serving.kserve.io/inferenceservice"
KSERVE_GENERATION = "isvc.generation"
RAY_NODE_COUNT = "RAY_NODE_COUNT"
KSERVE_WORKER_CONTAINER = "worker-container"

MAX_GROUP_SIZE = 64
"""The most pods one group may have: far above any model's node count, and a bound on what one
pod's labels can make the extender reserve at once."""


class GroupKind(enum.StrEnum):
    """Where a group's membership comes from."""

    POD_GROUP = "podgroup"
    LEADER_WORKER_SET = "lws"
    KSERVE = "kserve"


class MembershipError(ValueError):
    """A pod whose group labels cannot be read; the message names the label."""


@dataclass(frozen=True, slots=True, order=True)
class GroupKey:
    """One group: its kind, namespace and name (a group never spans namespaces)."""

    kind: GroupKind
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Membership:
    """A pod's place in its group.

    ``size`` is how many pods the group has, ``None`` when the pod does not say (a PodGroup's
    size is on the PodGroup: then the group is the members that exist). ``rank`` orders the
    members (0 for a leader or head). ``topology_key`` is a node label whose value all
    members must share, "" when the pod names none.
    """

    key: GroupKey
    size: int | None
    rank: int = 0
    topology_key: str = ""


def _mapping(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key)
    return value if isinstance(value, Mapping) else {}


def _strings(raw: Mapping[str, Any]) -> dict[str, str]:
    return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}


def _size(value: str, where: str) -> int:
    try:
        size = int(value.strip())
    except ValueError:
        raise MembershipError(f"{where} is {value!r}, not a whole number of pods") from None
    if not 1 <= size <= MAX_GROUP_SIZE:
        raise MembershipError(f"{where} is {size}; a group has 1 to {MAX_GROUP_SIZE} pods")
    return size


def _rank(value: str | None) -> int:
    if value is None:
        return 0
    try:
        return max(0, int(value))
    except ValueError:
        return 0


def _env(spec: Mapping[str, Any], name: str) -> tuple[str, str] | None:
    """(container name, value) of the first container that sets environment variable ``name``."""
    containers = spec.get("containers")
    if not isinstance(containers, list):
        return None
    for c in containers:
        if not isinstance(c, Mapping) or not isinstance(c.get("env"), list):
            continue
        for e in c["env"]:
            if isinstance(e, Mapping) and e.get("name") == name and isinstance(e.get("value"), str):
                return str(c.get("name", "")), e["value"]
    return None


def _pod_group(spec: Mapping[str, Any]) -> str:
    group = _mapping(spec, "schedulingGroup").get("podGroupName")
    return group if isinstance(group, str) else ""


def _lws(
    namespace: str, labels: Mapping[str, str], annotations: Mapping[str, str]
) -> Membership | None:
    name = labels.get(LWS_NAME)
    group = labels.get(LWS_GROUP_INDEX) or labels.get(LWS_GROUP_KEY)
    if not name or not group:
        return None
    raw_size = annotations.get(LWS_SIZE)
    size = _size(raw_size, f"annotation {LWS_SIZE}") if raw_size is not None else None
    return Membership(
        GroupKey(GroupKind.LEADER_WORKER_SET, namespace, f"{name}/{group}"),
        size,
        _rank(labels.get(LWS_WORKER_INDEX)),
        annotations.get(LWS_EXCLUSIVE_TOPOLOGY, ""),
    )


def _kserve(
    namespace: str, labels: Mapping[str, str], spec: Mapping[str, Any]
) -> Membership | None:
    isvc, generation = labels.get(KSERVE_ISVC), labels.get(KSERVE_GENERATION)
    found = _env(spec, RAY_NODE_COUNT)
    if not isvc or generation is None or found is None:
        return None
    container, value = found
    size = _size(value, f"environment variable {RAY_NODE_COUNT}")
    worker = container == KSERVE_WORKER_CONTAINER or labels.get("app", "").endswith("-worker")
    return Membership(
        GroupKey(GroupKind.KSERVE, namespace, f"{isvc}/{generation}"), size, int(worker)
    )


def membership_of(pod: Mapping[str, Any]) -> Membership | None:
    """Pure: the group ``pod`` belongs to, or ``None`` for a pod placed alone (no group, or a
    group of one). Raises ``MembershipError`` for a size that cannot be read."""
    meta = _mapping(pod, "metadata")
    spec = _mapping(pod, "spec")
    namespace = str(meta.get("namespace") or "default")
    labels = _strings(_mapping(meta, "labels"))
    annotations = _strings(_mapping(meta, "annotations"))
    lws = _lws(namespace, labels, annotations)
    found: Membership | None
    pod_group = _pod_group(spec)
    if pod_group:
        found = Membership(
            GroupKey(GroupKind.POD_GROUP, namespace, pod_group),
            lws.size if lws else None,
            lws.rank if lws else 0,
            lws.topology_key if lws else "",
        )
    else:
        found = lws or _kserve(namespace, labels, spec)
    if found is None or found.size == 1:
        return None
    return found


__all__ = [
    "KSERVE_GENERATION",
    "KSERVE_ISVC",
    "LWS_EXCLUSIVE_TOPOLOGY",
    "LWS_GROUP_INDEX",
    "LWS_GROUP_KEY",
    "LWS_NAME",
    "LWS_SIZE",
    "LWS_WORKER_INDEX",
    "MAX_GROUP_SIZE",
    "RAY_NODE_COUNT",
    "GroupKey",
    "GroupKind",
    "Membership",
    "MembershipError",
    "membership_of",
]
