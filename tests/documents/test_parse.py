"""Decoding documents: every failure one clear message naming the source and, where the text
says, its line and column; hostile text (alias bombs, deep nesting, huge integers) refused fast;
any bytes at all either decode or raise ``DocumentError``."""

from __future__ import annotations

import datetime as dt
import re
import time
import tracemalloc
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from documents import DocumentError, parse_document, parse_documents

LAUGHS = (
    "\n".join(
        [
            'lol0: &lol0 "lol"',
            *(f"lol{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * 10) + "]" for n in range(1, 10)),
        ]
    )
    + "\n"
)
"""A "billion laughs": ten aliases of ten aliases, nine deep, a billion leaves in 684 bytes."""

LOCATED = r"at line (\d+), column (\d+)"


def _too_deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("data", "source", "message"),
    [
        pytest.param(
            b"a: 1\nb: \xff\n",
            "s.yaml",
            r"s\.yaml: not UTF-8 text: byte 0xff at line 2, column 4",
            id="not-utf8",
        ),
        pytest.param(
            "a: [1, 2\n",
            "s.yaml",
            rf"s\.yaml: not valid YAML {LOCATED}: .*flow sequence.*",
            id="unclosed-flow",
        ),
        pytest.param(
            "a: b: c\n",
            "s.yaml",
            rf"s\.yaml: not valid YAML {LOCATED}: mapping values are not .*",
            id="mapping-in-a-plain-value",
        ),
        pytest.param(
            "a:\n\tb: 1\n",
            "s.yaml",
            rf"s\.yaml: not valid YAML {LOCATED}: .+",
            id="tab-indentation",
        ),
        pytest.param(
            "a: \x00\n", "s.yaml", rf"s\.yaml: not valid YAML {LOCATED}: .+", id="control-character"
        ),
        pytest.param(
            "!!python/object/apply:os.system ['true']\n",
            "s.yaml",
            rf"s\.yaml: not valid YAML {LOCATED}: could not determine a constructor for the tag "
            r"'tag:yaml\.org,2002:python/object/apply:os\.system'",
            id="python-tag-refused",
        ),
        pytest.param(
            "a: *nowhere\n",
            "s.yaml",
            rf"s\.yaml: not valid YAML {LOCATED}: found undefined alias.*",
            id="undefined-alias",
        ),
        pytest.param(
            "day: 2024-02-30\n",
            "s.yaml",
            rf"s\.yaml: not valid YAML {LOCATED}: cannot build this value "
            r"\(day is out of range for month\)",
            id="date-that-does-not-exist",
        ),
        pytest.param(
            "on: !!bool maybe\n",
            "s.yaml",
            rf"s\.yaml: not valid YAML {LOCATED}: cannot build this value \(not a valid bool\)",
            id="explicit-tag-on-text-it-cannot-read",
        ),
        pytest.param(
            "at: !!timestamp soon\n",
            "s.yaml",
            rf"s\.yaml: not valid YAML {LOCATED}: cannot build this value \(not a valid timestamp\)",
            id="explicit-timestamp-tag",
        ),
        pytest.param(
            "n: !!int _\n",
            "s.yaml",
            rf"s\.yaml: not valid YAML {LOCATED}: cannot build this value \(not a valid int\)",
            id="explicit-int-tag-on-underscore",
        ),
        pytest.param(
            "x: " + "1:" * 3000 + "1\n",
            "s.yaml",
            rf"s\.yaml: not valid YAML {LOCATED}: an integer of more than 4300 characters",
            id="base-60-integer-too-long",
        ),
        pytest.param(
            "x: " + "1" * 5000 + "\n",
            "s.yaml",
            rf"s\.yaml: not valid YAML {LOCATED}: an integer of more than 4300 characters",
            id="decimal-integer-too-long",
        ),
        pytest.param(
            "a: 1\n---\nb: 2\n",
            "s.yaml",
            r"s\.yaml: holds 2 YAML documents \(the second at line 2\); expected one",
            id="two-documents-where-one-expected",
        ),
        pytest.param(
            "[" * 65 + "]" * 65,
            "s.yaml",
            r"s\.yaml: nested too deeply \(more than 64 levels\) at line 1, column 65",
            id="yaml-65-levels",
        ),
        pytest.param(
            "[" * 100_000,
            "s.yaml",
            r"s\.yaml: nested too deeply \(more than 64 levels\) at line 1, column 65",
            id="yaml-100000-levels",
        ),
        pytest.param(
            "".join("  " * i + "a:\n" for i in range(70)),
            "s.yaml",
            r"s\.yaml: nested too deeply \(more than 64 levels\) at line 65, column 129",
            id="yaml-block-nesting",
        ),
        pytest.param(
            LAUGHS,
            "bomb.yaml",
            r"bomb\.yaml: YAML aliases expand to more than 10000 nodes at line 5, column 47",
            id="billion-laughs",
        ),
        pytest.param(
            "&a [*a]\n",
            "s.yaml",
            r"s\.yaml: the YAML alias \*a is inside the node it names at line 1, column 5",
            id="alias-inside-itself",
        ),
        pytest.param(
            "&a {x: {y: *a}}\n",
            "s.yaml",
            r"s\.yaml: the YAML alias \*a is inside the node it names at line 1, column 12",
            id="alias-inside-itself-deeper",
        ),
        pytest.param(
            "deep: &d " + "[" * 40 + "]" * 40 + "\nuse: " + "[" * 30 + "*d" + "]" * 30 + "\n",
            "s.yaml",
            r"s\.yaml: nested too deeply \(more than 64 levels\) at line 2, column 36",
            id="alias-nests-past-the-depth",
        ),
        pytest.param(
            '{"a": 1',
            "p.json",
            r"p\.json: not valid JSON at line 1, column 8: Expecting ',' delimiter",
            id="json-unclosed",
        ),
        pytest.param(
            "a: 1",
            "p.json",
            r"p\.json: not valid JSON at line 1, column 1: Expecting value",
            id="yaml-in-a-json-file",
        ),
        pytest.param(
            _too_deep_json(65),
            "p.json",
            r"p\.json: nested too deeply \(more than 64 levels\) at line 1, column 65",
            id="json-65-levels",
        ),
        pytest.param(
            "[" * 100_000,
            "p.json",
            r"p\.json: nested too deeply \(more than 64 levels\) at line 1, column 65",
            id="json-100000-levels",
        ),
        pytest.param(
            '{"a": "[[[[", "b": ' + _too_deep_json(70) + "}",
            "p.json",
            r"p\.json: nested too deeply \(more than 64 levels\) at line 1, column 83",
            id="json-brackets-in-strings-not-counted",
        ),
        pytest.param(
            "1" * 5000,
            "p.json",
            r"p\.json: not valid JSON: Exceeds the limit \(4300 digits\).*",
            id="json-integer-too-long",
        ),
    ],
)
def test_parse_failures(data: bytes | str, source: str, message: str) -> None:
    with pytest.raises(DocumentError) as info:
        parse_document(data, source)
    err = info.value
    assert re.fullmatch(message, str(err)), str(err)
    assert err.source == source
    located = re.search(r"line (\d+)(?:, column (\d+))?", str(err))
    if located is None:
        assert (err.line, err.column) == (None, None)
    else:
        column = None if located[2] is None else int(located[2])
        assert (err.line, err.column) == (int(located[1]), column)


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        pytest.param(
            "a" * 11,
            {"max_bytes": 10},
            "s.yaml: too large: 11 bytes, over the limit of 10 bytes (10 B)",
            id="text-over-max-bytes",
        ),
        pytest.param(
            b"a" * 2049,
            {"max_bytes": 2048},
            "s.yaml: too large: 2049 bytes, over the limit of 2048 bytes (2 KiB)",
            id="bytes-over-max-bytes",
        ),
        pytest.param(
            "[[[1]]]",
            {"max_depth": 2},
            "s.yaml: nested too deeply (more than 2 levels) at line 1, column 3",
            id="max-depth-is-a-setting",
        ),
        pytest.param(
            "a: &a [1, 2]\nb: [*a, *a]\n",
            {"max_alias_nodes": 5},
            "s.yaml: YAML aliases expand to more than 5 nodes at line 2, column 9",
            id="max-alias-nodes-is-a-setting",
        ),
        pytest.param(
            "{",
            {"syntax": "json"},
            "s.yaml: not valid JSON at line 1, column 2: "
            "Expecting property name enclosed in double quotes",
            id="json-asked-for",
        ),
    ],
)
def test_parse_limits(data: bytes | str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(DocumentError) as info:
        parse_document(data, "s.yaml", **kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("data", "source", "value"),
    [
        pytest.param("", "s.yaml", None, id="empty"),
        pytest.param("# nothing\n", "s.yaml", None, id="comment-only"),
        pytest.param(b"a: 1\n", "s.yaml", {"a": 1}, id="bytes"),
        pytest.param("\ufeffa: 1\n", "s.yaml", {"a": 1}, id="byte-order-mark"),
        pytest.param("---\na: 1\n...\n", "s.yaml", {"a": 1}, id="explicit-markers"),
        pytest.param("d: 2024-02-29\n", "s.yaml", {"d": dt.date(2024, 2, 29)}, id="date"),
        pytest.param('{"a": 1e3}', "s.yaml", {"a": "1e3"}, id="yaml-1.1-exponent-is-text"),
        pytest.param('{"a": 1e3}', "p.json", {"a": 1000.0}, id="json-exponent-is-a-number"),
        pytest.param('\ufeff{"a": 1}', "P.JSON", {"a": 1}, id="json-suffix-any-case-and-bom"),
        pytest.param(
            "base: &b {x: 1}\nother: {<<: *b, y: 2}\n",
            "s.yaml",
            {"base": {"x": 1}, "other": {"x": 1, "y": 2}},
            id="small-aliases-and-merge-keys",
        ),
    ],
)
def test_parse_successes(data: bytes | str, source: str, value: Any) -> None:
    assert parse_document(data, source) == value


@pytest.mark.parametrize("source", ["s.yaml", "p.json"])
def test_64_levels_are_read(source: str) -> None:
    parsed = parse_document(_too_deep_json(64), source)
    depth = 1
    while parsed:
        parsed, depth = parsed[0], depth + 1
    assert (parsed, depth) == ([], 64)


@pytest.mark.parametrize(
    ("data", "source", "docs"),
    [
        pytest.param("", "s.yaml", [], id="empty-stream"),
        pytest.param("a: 1\n---\nb: 2\n---\n", "s.yaml", [{"a": 1}, {"b": 2}, None], id="stream"),
        pytest.param(
            "kind: A\n---\nkind: B\n", "s.yaml", [{"kind": "A"}, {"kind": "B"}], id="manifests"
        ),
        pytest.param('{"a": 1}', "p.json", [{"a": 1}], id="json-is-one-document"),
    ],
)
def test_parse_documents(data: str, source: str, docs: list[Any]) -> None:
    assert parse_documents(data, source) == docs


def test_alias_bomb_fails_fast_and_small() -> None:
    assert len(LAUGHS.encode()) < 700
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(DocumentError, match="YAML aliases expand to more than 10000 nodes"):
        parse_document(LAUGHS, "bomb.yaml")
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 0.5
    assert peak < 2 * 1024**2


@pytest.mark.parametrize(
    "data",
    [
        pytest.param("[" * 100_000, id="yaml-flow"),
        pytest.param("- " * 100_000 + "x", id="yaml-block"),
        pytest.param("{a: " * 100_000, id="yaml-mappings"),
    ],
)
def test_deep_nesting_fails_fast(data: str) -> None:
    start = time.perf_counter()
    with pytest.raises(DocumentError, match=r"nested too deeply \(more than 64 levels\)"):
        parse_document(data, "s.yaml")
    assert time.perf_counter() - start < 1.0


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_document_error(data: bytes) -> None:
    try:
        parse_documents(data, "s.yaml")
    except DocumentError as exc:
        assert str(exc).startswith("s.yaml: ")
        assert len(str(exc)) < 400


_TAGS = ["", "!!int ", "!!float ", "!!bool ", "!!null ", "!!timestamp ", "!!binary ", "!!str "]
_TAGS += ["!!set ", "!!omap ", "!!pairs ", "!!map ", "!!seq ", "<<: ", "x: !!merge "]


@settings(max_examples=500)
@given(
    st.sampled_from(_TAGS),
    st.text(alphabet="[]{}:,-&*!|>?'\"\n #%@`ab01.\t\\_", max_size=80),
)
def test_any_yaml_like_text_parses_or_raises_document_error(tag: str, body: str) -> None:
    text = tag + body
    for source in ("s.yaml", "s.json"):
        try:
            parse_documents(text, source)
        except DocumentError as exc:
            assert str(exc).startswith(f"{source}: ")
