"""The prioritize reply written without a dictionary per node is byte for byte what orjson
writes for the list of ``HostPriority`` objects, whatever the names and scores."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from extender.wire import encode_priorities


def plain(names: list[str], scores: list[int]) -> bytes:
    return orjson.dumps([{"Host": n, "Score": s} for n, s in zip(names, scores, strict=True)])


CASES: dict[str, tuple[list[str], list[int]]] = {
    "empty": ([], []),
    "one": (["gpu-node-1"], [7]),
    "node-names": (["a100-00003", "h100.zone-b.example", "x"], [0, 10, 5]),
    "quote-needs-escaping": (['we"ird', "ok"], [1, 2]),
    "backslash-needs-escaping": (["back\\slash"], [3]),
    "control-character": (["tab\there"], [4]),
    "non-ascii-is-written-as-is": (["nœud-é"], [9]),
    "score-outside-0-10-takes-the-plain-path": (["a", "b"], [11, -1]),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_named_cases(case: str) -> None:
    names, scores = CASES[case]
    assert encode_priorities(names, scores) == plain(names, scores)


def test_names_and_scores_must_pair_up() -> None:
    with pytest.raises(ValueError, match="2 names but 1 scores"):
        encode_priorities(["a", "b"], [1])


@given(
    st.lists(st.tuples(st.text(), st.integers(-2, 12)), max_size=30)
    | st.lists(st.tuples(st.from_regex(r"[a-z0-9.-]{1,20}", fullmatch=True), st.integers(0, 10)))
)
def test_same_bytes_as_orjson(pairs: list[tuple[str, int]]) -> None:
    names = [n for n, _ in pairs]
    scores = [s for _, s in pairs]
    assert encode_priorities(names, scores) == plain(names, scores)
