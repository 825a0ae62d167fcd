"""What the extender believes of a pod's ``vramfit.io/reservation`` annotation.

Only the extender writes it (an admission policy in deploy/ holds everyone else off), but the
extender does not rely on that alone: it ignores the annotation on pods that request no GPU or
that another scheduler places, refuses a time in the future, and never holds more GPUs for a
pod than the pod requests.
"""

from __future__ import annotations

from typing import Any

import pytest

from placement.annotation import encode_reservation
from placement.model import GIB, Reservation, ReservationState
from tests.extender.conftest import NOW, gpu_node, pod_object, synced_state

DAY = 86_400.0


def forged(*, gpus: int = 8, at: float = NOW - 5, node: str = "n0") -> str:
    return encode_reservation(
        Reservation(
            pod_uid="",
            pod_key="",
            node=node,
            gpu_uuids=tuple(f"GPU-{node}-{i}" for i in range(gpus)),
            bytes_per_gpu=80 * GIB,
            state=ReservationState.BOUND,
            created_at=at,
        )
    )


def pod(annotation: str, *, gpus: int = 1, scheduler: str = "vramfit", bound: bool = False) -> Any:
    raw = pod_object(
        "p",
        gpus=gpus,
        uid="u-1",
        annotations={"vramfit.io/reservation": annotation},
        node_name="n0" if bound else "",
        phase="Running" if bound else "Pending",
    )
    raw["spec"]["schedulerName"] = scheduler
    return raw


CASES = {
    # name: (raw pod, GPUs the extender holds for it)
    "honest-unbound": (pod(forged(gpus=1)), 1),
    "honest-bound": (pod(forged(gpus=1), bound=True), 1),
    "no-gpu-request": (pod(forged(), gpus=0), 0),
    "no-gpu-request-bound": (pod(forged(), gpus=0, bound=True), 0),
    "another-scheduler": (pod(forged(gpus=1), scheduler="default-scheduler"), 0),
    "another-scheduler-bound": (pod(forged(gpus=1), scheduler="default-scheduler", bound=True), 0),
    "days-in-the-future": (pod(forged(gpus=1, at=NOW + 3 * DAY)), 0),
    "within-clock-skew": (pod(forged(gpus=1, at=NOW + 10)), 1),
    "more-gpus-than-requested": (pod(forged(gpus=8)), 1),
    "more-gpus-than-requested-bound": (pod(forged(gpus=8), gpus=2, bound=True), 2),
}


@pytest.mark.parametrize(("raw", "held"), CASES.values(), ids=CASES.keys())
def test_reservation_annotation_is_believed_only_within_the_pod_it_is_on(
    raw: dict[str, Any], held: int
) -> None:
    """Regression: any pod could carry the annotation, and a forged one pinned to a node or
    dated far in the future reserved every GPU of the node for days."""
    state = synced_state([gpu_node("n0")], pods=[raw])
    r = state.fleet.claims.get("u-1")
    assert (0 if r is None else len(r.gpu_uuids)) == held
