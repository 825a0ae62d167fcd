"""The device plugin's rule: what one order of the list gives, and every answer under any order.

Named cases pin go-gpuallocator's best-effort policy on small layouts; hypothesis holds the
invariants (a subset of the available GPUs of the right size, always among the possible
allocations, one island on an NVSwitch node) and, for small nodes, compares
``possible_allocations`` with the rule run over every permutation of the list.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from placement.deviceplugin import (
    always_one_island,
    bits,
    mask_of,
    pair_scores,
    possible_allocations,
    predicted_allocation,
    preferred_allocation,
)
from placement.shape import NvLink

PAIRS = NvLink.of(((0, 1), (2, 3), (4, 5), (6, 7)), 8)
QUADS = NvLink.of(((0, 1, 2, 3), (4, 5, 6, 7)), 8)
NVSWITCH = NvLink.all(8)
NONE = NvLink.none(8)

PREFERRED = {
    # name: layout, available in list order, size, expected set (list order)
    "one-gpu-takes-the-first-in-the-list": (PAIRS, (5, 2, 7), 1, (5,)),
    "a-pair-node-keeps-pairs-whole": (PAIRS, (6, 0, 3, 1, 2, 7), 2, (6, 7)),
    "a-broken-pair-is-left-for-last": (PAIRS, (0, 2, 3, 4, 5), 2, (2, 3)),
    "two-gpus-across-a-broken-pair-node": (PAIRS, (0, 2, 4, 6), 2, (0, 2)),
    "four-of-eight-on-quads-take-one-quad": (QUADS, (4, 0, 5, 1, 6, 2, 7, 3), 4, (4, 5, 6, 7)),
    "three-of-quads-with-one-gone": (QUADS, (0, 1, 2, 4, 5, 6, 7), 3, (0, 1, 2)),
    "nvswitch-takes-the-first-partition-set": (NVSWITCH, (3, 1, 0, 2), 2, (3, 1)),
    "all-of-them": (NONE, (2, 0, 1), 3, (2, 0, 1)),
    "more-than-there-are": (NONE, (0, 1), 3, ()),
    "none-asked": (NONE, (0, 1), 0, ()),
}


@pytest.mark.parametrize("case", list(PREFERRED), ids=list(PREFERRED))
def test_preferred_allocation(case: str) -> None:
    layout, available, size, expected = PREFERRED[case]
    assert preferred_allocation(available, size, pair_scores(layout)) == expected


POSSIBLE = {
    # name: layout, available GPUs, size, every set the rule may give
    "pairs-whole": (PAIRS, range(8), 2, [{0, 1}, {2, 3}, {4, 5}, {6, 7}]),
    "pairs-one-broken": (PAIRS, (0, 2, 3, 4, 5, 6, 7), 2, [{2, 3}, {4, 5}, {6, 7}]),
    "pairs-all-broken": (
        PAIRS,
        (0, 2, 4, 6),
        2,
        [{a, b} for a, b in itertools.combinations((0, 2, 4, 6), 2)],
    ),
    "quads-four": (QUADS, range(8), 4, [{0, 1, 2, 3}, {4, 5, 6, 7}]),
    "quads-three-then-five-left": (QUADS, (0, 4, 5, 6, 7), 4, [{4, 5, 6, 7}]),
    "one-gpu-any": (PAIRS, (1, 4), 1, [{1}, {4}]),
}


@pytest.mark.parametrize("case", list(POSSIBLE), ids=list(POSSIBLE))
def test_possible_allocations(case: str) -> None:
    layout, available, size, expected = POSSIBLE[case]
    got = possible_allocations(mask_of(list(available)), size, layout)
    assert got == frozenset(frozenset(s) for s in expected)


ONE_ISLAND = {
    # name: layout, available GPUs, size, GPU counts promised to waiting pods, expected
    "nvswitch-always": (NVSWITCH, (0, 3, 5), 3, (), True),
    "pairs-whole": (PAIRS, range(8), 2, (), True),
    "pairs-with-a-broken-pair-still-safe": (PAIRS, (0, 2, 3, 4, 5, 6, 7), 2, (), True),
    "pairs-all-broken": (PAIRS, (0, 2, 4, 6), 2, (), False),
    "quads-with-a-waiting-quad": (QUADS, range(8), 4, (4,), True),
    "quads-with-one-waiting-single-gpu": (QUADS, range(8), 4, (1,), True),
    "quads-broken-by-two-waiting-single-gpus": (QUADS, range(8), 4, (1, 1), False),
    "quads-broken-by-a-waiting-pod-of-three": (QUADS, (0, 1, 2, 4, 5, 6, 7), 4, (3,), False),
    "pairs-with-four-waiting-single-gpus": (PAIRS, range(8), 2, (1, 1, 1, 1), False),
}


@pytest.mark.parametrize("case", list(ONE_ISLAND), ids=list(ONE_ISLAND))
def test_always_one_island(case: str) -> None:
    layout, available, size, pending, expected = ONE_ISLAND[case]
    assert always_one_island(mask_of(list(available)), size, layout, pending) is expected


@st.composite
def layouts(draw: st.DrawFn, most: int = 8) -> NvLink:
    """A node of 1..``most`` GPUs: NVSwitch, none, or random islands."""
    n = draw(st.integers(1, most))
    kind = draw(st.sampled_from(["all", "none", "islands", "islands"]))
    if kind == "all":
        return NvLink.all(n)
    if kind == "none":
        return NvLink.none(n)
    order = draw(st.permutations(range(n)))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, n - 1)), max_size=n)))
    parts = [order[a:b] for a, b in itertools.pairwise([0, *cuts, n]) if order[a:b]]
    return NvLink.of(tuple(tuple(p) for p in parts), n)


@st.composite
def questions(draw: st.DrawFn, most: int = 8) -> tuple[NvLink, list[int], int]:
    """A layout, its available GPUs in some order, and a size."""
    layout = draw(layouts(most))
    n = sum(len(i) for i in layout.islands)
    available = draw(st.lists(st.integers(0, n - 1), unique=True, min_size=1))
    size = draw(st.integers(1, len(available) + 1))
    return layout, available, size


@settings(deadline=None, max_examples=300)
@given(question=questions())
def test_the_answer_is_possible_and_fits_the_request(
    question: tuple[NvLink, list[int], int],
) -> None:
    layout, available, size = question
    got = preferred_allocation(available, size, pair_scores(layout))
    possible = possible_allocations(mask_of(available), size, layout)
    if size > len(available):
        assert got == () and possible == frozenset()
        return
    assert len(got) == len(set(got)) == size
    assert set(got) <= set(available)
    assert frozenset(got) in possible
    assert predicted_allocation(mask_of(available), size, layout) in possible
    assert all(len(s) == size and s <= set(available) for s in possible)


@settings(deadline=None, max_examples=150)
@given(question=questions(most=6))
def test_possible_allocations_is_the_rule_under_every_order(
    question: tuple[NvLink, list[int], int],
) -> None:
    layout, available, size = question
    score = pair_scores(layout)
    every = {
        frozenset(preferred_allocation(order, size, score))
        for order in itertools.permutations(available)
    } - {frozenset()}
    assert possible_allocations(mask_of(available), size, layout) == every


@settings(deadline=None, max_examples=100)
@given(n=st.integers(1, 8), data=st.data())
def test_an_nvswitch_node_gives_one_island_whatever_it_gives(n: int, data: st.DataObject) -> None:
    layout = NvLink.all(n)
    available = data.draw(st.lists(st.integers(0, n - 1), unique=True, min_size=1))
    size = data.draw(st.integers(1, len(available)))
    possible = possible_allocations(mask_of(available), size, layout)
    assert possible == frozenset(frozenset(c) for c in itertools.combinations(available, size))
    assert all(s <= set(layout.islands[0]) for s in possible)
    assert always_one_island(mask_of(available), size, layout, (1, 2))


def test_bits_and_masks_agree() -> None:
    assert bits(mask_of([5, 0, 3])) == [0, 3, 5]
    assert mask_of([]) == 0 and bits(0) == []


def test_a_node_beyond_the_exact_search_stays_on_the_safe_side() -> None:
    pairs = NvLink.of(tuple((2 * i, 2 * i + 1) for i in range(32)), 64)
    every = mask_of(list(range(64)))
    assert not always_one_island(every, 2, pairs)  # not searched: no promise
    assert always_one_island(every, 2, NvLink.all(64))
    assert always_one_island(mask_of([6, 7]), 2, pairs)  # one island holds all there is
    assert predicted_allocation(every, 3, pairs) == frozenset({0, 1, 2})
    assert preferred_allocation(list(range(63, -1, -1)), 3, pair_scores(NvLink.all(64))) == (
        63,
        62,
        61,
    )
