"""Reading DRA objects: claims, pods' claims, slices, the GPUs a claim asks for and may get,
and the CEL selector forms vramfit reads (and those it leaves to the DRA plugin)."""

from __future__ import annotations

from typing import Any

import pytest

from placement.demand import DemandError, demand_from_pod
from placement.dra import (
    Claim,
    ClaimsError,
    Request,
    allocated_gpus,
    claimed_gpus,
    pod_claims,
    read_claim,
    read_slice,
    template_requests,
)
from placement.dra_selectors import DeviceFacts, read_selectors
from placement.model import GIB, Allocator

D = "gpu.nvidia.com"


def device(name: str, uuid: str, product: str, memory: str, kind: str = "gpu") -> dict[str, Any]:
    return {
        "name": name,
        "attributes": {
            "type": {"string": kind},
            "uuid": {"string": uuid},
            "productName": {"string": product},
            "cudaComputeCapability": {"version": "9.0.0" if "H100" in product else "8.0.0"},
            "resource.kubernetes.io/pciBusID": {"string": "0000:18:00.0"},
        },
        "capacity": {"memory": {"value": memory}},
    }


SLICE = {
    "metadata": {"name": "n1-gpu.nvidia.com"},
    "spec": {
        "driver": D,
        "nodeName": "n1",
        "pool": {"name": "n1", "generation": 3, "resourceSliceCount": 1},
        "devices": [
            device("gpu-0", "GPU-h0", "NVIDIA H100 80GB HBM3", "80Gi"),
            device("gpu-1", "GPU-a1", "NVIDIA A100-SXM4-40GB", "40Gi"),
            device("gpu-2", "GPU-a2", "NVIDIA A100-SXM4-80GB", "80Gi"),
            device("mig-0", "MIG-x", "NVIDIA A100-SXM4-80GB", "10Gi", kind="mig"),
        ],
    },
}


def test_a_slice_reads_its_devices_qualified_by_the_driver() -> None:
    s = read_slice(SLICE)
    assert s is not None and (s.node, s.pool, s.generation) == ("n1", "n1", 3)
    gpu = s.devices[0]
    assert gpu.uuid == "GPU-h0" and gpu.is_gpu
    assert gpu.facts.attributes[f"{D}/productName"] == "NVIDIA H100 80GB HBM3"
    assert gpu.facts.attributes["resource.kubernetes.io/pciBusID"] == "0000:18:00.0"
    assert gpu.facts.capacity[f"{D}/memory"] == 80 * GIB
    assert not s.devices[3].is_gpu


def claim(requests: list[dict[str, Any]], **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "c", "namespace": "ml", "uid": "u1", "resourceVersion": "7"},
        "spec": {"devices": {"requests": requests}},
        "status": status,
    }


def exactly(cls: str = D, count: int | None = None, *cel: str) -> dict[str, Any]:
    body: dict[str, Any] = {"deviceClassName": cls}
    if count is not None:
        body["count"] = count
    if cel:
        body["selectors"] = [{"cel": {"expression": e}} for e in cel]
    return body


@pytest.mark.parametrize(
    ("requests", "gpus"),
    [
        pytest.param([{"name": "g", "exactly": exactly()}], 1, id="count-defaults-to-one"),
        pytest.param([{"name": "g", "exactly": exactly(count=4)}], 4, id="count"),
        pytest.param(
            [{"name": "g", "exactly": exactly(count=2)}, {"name": "n", "exactly": exactly("nic")}],
            2,
            id="other-classes-are-not-gpus",
        ),
        pytest.param([{"name": "m", "exactly": exactly("mig.nvidia.com")}], 0, id="mig-is-not"),
        pytest.param(
            [
                {
                    "name": "g",
                    "firstAvailable": [
                        {"name": "big", "deviceClassName": D, "count": 2},
                        {"name": "small", "deviceClassName": D, "count": 4},
                    ],
                }
            ],
            4,
            id="alternatives-read-as-their-largest",
        ),
    ],
)
def test_claimed_gpus_count(requests: list[dict[str, Any]], gpus: int) -> None:
    c = read_claim(claim(requests))
    assert c is not None
    assert claimed_gpus([c]).gpus == gpus


def test_all_mode_has_no_count_to_place() -> None:
    c = read_claim(
        claim([{"name": "g", "exactly": {"deviceClassName": D, "allocationMode": "All"}}])
    )
    assert c is not None
    with pytest.raises(ClaimsError, match="allocationMode All"):
        claimed_gpus([c])


def test_allocation_and_reservation_are_read_and_joined_by_uuid() -> None:
    raw = claim(
        [{"name": "g", "exactly": exactly(count=2)}],
        allocation={
            "devices": {
                "results": [
                    {"request": "g", "driver": D, "pool": "n1", "device": "gpu-2"},
                    {"request": "g", "driver": D, "pool": "n1", "device": "gpu-0"},
                    {"request": "n", "driver": "nic.example.com", "pool": "n1", "device": "x"},
                ]
            }
        },
        reservedFor=[{"resource": "pods", "name": "p", "uid": "pod-1"}],
    )
    c = read_claim(raw)
    assert c is not None and c.reserved_for == ("pod-1",) and c.key == "ml/c"
    s = read_slice(SLICE)
    assert s is not None
    by_name = {(d.pool, d.name): d for d in s.devices}
    assert allocated_gpus(c, by_name) == ("GPU-a2", "GPU-h0")


def test_pod_claims_name_templates_claims_through_the_status() -> None:
    pod = {
        "spec": {
            "resourceClaims": [
                {"name": "gpus", "resourceClaimTemplateName": "t"},
                {"name": "shared", "resourceClaimName": "fixed"},
                {"name": "later", "resourceClaimTemplateName": "t2"},
            ]
        },
        "status": {"resourceClaimStatuses": [{"name": "gpus", "resourceClaimName": "p-gpus-x"}]},
    }
    assert [(c.name, c.claim, c.template) for c in pod_claims(pod)] == [
        ("gpus", "p-gpus-x", "t"),
        ("shared", "fixed", ""),
        ("later", "", "t2"),
    ]


def test_template_requests() -> None:
    raw = {
        "spec": {"spec": {"devices": {"requests": [{"name": "g", "exactly": exactly(count=3)}]}}}
    }
    assert template_requests(raw) == (Request("g", D, 3),)


H100 = f"device.attributes['{D}'].productName == 'NVIDIA H100 80GB HBM3'"
BIG = f"device.capacity['{D}'].memory.compareTo(quantity('80Gi')) >= 0"


@pytest.mark.parametrize(
    ("selectors", "eligible", "unread"),
    [
        pytest.param((), None, 0, id="no-selector-any-gpu"),
        pytest.param((H100,), {"GPU-h0"}, 0, id="product"),
        pytest.param((BIG,), {"GPU-h0", "GPU-a2"}, 0, id="memory"),
        pytest.param(
            (f"device.attributes['{D}'].productName.lowerAscii().matches('^.*a100.*$')",),
            {"GPU-a1", "GPU-a2"},
            0,
            id="lower-matches",
        ),
        pytest.param(
            (f"{BIG} && device.attributes['{D}'].productName.startsWith('NVIDIA A100')",),
            {"GPU-a2"},
            0,
            id="conjunction",
        ),
        pytest.param(
            (f"device.attributes['{D}'].cudaComputeCapability.isGreaterThan(semver('8.5.0'))",),
            {"GPU-h0"},
            0,
            id="version",
        ),
        pytest.param((f"{H100} || {BIG}",), None, 1, id="disjunction-not-read-any-gpu-considered"),
        pytest.param(
            (f"has(device.attributes['{D}'].foo) && {BIG}",),
            {"GPU-h0", "GPU-a2"},
            1,
            id="the-part-read-still-narrows",
        ),
        pytest.param(
            (f"device.attributes['{D}'].type == 'A100'",), set(), 0, id="kserve-sample-type"
        ),
    ],
)
def test_selectors_narrow_the_eligible_gpus(
    selectors: tuple[str, ...], eligible: set[str] | None, unread: int
) -> None:
    c = Claim("ml", "c", "u", (Request("g", D, 1, selectors),))
    got = claimed_gpus([c])
    s = read_slice(SLICE)
    assert s is not None
    result = got.eligible(s.devices)
    assert (None if result is None else set(result)) == eligible
    assert len(got.notes) == unread
    assert all("left to the DRA plugin" in n for n in got.notes)


FACTS = DeviceFacts(
    D,
    {f"{D}/productName": "NVIDIA H100 80GB HBM3", f"{D}/index": 3, f"{D}/shared": False},
    {f"{D}/memory": 80 * GIB},
)


@pytest.mark.parametrize(
    ("expression", "selected"),
    [
        pytest.param(f'device.driver == "{D}"', True, id="driver"),
        pytest.param(f"'{D}' == device.driver", True, id="literal-first"),
        pytest.param(f'device.attributes["{D}"]["productName"] != "x"', True, id="brackets"),
        pytest.param(f"device.attributes['{D}'].index == 3", True, id="int"),
        pytest.param(f"device.attributes['{D}'].index > 3", False, id="int-order"),
        pytest.param(f"device.attributes['{D}'].index == '3'", False, id="types-differ"),
        pytest.param(f"device.attributes['{D}'].shared == false", True, id="bool"),
        pytest.param(f"device.attributes['{D}'].productName in ['a', 'NVIDIA H100 80GB HBM3']", True, id="in"),
        pytest.param(f"device.attributes['{D}'].productName.contains('80GB')", True, id="contains"),
        pytest.param(f"device.attributes['{D}'].productName.endsWith('HBM3')", True, id="ends"),
        pytest.param(f"device.attributes['{D}'].missing == 'x'", False, id="missing-attribute"),
        pytest.param(f"device.capacity['{D}'].memory.isLessThan(quantity('80Gi'))", False, id="less"),
        pytest.param(f"device.capacity['{D}'].memory.compareTo(quantity('81Gi')) == -1", True, id="cmp-minus"),
        pytest.param(f"device.capacity['{D}'].memory.compareTo(quantity('80Gi')) == 0", True, id="cmp-eq"),
        pytest.param(f"(device.capacity['{D}'].memory.compareTo(quantity('40Gi')) > 0)", True, id="parens"),
    ],
)  # fmt: skip
def test_selector_forms(expression: str, selected: bool) -> None:
    s = read_selectors((expression,))
    assert not s.unread, s.unread
    assert s.test(FACTS) is selected


@pytest.mark.parametrize(
    "expression",
    [
        pytest.param(f"!(device.attributes['{D}'].productName == 'x')", id="negation"),
        pytest.param(f"device.capacity['{D}'].memory * 2 > quantity('1Gi')", id="arithmetic"),
        pytest.param(f"device.attributes['{D}'].productName == 'x", id="unbalanced"),
        pytest.param("true", id="bare-literal"),
    ],
)
def test_expressions_not_read_are_returned_as_text(expression: str) -> None:
    s = read_selectors((expression,))
    assert not s.clauses and len(s.unread) == 1


def test_a_claimed_demand_is_placed_by_the_dra_plugin() -> None:
    pod = {"metadata": {"annotations": {"vramfit.io/vram-per-gpu": "70Gi"}}, "spec": {}}
    demand = demand_from_pod(pod, claimed_gpus=2)
    assert demand is not None
    assert (demand.gpus, demand.vram_per_gpu, demand.allocator) == (2, 70 * GIB, Allocator.DRA)
    both = {"spec": {"containers": [{"resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}
    with pytest.raises(DemandError, match="one way"):
        demand_from_pod(both, claimed_gpus=2)
