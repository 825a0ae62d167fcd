"""Processor sharing on a node's load link: exact completion times as transfers come and go."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
import simpy

from simulator.bandwidth import SharedLink, Transfer

GIB = 1024**3


def run(starts: list[tuple[float, float]], cancel: tuple[int, float] | None = None) -> list[float]:
    """Start transfers of (at, GiB) on a 1 GiB/s link; the time each one finishes."""
    env = simpy.Environment()
    link = SharedLink(env, 1.0 * GIB)
    done: list[float] = [float("nan")] * len(starts)
    transfers: list[Transfer] = []

    def begin(i: int, size: float) -> None:
        def finished() -> None:
            done[i] = float(env.now)

        transfers.append(link.start(size * GIB, finished))

    def at(when: float, action: Callable[[], None]) -> None:
        env.timeout(when).callbacks.append(lambda _e: action())

    for i, (when, size) in enumerate(starts):
        at(when, functools.partial(begin, i, size))
    if cancel is not None:
        k, when = cancel
        at(when, lambda: link.cancel(transfers[k]))
    env.run()
    return done


@pytest.mark.parametrize(
    ("starts", "cancel", "expected"),
    [
        pytest.param([(0, 8)], None, [8.0], id="alone"),
        pytest.param([(0, 8), (0, 8)], None, [16.0, 16.0], id="two-together"),
        # 4 GiB alone, then 4 GiB at half speed (8 s), then the second's last 4 GiB alone.
        pytest.param([(0, 8), (4, 8)], None, [12.0, 16.0], id="second-joins"),
        # At 6 the first has 3 GiB left, the second 7; three at 1/3 GiB/s until the 1 GiB one
        # ends at 9 (first 2 left, second 6), then 0.5 each: first done at 13, second alone
        # with 4 left: 17.
        pytest.param([(0, 8), (4, 8), (6, 1)], None, [13.0, 17.0, 9.0], id="three-way"),
        pytest.param([(0, 8), (0, 8)], (1, 4.0), [10.0, float("nan")], id="cancel-speeds-up"),
        pytest.param([(0, 0)], None, [0.0], id="empty"),
    ],
)
def test_completion_times(
    starts: list[tuple[float, float]],
    cancel: tuple[int, float] | None,
    expected: list[float],
) -> None:
    assert run(starts, cancel) == pytest.approx(expected, nan_ok=True)


def test_moved_counts_bytes_since_the_last_change() -> None:
    env = simpy.Environment()
    link = SharedLink(env, 2.0 * GIB)
    t = link.start(8.0 * GIB, lambda: None)
    env.run(until=1.5)
    assert link.moved(t) == 3.0 * GIB
    link.start(8.0 * GIB, lambda: None)
    env.run(until=2.5)
    assert link.moved(t) == 4.0 * GIB


def test_bandwidth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="above zero"):
        SharedLink(simpy.Environment(), 0.0)
