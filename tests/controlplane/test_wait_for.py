"""``wait_for``: the answer it returns, what it waits through, and what a timeout says."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from kubernetes.client import ApiException

from controlplane.pytest_plugin import not_found, wait_for

GONE = ApiException(status=404, reason="Not Found")
BROKEN = ApiException(status=500, reason="Internal Server Error")


def probe(*answers: object) -> Callable[[], object]:
    """A probe that gives ``answers`` in turn (raising the exceptions), then the last forever."""
    left = list(answers)

    def answer() -> object:
        now = left.pop(0) if len(left) > 1 else left[0]
        if isinstance(now, Exception):
            raise now
        return now

    return answer


@pytest.mark.parametrize(
    ("answers", "retry_on", "returned"),
    [
        pytest.param(("ready",), None, "ready", id="at-once"),
        pytest.param((None, 0, [], "", {"a": 1}), None, {"a": 1}, id="first-true-answer"),
        pytest.param((GONE, GONE, "made"), not_found, "made", id="not-found-is-not-yet"),
    ],
)
def test_returns_the_first_true_answer(
    answers: tuple[object, ...], retry_on: Callable[[Exception], bool] | None, returned: object
) -> None:
    assert wait_for("it", probe(*answers), 1.0, interval=0.001, retry_on=retry_on) == returned


@pytest.mark.parametrize(
    ("answers", "retry_on", "error", "message"),
    [
        pytest.param((0,), None, AssertionError, "waiting for it (last answer: 0)", id="timeout"),
        pytest.param(
            (None, GONE),
            not_found,
            AssertionError,
            "waiting for it (last error: ApiException: (404) Reason: Not Found)",
            id="timeout-names-the-last-error",
        ),
        pytest.param((GONE,), None, ApiException, "(404)", id="an-error-ends-the-wait"),
        pytest.param((None, BROKEN), not_found, ApiException, "(500)", id="only-404-is-not-yet"),
    ],
)
def test_fails_with_the_last_answer(
    answers: tuple[object, ...],
    retry_on: Callable[[Exception], bool] | None,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        wait_for("it", probe(*answers), 0.05, interval=0.001, retry_on=retry_on)
