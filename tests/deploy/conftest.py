"""The ``helm`` fixture: the pinned helm, built by ``make binaries`` (``controlplane.helm``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.binaries import BinariesError
from controlplane.helm import locate


@pytest.fixture(scope="session")
def helm() -> Path:
    """helm, or a failure that says how to get it (never a skip, as for the control plane)."""
    try:
        return locate()
    except BinariesError as exc:
        pytest.fail(f"helm unavailable: {exc}", pytrace=False)
