"""Scenario files: built-ins load; every mistake is reported at once, naming its field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from placement.fields import DocumentError, InputError
from placement.quantity import duration_seconds
from simulator.catalog import BUILTIN_TYPES, load_plan, pools_from_plan
from simulator.scenario_files import (
    BUILTINS,
    builtin_scenario,
    resolve_scenario,
    scenario_from_text,
)

GIB = 1024**3

GOOD = """
name: ok
duration: 1h
pools:
  - {name: a, type: a100-40gb-8, nodes: 2}
services:
  - {name: s, model: org/m, modelSize: 15Gi, gpus: 1, traffic: {pattern: constant, rate: 1}}
"""


def problems(text: str) -> tuple[str, ...]:
    with pytest.raises(InputError) as info:
        scenario_from_text(text, "test.yaml")
    assert str(info.value).startswith("test.yaml:")
    return tuple(str(p) for p in info.value.problems)


@pytest.mark.parametrize("name", BUILTINS)
def test_builtins_load(name: str) -> None:
    s = builtin_scenario(name)
    assert s.name == name
    assert s.services and s.pools
    assert resolve_scenario(name) == s


def test_morning_burst_is_what_it_says() -> None:
    s = builtin_scenario("morning-burst")
    assert len(s.services) == 20
    big = [x for x in s.services if x.model_bytes >= 130 * GIB]
    assert {x.gpus for x in big} >= {2, 4, 8}
    assert {p.node_type.shape.vram_per_gpu for p in s.pools} == {40 * GIB, 80 * GIB}
    assert all(x.traffic.pattern == "burst" and x.traffic.start[1] <= 60 for x in s.services)
    assert all(x.min_replicas == 0 for x in s.services)


def test_count_expands_services_and_defaults_apply() -> None:
    s = scenario_from_text(GOOD.replace("{name: s,", "{name: s, count: 3,"), "x")
    assert [x.name for x in s.services] == ["s-0", "s-1", "s-2"]
    svc = s.services[0]
    assert svc.vram_per_gpu == int(15 * GIB * 1.2)
    assert svc.cpu_milli == 8000
    assert s.pools[0].node_names() == ("a-0", "a-1")
    assert s.pools[0].node_type == BUILTIN_TYPES["a100-40gb-8"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("[1, 2]", ["expected a mapping, got a list"], id="not-a-mapping"),
        pytest.param("a: [", ["not valid YAML"], id="not-yaml"),
        pytest.param(
            GOOD.replace("duration: 1h", ""), ["duration: missing (required)"], id="no-duration"
        ),
        pytest.param(
            GOOD.replace("duration: 1h", "duration: 5 minutes"),
            ["duration: expected a finite duration such as 90s"],
            id="bad-duration",
        ),
        pytest.param(GOOD + "extra: 1\n", ["extra: unknown field"], id="unknown-top"),
        pytest.param(
            GOOD + "description: 5\n",
            ["description: expected a non-empty string, got 5"],
            id="bad-description",
        ),
        pytest.param(
            GOOD.replace("nodes: 2}", "nodez: 2}"),
            ["pools[0].nodez: unknown field", "pools[0].nodes: missing (required)"],
            id="unknown-pool-field",
        ),
        pytest.param(
            GOOD.replace("a100-40gb-8", "z9"),
            ["pools[0].type: unknown node type 'z9'"],
            id="bad-type",
        ),
        pytest.param(
            GOOD.replace("rate: 1}", "rate: -1}"),
            ["services[0].traffic.rate: expected a number > 0.0, got -1"],
            id="negative-rate",
        ),
        pytest.param(
            GOOD.replace("pattern: constant", "pattern: wave"),
            ["services[0].traffic.pattern: expected one of burst, onoff, diurnal, constant"],
            id="bad-pattern",
        ),
        pytest.param(
            GOOD.replace("rate: 1}", "rate: 1, onMean: 5m}"),
            ["services[0].traffic.onMean: does not apply to pattern 'constant'"],
            id="field-of-another-pattern",
        ),
        pytest.param(
            GOOD.replace("modelSize: 15Gi", "modelSize: lots"),
            ["services[0].modelSize: 'lots' is not a valid quantity"],
            id="bad-size",
        ),
        pytest.param(
            GOOD.replace("gpus: 1,", "gpus: 16,"),
            ["services[0].gpus: 16 is more than any node has (8)"],
            id="too-many-gpus",
        ),
        pytest.param(
            GOOD.replace("gpus: 1,", "gpus: 1, gpuProduct: NVIDIA-H100-80GB-HBM3,"),
            ["services[0].gpuProduct: NVIDIA-H100-80GB-HBM3 matches no pool"],
            id="product-matches-no-pool",
        ),
        pytest.param(
            GOOD.replace("gpus: 1,", "gpus: 1, vramPerGpu: 1Gi,"),
            ["services[0].vramPerGpu: is below the model's weights per GPU"],
            id="vram-below-weights",
        ),
        pytest.param(
            GOOD.replace("gpus: 1,", "gpus: 1, minReplicas: 3, maxReplicas: 2,"),
            ["services[0].minReplicas: 3 is above maxReplicas 2"],
            id="min-above-max",
        ),
        pytest.param(
            GOOD.replace("gpus: 1,", "gpus: 1, policy: fastest,"),
            ["services[0].policy: unknown placement policy 'fastest'"],
            id="unknown-policy",
        ),
        pytest.param(
            GOOD
            + "  - {name: s, model: o/n, modelSize: 1Gi, traffic: {pattern: constant, rate: 1}}\n",
            ["services[1].name: 's' repeats an earlier service"],
            id="duplicate-service",
        ),
        pytest.param(
            GOOD + "outOfBand: [{node: a-7, gpu: 0, memory: 1Gi}]\n",
            ["outOfBand[0].node: no node 'a-7' in the pools"],
            id="out-of-band-node",
        ),
        pytest.param(
            GOOD + "outOfBand: [{node: a-1, gpu: 9, memory: 1Gi}]\n",
            ["outOfBand[0].gpu: node a-1 has GPUs 0..7"],
            id="out-of-band-gpu",
        ),
        pytest.param(
            GOOD + "settings: {agentInterval: 0s, reservationEnd: later, bogus: 1}\n",
            [
                "settings.bogus: unknown field",
                "settings.agentInterval: expected a duration above zero",
                "settings.reservationEnd: expected one of held, loaded",
            ],
            id="settings",
        ),
        pytest.param(
            GOOD.replace("nodes: 2}", "nodes: 2, cachedModels: [{model: org/x}]}"),
            ["pools[0].cachedModels: model 'org/x' is served by no service"],
            id="cached-model-unknown",
        ),
        pytest.param(
            GOOD.replace("nodes: 2}", "nodes: 2, nvlink: [[0, 1], [1, 2]]}"),
            ["pools[0].nvlink[1]: GPU 1 is listed again (in island 0)"],
            id="bad-islands",
        ),
        pytest.param(
            GOOD.replace("type: a100-40gb-8, ", ""),
            ["pools[0].type: missing: name a built-in node type"],
            id="no-type",
        ),
    ],
)
def test_problems_name_their_field(text: str, expected: list[str]) -> None:
    found = problems(text)
    for e in expected:
        assert any(e in p for p in found), (e, found)


ALL = ((0, 1, 2, 3, 4, 5, 6, 7),)
NONE = tuple((i,) for i in range(8))


@pytest.mark.parametrize(
    ("nvlink", "islands"),
    [
        pytest.param("all", ALL, id="all"),
        pytest.param("none", NONE, id="none"),
        pytest.param("null", ALL, id="unsaid-is-the-types"),
        pytest.param("true", ALL, id="true-is-all"),
        pytest.param("false", NONE, id="false-is-none"),
        pytest.param(
            "[[0, 1], [2, 3]]", ((0, 1), (2, 3), (4,), (5,), (6,), (7,)), id="unlisted-gpus-alone"
        ),
        pytest.param(
            "{islands: [[7, 6, 5, 4], [3, 2, 1, 0]]}",
            ((0, 1, 2, 3), (4, 5, 6, 7)),
            id="islands-mapping-sorted",
        ),
    ],
)
def test_pool_nvlink(nvlink: str, islands: tuple[tuple[int, ...], ...]) -> None:
    """One NVLink rule for every file (placement.shape.parse_nvlink): a GPU no island lists is
    joined to no other, and true/false mean all/none (a scenario used to reject all three)."""
    s = scenario_from_text(GOOD.replace("nodes: 2}", f"nodes: 2, nvlink: {nvlink}}}"), "x")
    assert s.pools[0].node_type.shape.islands == islands


@pytest.mark.parametrize(
    ("nvlink", "problem"),
    [
        pytest.param(
            "[[0, 1], [1, 2]]",
            "pools[0].nvlink[1]: GPU 1 is listed again (in island 0)",
            id="repeat",
        ),
        pytest.param(
            "[[0, 0]]", "pools[0].nvlink[0]: GPU 0 is listed twice in this island", id="twice"
        ),
        pytest.param("[[0, 8]]", "pools[0].nvlink[0]: 8 is not a GPU index 0..7", id="range"),
        pytest.param("[[0, 1], []]", "pools[0].nvlink[1]: an island lists no GPU", id="empty"),
        pytest.param("some", "pools[0].nvlink: expected all, none or islands", id="not-a-form"),
    ],
)
def test_pool_nvlink_problems(nvlink: str, problem: str) -> None:
    found = problems(GOOD.replace("nodes: 2}", f"nodes: 2, nvlink: {nvlink}}}"))
    assert any(problem in p for p in found), found


def test_all_problems_are_reported_at_once() -> None:
    text = GOOD.replace("duration: 1h", "duration: soon").replace("rate: 1}", "rate: 0}")
    found = problems(text)
    assert len(found) >= 2


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90.0),
        ("15m", 900.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        (12, 12.0),
        ("2d", 172800.0),
        ("7.5", 7.5),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert duration_seconds(value) == seconds


@pytest.mark.parametrize("value", ["", "1 hour", "-5s", True, None, "1h foo", float("inf")])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        duration_seconds(value)


def test_missing_scenario_file(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"nope\.yaml: file not found"):
        resolve_scenario(str(tmp_path / "nope.yaml"))
    with pytest.raises(DocumentError, match="neither a built-in scenario"):
        resolve_scenario("morning-bust")


POOLS: list[dict[str, Any]] = [
    {
        "name": "h100-pool",
        "gpu_product": "NVIDIA-H100-80GB-HBM3",
        "gpus_per_node": 8,
        "vram_per_gpu_bytes": 80 * GIB,
        "nodes": 3,
    },
    {
        "name": "custom",
        "gpu_product": "NVIDIA-B200",
        "gpus_per_node": 8,
        "vram_per_gpu_bytes": 180 * GIB,
        "nodes": 1,
        "price_per_hour": 100.0,
    },
    {
        "name": "aws-p4d.24xlarge",
        "gpu_product": "NVIDIA-A100-SXM4-40GB",
        "gpus_per_node": 8,
        "vram_per_gpu_bytes": 40 * GIB,
        "nodes": 2,
        "existing_nodes": 0,
        "cost_per_hour": 60.0,
    },
    {
        "name": "gcp-a2-ultragpu-8g",
        "gpu_product": "NVIDIA-A100-SXM4-80GB",
        "gpus_per_node": 8,
        "vram_per_gpu_bytes": 80 * GIB,
        "nodes": 0,
    },
]
PLAN: dict[str, Any] = {
    "pools": POOLS,
    "catalog": {"pools": [{"name": "gcp-a2-ultragpu-8g", "price_per_hour": 40.44}]},
    "other": "fields are ignored",
}


def test_plan_pools_replace_the_scenario_pools(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(PLAN))
    pools = load_plan(path)
    s = builtin_scenario("morning-burst").with_plan(pools)
    assert [(p.name, p.nodes) for p in s.pools] == [
        ("h100-pool", 3),
        ("custom", 1),
        ("aws-p4d.24xlarge", 2),
        ("gcp-a2-ultragpu-8g", 0),
    ]
    h100 = s.pools[0].node_type
    assert h100.price_per_hour == BUILTIN_TYPES["h100-80gb-8"].price_per_hour
    assert h100.shape.islands == ((0, 1, 2, 3, 4, 5, 6, 7),)
    assert h100.cpu_milli == BUILTIN_TYPES["h100-80gb-8"].cpu_milli
    # Price: the pool's own, then the plan's catalog, then its total cost over its nodes.
    assert [p.node_type.price_per_hour for p in s.pools[1:]] == [100.0, 30.0, 40.44]
    assert s.out_of_band == ()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param([], "expected a JSON object with a 'pools' list", id="not-object"),
        pytest.param({"pools": [{"name": "x"}]}, "pools[0].gpu_product", id="missing-fields"),
        pytest.param(
            {"pools": [{**POOLS[0], "nodes": -1}]},
            "pools[0].nodes: expected a whole number >= 0, got -1",
            id="negative-nodes",
        ),
        pytest.param(
            {"pools": [{**POOLS[1], "price_per_hour": None}]},
            "pools[0].price_per_hour: missing (nor in the plan's catalog, nor a cost_per_hour)",
            id="no-price",
        ),
    ],
)
def test_plan_problems(raw: object, expected: str) -> None:
    with pytest.raises(InputError) as info:
        pools_from_plan(raw, "plan.json")
    assert any(expected in str(p) for p in info.value.problems), info.value.problems


@pytest.mark.parametrize(
    ("nvlink", "islands"),
    [
        pytest.param(None, ALL, id="unsaid-is-the-built-in-types"),
        pytest.param("none", NONE, id="none"),
        pytest.param(
            [[0, 1], [2, 3], [4, 5], [6, 7]],
            ((0, 1), (2, 3), (4, 5), (6, 7)),
            id="islands",
        ),
        pytest.param(
            {"islands": [[0, 1, 2, 3]]}, ((0, 1, 2, 3), (4,), (5,), (6,), (7,)), id="unlisted-alone"
        ),
    ],
)
def test_plan_pool_nvlink(nvlink: object, islands: tuple[tuple[int, ...], ...]) -> None:
    """A plan's pools read NVLink by the same rule as a scenario's (they used to take only all
    or none)."""
    (pool,) = pools_from_plan({"pools": [{**POOLS[0], "nvlink": nvlink}]}, "plan.json")
    assert pool.node_type.shape.islands == islands


def test_plan_pool_nvlink_problem() -> None:
    with pytest.raises(InputError) as info:
        pools_from_plan({"pools": [{**POOLS[0], "nvlink": [[0, 1], [1]]}]}, "plan.json")
    assert [str(p) for p in info.value.problems] == [
        "pools[0].nvlink[1]: GPU 1 is listed again (in island 0)"
    ]


def test_plan_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"none\.json: file not found"):
        load_plan(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(DocumentError, match="not valid JSON"):
        load_plan(bad)
