"""Reading the model catalog the planner sizes models with: the shipped one or a person's file.

The catalog's format, its lookup and the sizing rules are the core's (``placement.models``), shared
with the admission webhook; this is only the planner's way of reading the file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from documents import parse_document
from placement.models import BUILTIN_CATALOG, ModelCatalog, parse_model_catalog
from planner.inputs.files import load_input


def load_model_catalog(path: Path | None = None) -> ModelCatalog:
    """Read the model catalog YAML (the shipped one when ``path`` is ``None``); raises
    ``InputError`` (a ``DocumentError`` when the file cannot be read)."""
    if path is None:
        where = "built-in model catalog"
        text = resources.files("placement").joinpath(BUILTIN_CATALOG).read_text(encoding="utf-8")
        return parse_model_catalog(parse_document(text, where), where)
    return parse_model_catalog(load_input(path, "model catalog"), str(path))
