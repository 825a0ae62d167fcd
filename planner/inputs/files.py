"""Reading an input file a person names on the command line, with the one document loader.

A message about such a file says what the file was for ("pool catalog pools.yaml: file not
found"), so a run given several files points at the right one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from documents import load_document
from placement.fields import DocumentError


def load_input(path: Path, what: str) -> Any:
    """The YAML or JSON document at ``path``; a ``DocumentError`` names it as ``what path``."""
    try:
        return load_document(path)
    except DocumentError as exc:
        raise DocumentError(
            f"{what} {exc.source}", exc.detail, line=exc.line, column=exc.column
        ) from None
