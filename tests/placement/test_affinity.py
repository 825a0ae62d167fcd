"""GFD node affinity for the static demand: the expressions, the merge, and that it never widens."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from placement.affinity import (
    GFD_MEMORY,
    GFD_PRODUCT,
    REQUIRED,
    AffinityError,
    narrowed_required,
    static_expressions,
)
from placement.model import GIB
from placement.shape import MIB
from tests.placement.nodeaffinity import matches

MEM_70G = {"key": GFD_MEMORY, "operator": "Gt", "values": ["71679"]}
ZONE_A = {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}


@pytest.mark.parametrize(
    ("vram", "products", "expected"),
    [
        pytest.param(70 * GIB, (), (MEM_70G,), id="70GiB-is-at-least-71680MiB"),
        pytest.param(70 * GIB + 1, (), (dict(MEM_70G, values=["71680"]),), id="rounds-up-to-MiB"),
        pytest.param(MIB, (), ({"key": GFD_MEMORY, "operator": "Gt", "values": ["0"]},), id="1MiB"),
        pytest.param(0, (), (), id="no-need-no-expression"),
        pytest.param(
            0,
            ("NVIDIA H100 80GB HBM3", "NVIDIA-A100-SXM4-80GB", " "),
            (
                {
                    "key": GFD_PRODUCT,
                    "operator": "In",
                    "values": ["NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"],
                },
            ),
            id="products-in-gfd-spelling-sorted",
        ),
    ],
)
def test_static_expressions(
    vram: int, products: tuple[str, ...], expected: tuple[Any, ...]
) -> None:
    assert static_expressions(vram, products) == expected


def _required(*terms: dict[str, Any]) -> dict[str, Any]:
    return {"nodeAffinity": {REQUIRED: {"nodeSelectorTerms": list(terms)}}}


@pytest.mark.parametrize(
    ("affinity", "expected"),
    [
        pytest.param(None, {"nodeSelectorTerms": [{"matchExpressions": [MEM_70G]}]}, id="none"),
        pytest.param(
            {"podAntiAffinity": {}},
            {"nodeSelectorTerms": [{"matchExpressions": [MEM_70G]}]},
            id="only-pod-affinity",
        ),
        pytest.param(
            _required(
                {"matchExpressions": [ZONE_A]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]},
            ),
            {
                "nodeSelectorTerms": [
                    {"matchExpressions": [ZONE_A, MEM_70G]},
                    {
                        "matchFields": [
                            {"key": "metadata.name", "operator": "In", "values": ["n1"]}
                        ],
                        "matchExpressions": [MEM_70G],
                    },
                ]
            },
            id="anded-into-every-term",
        ),
        pytest.param(_required({"matchExpressions": [ZONE_A, MEM_70G]}), None, id="already-there"),
    ],
)
def test_narrowed_required(affinity: Any, expected: Any) -> None:
    before = copy.deepcopy(affinity)
    assert narrowed_required(affinity, [MEM_70G]) == expected
    assert affinity == before  # the input is not changed


@pytest.mark.parametrize(
    "affinity",
    [
        pytest.param("zone-a", id="affinity-not-object"),
        pytest.param({"nodeAffinity": []}, id="node-affinity-not-object"),
        pytest.param({"nodeAffinity": {REQUIRED: {"nodeSelectorTerms": {}}}}, id="terms-not-list"),
        pytest.param(_required("term"), id="term-not-object"),  # type: ignore[arg-type]
        pytest.param(_required({"matchExpressions": {}}), id="expressions-not-list"),
    ],
)
def test_malformed_affinity_is_an_error_not_a_guess(affinity: Any) -> None:
    with pytest.raises(AffinityError):
        narrowed_required(affinity, [MEM_70G])


def test_no_expressions_changes_nothing() -> None:
    assert narrowed_required(_required({"matchExpressions": [ZONE_A]}), []) is None


# --- never widening: nodes matching after are a subset of those matching before ------------

KEYS = ["zone", GFD_MEMORY, GFD_PRODUCT, "pool"]
VALUES = ["a", "b", "40960", "81920", "NVIDIA-A100-SXM4-80GB"]

expressions = st.one_of(
    st.builds(
        lambda k, op, vs: {"key": k, "operator": op, "values": vs},
        st.sampled_from(KEYS),
        st.sampled_from(["In", "NotIn"]),
        st.lists(st.sampled_from(VALUES), min_size=1, max_size=3),
    ),
    st.builds(
        lambda k, op: {"key": k, "operator": op},
        st.sampled_from(KEYS),
        st.sampled_from(["Exists", "DoesNotExist"]),
    ),
    st.builds(
        lambda k, op, v: {"key": k, "operator": op, "values": [str(v)]},
        st.sampled_from(KEYS),
        st.sampled_from(["Gt", "Lt"]),
        st.integers(0, 100_000),
    ),
)
fields = st.lists(
    st.builds(
        lambda vs: {"key": "metadata.name", "operator": "In", "values": vs},
        st.lists(st.sampled_from(["n0", "n1", "n2"]), min_size=1, max_size=2),
    ),
    max_size=1,
)
terms = st.builds(
    lambda es, fs: {k: v for k, v in (("matchExpressions", es), ("matchFields", fs)) if v},
    st.lists(expressions, max_size=3),
    fields,
)
affinities = st.one_of(
    st.none(),
    st.builds(lambda ts: _required(*ts), st.lists(terms, min_size=1, max_size=3)),
)
nodes = st.lists(
    st.tuples(
        st.sampled_from(["n0", "n1", "n2", "n3"]),
        st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=4),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(
    affinity=affinities,
    vram=st.integers(0, 100 * GIB),
    products=st.lists(
        st.sampled_from(["NVIDIA-A100-SXM4-80GB", "NVIDIA H100 80GB HBM3"]), max_size=2
    ),
    fleet=nodes,
)
def test_the_merge_never_widens(
    affinity: Any, vram: int, products: list[str], fleet: list[tuple[str, dict[str, str]]]
) -> None:
    new = static_expressions(vram, products)
    required = narrowed_required(affinity, new)
    after = affinity if required is None else {"nodeAffinity": {REQUIRED: required}}
    for name, labels in fleet:
        before_ok = matches(name, labels, affinity)
        after_ok = matches(name, labels, after)
        assert not after_ok or before_ok, (name, labels)
        # ...and it narrows by exactly the new requirements, nothing else.
        meets_new = all(matches(name, labels, _required({"matchExpressions": [e]})) for e in new)
        assert after_ok == (before_ok and meets_new), (name, labels)
