"""The pure parts of publishing: the status patch and the retry schedule."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodeagent.publish import lease_path, object_path, status_patch
from nodeagent.retry import Backoff
from placement.nodegpustate import StatusJSON


def test_status_patch_clears_what_the_new_status_leaves_out() -> None:
    status: StatusJSON = {
        "observedAt": "2025-01-01T00:00:00.000000Z",
        "nvmlAvailable": True,
        "gpus": [],
    }
    patch = status_patch(status)["status"]
    assert patch["error"] is None and patch["driverVersion"] is None  # a cleared error goes away
    assert patch["gpus"] == [] and patch["nvmlAvailable"] is True


def test_paths() -> None:
    assert object_path("n1") == "/apis/vramfit.io/v1alpha1/nodegpustates/n1"
    assert lease_path("vramfit-system", "n1").endswith(
        "/namespaces/vramfit-system/leases/vramfit-agent-n1"
    )


@given(seed=st.integers(0, 2**32), failures=st.integers(1, 40))
def test_backoff_grows_with_jitter_within_bounds(seed: int, failures: int) -> None:
    b = Backoff(0.5, 7.0, random.Random(seed))
    delays = [b.next_delay() for _ in range(failures)]
    for n, d in enumerate(delays):
        ceiling = min(7.0, 0.5 * 2**n)
        assert ceiling / 2 <= d <= ceiling
    b.reset()
    assert b.next_delay() <= 0.5


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="need 0 < base"):
        Backoff(0, 1)
