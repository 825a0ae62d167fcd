"""Which group a pod belongs to: LeaderWorkerSet labels, KServe multi-node predictors and
PodGroups (``spec.schedulingGroup``), read from the pod alone."""

from __future__ import annotations

from typing import Any

import pytest

from placement.membership import (
    KSERVE_GENERATION,
    KSERVE_ISVC,
    LWS_EXCLUSIVE_TOPOLOGY,
    LWS_GROUP_INDEX,
    LWS_GROUP_KEY,
    LWS_NAME,
    LWS_SIZE,
    LWS_WORKER_INDEX,
    MAX_GROUP_SIZE,
    GroupKey,
    GroupKind,
    Membership,
    MembershipError,
    membership_of,
)

LWS = GroupKind.LEADER_WORKER_SET


def pod(
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    *,
    namespace: str = "serving",
    env: dict[str, str] | None = None,
    container: str = "kserve-container",
    pod_group: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": container,
                "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
            }
        ]
    }
    if pod_group is not None:
        spec["schedulingGroup"] = {"podGroupName": pod_group}
    return {
        "metadata": {
            "name": "p",
            "namespace": namespace,
            "labels": labels or {},
            "annotations": annotations or {},
        },
        "spec": spec,
    }


def lws(
    group: str = "0", worker: str = "0", size: str | None = "2", **extra: str
) -> dict[str, Any]:
    labels = {LWS_NAME: "llama", LWS_GROUP_INDEX: group, LWS_WORKER_INDEX: worker}
    annotations = {LWS_SIZE: size} if size is not None else {}
    annotations |= extra
    return pod(labels, annotations)


def kserve(worker: bool, count: str = "2", generation: str = "3") -> dict[str, Any]:
    app = "isvc.llama-predictor-worker" if worker else "isvc.llama-predictor"
    labels = {KSERVE_ISVC: "llama", KSERVE_GENERATION: generation, "app": app}
    return pod(
        labels,
        env={"RAY_NODE_COUNT": count},
        container="worker-container" if worker else "kserve-container",
    )


def key(kind: GroupKind, name: str) -> GroupKey:
    return GroupKey(kind, "serving", name)


CASES = [
    pytest.param(pod(), None, id="plain-pod"),
    pytest.param(lws(), Membership(key(LWS, "llama/0"), 2, 0), id="lws-leader"),
    pytest.param(
        lws(group="1", worker="3", size="4"), Membership(key(LWS, "llama/1"), 4, 3), id="lws-worker"
    ),
    pytest.param(lws(size="1"), None, id="lws-group-of-one-is-no-group"),
    pytest.param(lws(size=None), Membership(key(LWS, "llama/0"), None, 0), id="lws-size-unknown"),
    pytest.param(
        lws(**{LWS_EXCLUSIVE_TOPOLOGY: "topology.kubernetes.io/zone"}),
        Membership(key(LWS, "llama/0"), 2, 0, "topology.kubernetes.io/zone"),
        id="lws-exclusive-topology",
    ),
    pytest.param(
        pod({LWS_NAME: "llama", LWS_GROUP_KEY: "abc123"}, {LWS_SIZE: "2"}),
        Membership(key(LWS, "llama/abc123"), 2, 0),
        id="lws-group-key-without-index",
    ),
    pytest.param(pod({LWS_NAME: "llama"}, {LWS_SIZE: "2"}), None, id="lws-without-group"),
    pytest.param(lws(worker="x"), Membership(key(LWS, "llama/0"), 2, 0), id="lws-odd-worker-index"),
    pytest.param(
        kserve(worker=False), Membership(key(GroupKind.KSERVE, "llama/3"), 2, 0), id="kserve-head"
    ),
    pytest.param(
        kserve(worker=True), Membership(key(GroupKind.KSERVE, "llama/3"), 2, 1), id="kserve-worker"
    ),
    pytest.param(kserve(worker=False, count="1"), None, id="kserve-one-node"),
    pytest.param(
        pod({KSERVE_ISVC: "llama"}, env={"RAY_NODE_COUNT": "2"}),
        None,
        id="kserve-single-node-predictor-has-no-generation",
    ),
    pytest.param(
        pod({KSERVE_ISVC: "llama", KSERVE_GENERATION: "1"}), None, id="kserve-without-ray-count"
    ),
    pytest.param(
        pod(pod_group="gang-a"),
        Membership(key(GroupKind.POD_GROUP, "gang-a"), None, 0),
        id="podgroup-size-open",
    ),
    pytest.param(
        {**lws(worker="1"), "spec": {**lws()["spec"], "schedulingGroup": {"podGroupName": "g"}}},
        Membership(key(GroupKind.POD_GROUP, "g"), 2, 1),
        id="podgroup-with-lws-size",
    ),
    pytest.param(pod(pod_group=""), None, id="podgroup-empty-name"),
    pytest.param({"metadata": "junk", "spec": []}, None, id="malformed-pod"),
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_membership(raw: dict[str, Any], expected: Membership | None) -> None:
    assert membership_of(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(lws(size="two"), "not a whole number", id="lws-size-text"),
        pytest.param(lws(size="0"), "1 to", id="lws-size-zero"),
        pytest.param(lws(size=str(MAX_GROUP_SIZE + 1)), "1 to", id="lws-size-too-large"),
        pytest.param(kserve(worker=False, count="-3"), "RAY_NODE_COUNT", id="kserve-negative"),
    ],
)
def test_unreadable_sizes(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(MembershipError, match=message):
        membership_of(raw)


def test_group_key_reads_as_kind_namespace_name() -> None:
    assert str(key(LWS, "llama/0")) == "lws:serving/llama/0"
