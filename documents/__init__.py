"""The one loader of YAML and JSON documents, with one clear message for each way a file fails.

Every component reads hand-written or generated files: scenarios, pool catalogs, node specs,
KServe manifests, plans. ``load_document`` reads one file (at most ``max_bytes``) and
``parse_document`` decodes text already in hand (pure); the ``*_documents`` forms read ``---``
streams. Each refuses, with a ``DocumentError`` naming the source, what a hostile or broken file
could do to a reader: missing, unreadable, not UTF-8, not YAML or JSON (with line and column),
too large, nested too deeply, or YAML aliases that expand too far or into themselves.
"""

from documents.limits import (
    DEFAULT_MAX_ALIAS_NODES,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DEPTH,
    Syntax,
)
from documents.load import load_document, load_documents, read_bounded
from documents.parse import parse_document, parse_documents
from placement.fields import DocumentError

__all__ = [
    "DEFAULT_MAX_ALIAS_NODES",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "DocumentError",
    "Syntax",
    "load_document",
    "load_documents",
    "parse_document",
    "parse_documents",
    "read_bounded",
]
