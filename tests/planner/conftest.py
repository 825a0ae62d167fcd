"""Shared helpers of the planner tests: fixture paths and a ready catalog, models and traffic."""

from __future__ import annotations

from pathlib import Path

import pytest

from placement.models import ModelCatalog
from planner.inputs.catalog import Catalog, load_catalog
from planner.inputs.models import load_model_catalog
from planner.inputs.traffic import Traffic, load_traffic

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The shipped node-pool catalog."""
    return load_catalog()


@pytest.fixture(scope="session")
def models() -> ModelCatalog:
    """The shipped model catalog."""
    return load_model_catalog()


@pytest.fixture(scope="session")
def traffic() -> Traffic:
    """Shipped storage tiers, no profiles."""
    return load_traffic(None)
