"""The field reader: every value read one way, every problem collected with its path, never a
raise while reading, and messages that stay short whatever the input holds."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from placement.fields import (
    MAX_QUOTE,
    MAX_REASON,
    DocumentError,
    FieldError,
    Fields,
    InputError,
    Problem,
    Unknown,
    quote,
    reason_line,
)
from placement.model import GIB


def read(raw: Any, method: str, *args: Any, **kwargs: Any) -> tuple[Any, list[str]]:
    """Read field ``x`` of ``raw`` under the path ``pool`` with ``method``."""
    f = Fields(raw, "pool")
    value = getattr(f, method)("x", *args, **kwargs)
    return value, [str(p) for p in f.problems]


# Each case: the raw mapping, the method with its arguments, the value read and the problems.
READS = [
    pytest.param({"x": " a "}, "text", (), {}, "a", [], id="text-stripped"),
    pytest.param({}, "text", ("d",), {}, "d", [], id="text-default"),
    pytest.param({"x": None}, "text", ("d",), {}, "d", [], id="text-null-is-absent"),
    pytest.param(
        {},
        "text",
        (),
        {"required": True},
        "",
        ["pool.x: missing (required)"],
        id="text-required",
    ),
    pytest.param(
        {"x": ""},
        "text",
        (None,),
        {},
        None,
        ["pool.x: expected a non-empty string, got ''"],
        id="text-empty",
    ),
    pytest.param(
        {"x": 3},
        "text",
        (),
        {},
        "",
        ["pool.x: expected a non-empty string, got 3"],
        id="text-number",
    ),
    pytest.param(
        {"x": "abcd"},
        "text",
        (),
        {"max_length": 3},
        "",
        ["pool.x: longer than 3 characters: 'abcd'"],
        id="text-too-long",
    ),
    pytest.param({"x": 8}, "integer", (1,), {"minimum": 1}, 8, [], id="integer"),
    pytest.param(
        {"x": True},
        "integer",
        (1,),
        {},
        1,
        ["pool.x: expected a whole number, got True"],
        id="integer-bool",
    ),
    pytest.param(
        {"x": 2.0},
        "integer",
        (1,),
        {},
        1,
        ["pool.x: expected a whole number, got 2.0"],
        id="integer-float",
    ),
    pytest.param(
        {"x": 70},
        "integer",
        (1,),
        {"minimum": 1, "maximum": 64},
        1,
        ["pool.x: expected a whole number 1..64, got 70"],
        id="integer-above-maximum",
    ),
    pytest.param(
        {"x": -1},
        "integer",
        (0,),
        {},
        0,
        ["pool.x: expected a whole number >= 0, got -1"],
        id="integer-default-minimum-zero",
    ),
    pytest.param({"x": -5}, "integer", (0,), {"minimum": None}, -5, [], id="integer-unbounded"),
    pytest.param(
        {"x": 5},
        "integer",
        (0,),
        {"minimum": None, "maximum": 4},
        0,
        ["pool.x: expected a whole number <= 4, got 5"],
        id="integer-only-maximum",
    ),
    pytest.param({}, "integer", (None,), {}, None, [], id="integer-default-none"),
    pytest.param({"x": 2}, "number", (1.0,), {}, 2.0, [], id="number-int-is-float"),
    pytest.param(
        {"x": float("nan")},
        "number",
        (1.0,),
        {},
        1.0,
        ["pool.x: expected a number, got nan"],
        id="number-nan",
    ),
    pytest.param(
        {"x": float("inf")},
        "number",
        (1.0,),
        {},
        1.0,
        ["pool.x: expected a number, got inf"],
        id="number-infinite",
    ),
    pytest.param(
        {"x": 0},
        "number",
        (1.0,),
        {"exclusive_minimum": True},
        1.0,
        ["pool.x: expected a number > 0.0, got 0"],
        id="number-exclusive-minimum",
    ),
    pytest.param(
        {"x": 2},
        "number",
        (1.0,),
        {"maximum": 1.5},
        1.0,
        ["pool.x: expected a number >= 0.0 and <= 1.5, got 2"],
        id="number-above-maximum",
    ),
    pytest.param({"x": False}, "flag", (True,), {}, False, [], id="flag"),
    pytest.param(
        {"x": "yes"},
        "flag",
        (True,),
        {},
        True,
        ["pool.x: expected true or false, got 'yes'"],
        id="flag-string",
    ),
    pytest.param(
        {},
        "flag",
        (True,),
        {"required": True},
        True,
        ["pool.x: missing (required)"],
        id="flag-required",
    ),
    pytest.param({"x": "b"}, "choice", (("a", "b"), "a"), {}, "b", [], id="choice"),
    pytest.param(
        {"x": "c"},
        "choice",
        (("a", "b"), "a"),
        {},
        "a",
        ["pool.x: expected one of a, b, got 'c'"],
        id="choice-other",
    ),
    pytest.param({"x": "80Gi"}, "size", (0,), {}, 80 * GIB, [], id="size"),
    pytest.param(
        {"x": "80 Gi"},
        "size",
        (0,),
        {},
        0,
        [
            "pool.x: '80 Gi' is not a valid quantity (expected a Kubernetes quantity such "
            "as 70Gi, 80G or 1.5e9)"
        ],
        id="size-bad-quantity-keeps-the-quantity-detail",
    ),
    pytest.param(
        {"x": "0"},
        "size",
        (1,),
        {"positive": True},
        1,
        ["pool.x: expected a size above zero, got '0'"],
        id="size-positive",
    ),
    pytest.param(
        {"x": 10**5000},
        "size",
        (1,),
        {},
        1,
        ["pool.x: <int> is not a valid quantity (too long)"],
        id="size-int-too-long-to-print",
    ),
    pytest.param({"x": "2Gi"}, "rate", (1.0,), {}, 2.0 * GIB, [], id="rate"),
    pytest.param(
        {"x": 0},
        "rate",
        (1.0,),
        {},
        1.0,
        ["pool.x: expected a size above zero, got 0"],
        id="rate-zero",
    ),
    pytest.param({"x": "500m"}, "milli", (0,), {}, 500, [], id="milli"),
    pytest.param({"x": 96}, "milli", (0,), {}, 96_000, [], id="milli-cores"),
    pytest.param(
        {"x": "lots"},
        "milli",
        (7,),
        {},
        7,
        [
            "pool.x: 'lots' is not a valid CPU quantity such as 500m (expected a "
            "Kubernetes quantity such as 70Gi, 80G or 1.5e9)"
        ],
        id="milli-bad",
    ),
    pytest.param(
        {"x": 0},
        "milli",
        (7,),
        {},
        7,
        ["pool.x: expected CPU cores above zero such as 96 or 500m, got 0"],
        id="milli-zero",
    ),
    pytest.param({"x": "1h30m"}, "duration", (0.0,), {}, 5400.0, [], id="duration"),
    pytest.param({"x": 90}, "duration", (0.0,), {}, 90.0, [], id="duration-number"),
    pytest.param(
        {"x": "soon"},
        "duration",
        (1.0,),
        {},
        1.0,
        [
            "pool.x: expected a finite duration such as 90s, 15m, 1h30m or a number of "
            "seconds, got 'soon'"
        ],
        id="duration-bad",
    ),
    pytest.param(
        {"x": "0s"},
        "duration",
        (1.0,),
        {"positive": True},
        1.0,
        ["pool.x: expected a duration above zero, got '0s'"],
        id="duration-positive",
    ),
    pytest.param({"x": [1, "a"]}, "items", (), {}, [1, "a"], [], id="items"),
    pytest.param(
        {"x": {"a": 1}},
        "items",
        (),
        {},
        [],
        ["pool.x: expected a list, got a mapping"],
        id="items-mapping",
    ),
    pytest.param(
        {},
        "items",
        (),
        {"required": True},
        [],
        ["pool.x: missing (required): expected a list"],
        id="items-required",
    ),
    pytest.param({"x": "a, b,"}, "strings", (), {}, ("a", "b"), [], id="strings-comma"),
    pytest.param({"x": [" a", "b"]}, "strings", (), {}, ("a", "b"), [], id="strings-list"),
    pytest.param(
        {"x": ["a", 1]},
        "strings",
        (),
        {},
        (),
        ["pool.x: expected a list of strings, got ['a', 1]"],
        id="strings-not-all-strings",
    ),
    pytest.param(
        {"x": {"a": "1", "b": 8}},
        "string_map",
        (),
        {},
        {"a": "1", "b": "8"},
        [],
        id="string-map-numbers-as-text",
    ),
    pytest.param(
        {"x": {"a": True, 3: "x", "c": "ok"}},
        "string_map",
        (),
        {},
        {"c": "ok"},
        ["pool.x.a: expected a string, got True", "pool.x: key 3 is not a string"],
        id="string-map-bad-entries-left-out",
    ),
]


@pytest.mark.parametrize(
    ("raw", "call", "expected"),
    [pytest.param(c.values[0], c.values[1:4], c.values[4:], id=c.id) for c in READS],
)
def test_reading(
    raw: Any, call: tuple[str, tuple[Any, ...], dict[str, Any]], expected: tuple[Any, list[str]]
) -> None:
    method, args, kwargs = call
    assert read(raw, method, *args, **kwargs) == expected


@pytest.mark.parametrize(
    ("raw", "unknown", "problems", "notes"),
    [
        pytest.param(
            {"gpus": 1, "gpuz": 2},
            "problem",
            ["spec.pools[0].gpuz: unknown field (known: gpus, name)"],
            [],
            id="strict",
        ),
        pytest.param(
            {"gpus": 1, "gpuz": 2},
            "note",
            [],
            ["spec.pools[0].gpuz: unknown field, ignored"],
            id="tolerant",
        ),
        pytest.param({"gpus": 1, "gpuz": 2}, "ignore", [], [], id="ignore"),
        pytest.param(
            {"k" * 200: 1},
            "note",
            [],
            [f"spec.pools[0].{'k' * MAX_QUOTE}…: unknown field, ignored"],
            id="long-key-capped-in-the-path",
        ),
        pytest.param(
            {7: 1},
            "note",
            [],
            ["spec.pools[0].7: unknown field, ignored"],
            id="number-key",
        ),
        pytest.param(
            ["gpus"],
            "problem",
            ["spec.pools[0]: expected a mapping, got a list"],
            [],
            id="not-a-mapping",
        ),
        pytest.param(None, "problem", [], [], id="null-reads-as-empty"),
    ],
)
def test_unknown_fields(raw: Any, unknown: Unknown, problems: list[str], notes: list[str]) -> None:
    f = Fields(raw, "spec.pools[0]", known=("name", "gpus"), unknown=unknown)
    assert [str(p) for p in f.problems] == problems
    assert [str(n) for n in f.notes] == notes


def test_children_share_problems_and_notes_under_indexed_paths() -> None:
    raw = {
        "services": [
            {"name": "a", "traffic": {"rate": -1}},
            "oops",
            None,
            {"name": "b", "traffic": {"rate": 2, "burst": 1}},
        ]
    }
    top = Fields(raw, known=("services",), unknown="note")
    rates = []
    for svc in top.children("services", ("name", "traffic")):
        traffic = svc.child("traffic", ("rate",))
        rates.append(traffic.number("rate", 1.0))
    assert rates == [1.0, 1.0, 1.0, 2.0]
    # The entries are checked when the list is read, before their fields are.
    assert [str(p) for p in top.problems] == [
        "services[1]: expected a mapping, got 'oops'",
        "services[2]: expected a mapping, got null",
        "services[0].traffic.rate: expected a number >= 0.0, got -1",
    ]
    assert [str(n) for n in top.notes] == ["services[3].traffic.burst: unknown field, ignored"]


def test_child_policy_can_differ_from_its_parent() -> None:
    top = Fields({"spec": {"extra": 1}}, known=("spec",), unknown="problem")
    top.child("spec", ("model",), unknown="note")
    assert top.problems == []
    assert top.notes == [Problem("spec.extra", "unknown field, ignored")]


def test_required_child_missing() -> None:
    top = Fields({}, "doc")
    assert top.child("spec", ("a",), required=True).raw == {}
    assert top.problems == [Problem("doc.spec", "missing (required)")]


def test_raise_if_problems_lists_all_in_order() -> None:
    f = Fields({"a": "x", "b": "y"}, known=("a", "b"))
    f.raise_if_problems("s.yaml")  # nothing yet
    f.integer("a", 0)
    f.flag("b", False)
    with pytest.raises(InputError) as info:
        f.raise_if_problems("s.yaml")
    assert str(info.value) == (
        "s.yaml:\n  a: expected a whole number, got 'x'\n  b: expected true or false, got 'y'"
    )
    assert info.value.source == "s.yaml"
    assert len(info.value.problems) == 2


@pytest.mark.parametrize(
    ("error", "message"),
    [
        pytest.param(InputError("s.yaml", [Problem("a", "bad")]), "s.yaml: a: bad", id="one"),
        pytest.param(
            InputError("s.yaml", [Problem("a", "bad"), Problem("", "worse")]),
            "s.yaml:\n  a: bad\n  worse",
            id="several",
        ),
        pytest.param(
            InputError("", [Problem("x.yaml: a", "bad"), Problem("y.yaml: b", "worse")]),
            "x.yaml: a: bad\ny.yaml: b: worse",
            id="no-source",
        ),
        pytest.param(
            FieldError("pools[0].gpus", "must be positive"),
            "pools[0].gpus: must be positive",
            id="field",
        ),
        pytest.param(
            DocumentError("s.yaml", "file not found"), "s.yaml: file not found", id="document"
        ),
    ],
)
def test_error_messages(error: InputError, message: str) -> None:
    assert str(error) == message
    assert isinstance(error, ValueError)


def test_field_error_keeps_where_and_detail() -> None:
    err = FieldError("spec.x", "too big")
    assert (err.where, err.detail, err.problems) == (
        "spec.x",
        "too big",
        (Problem("spec.x", "too big"),),
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("abc", "'abc'", id="short"),
        pytest.param("a" * 200, "'" + "a" * (MAX_QUOTE - 1) + "…", id="long-string"),
        pytest.param(10**5000, "<int>", id="int-past-the-digit-limit"),
        pytest.param([1] * 1000, "[1, 1, 1, 1, 1, 1, ...]", id="long-list"),
    ],
)
def test_quote(value: object, expected: str) -> None:
    assert quote(value) == expected


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=30,
    )
)
def test_any_value_reads_without_raising_and_every_message_is_bounded(value: Any) -> None:
    f = Fields({"x": value, "y": value}, "doc", known=("x",))
    for method, args in [
        ("text", ()),
        ("integer", (0,)),
        ("number", (0.0,)),
        ("flag", (False,)),
        ("choice", (("a",), "a")),
        ("size", (0,)),
        ("rate", (1.0,)),
        ("milli", (1,)),
        ("duration", (0.0,)),
        ("items", ()),
        ("strings", ()),
        ("string_map", ()),
    ]:
        getattr(f, method)("x", *args)
    f.child("x", ("a",))
    f.children("x", ("a",))
    limit = 400
    assert all(len(str(p)) < limit for p in f.problems)


def test_deep_value_quotes_without_recursion() -> None:
    f = Fields({"x": _nested(100_000)}, "doc")
    assert f.integer("x", 0) == 0
    assert str(f.problems[0]) == "doc.x: expected a whole number, got [[[...]]]"


REASON_LINES = {
    "short-stays": ("no GPU fits", "no GPU fits"),
    "lines-join": ("a\nb\r\n\tc", "a b c"),
    "long-is-cut": ("x" * 5000, "x" * (MAX_REASON - 1) + "…"),
    "long-whitespace-is-cut": (" " * 5000 + "tail", "…"),
}


@pytest.mark.parametrize(("text", "expect"), REASON_LINES.values(), ids=REASON_LINES.keys())
def test_reason_line(text: str, expect: str) -> None:
    assert reason_line(text) == expect


@given(st.text(), st.integers(min_value=1, max_value=400))
def test_reason_line_is_one_line_within_its_limit(text: str, limit: int) -> None:
    line = reason_line(text, limit)
    assert len(line) <= limit and len(line.splitlines()) <= 1
