"""The data shipped with the planner (the pool catalog, storage tiers, the example
fleet), read with the one document loader like any file a person gives."""

from __future__ import annotations

from importlib import resources
from typing import Any

from documents import parse_document


def builtin_document(name: str, where: str) -> Any:
    """The shipped YAML file ``name``, decoded; ``where`` names it in any error."""
    return parse_document(resources.files(__name__).joinpath(name).read_text(), where)
