"""The bounds every document is read within, stated once, and how they read in messages."""

from __future__ import annotations

from typing import Literal

DEFAULT_MAX_BYTES = 16 * 1024**2
"""Largest document read: far above any scenario, catalog or manifest folder file."""

DEFAULT_MAX_DEPTH = 64
"""Deepest nesting of mappings and lists (Kubernetes objects nest about 15 deep)."""

DEFAULT_MAX_ALIAS_NODES = 10_000
"""Nodes YAML aliases may add to a stream, counting each alias as the nodes it stands for: room
for anchors that share a block of settings, none for an alias bomb."""

Syntax = Literal["auto", "yaml", "json"]
"""How to decode: ``auto`` is JSON for a source ending in ``.json``, YAML otherwise."""


def format_size(n: int) -> str:
    """``n`` bytes in the largest binary unit that divides it evenly ("16 MiB", "1500 B")."""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} B"


def too_large(max_bytes: int, size: int | None = None) -> str:
    """The message for a document over ``max_bytes`` (``size``: its size, when known)."""
    limit = f"the limit of {max_bytes} bytes ({format_size(max_bytes)})"
    return (
        f"too large: {size} bytes, over {limit}" if size is not None else f"too large: over {limit}"
    )


def line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of character ``offset`` in ``text``."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1
