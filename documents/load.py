"""Reading a document file: the thin I/O shell around ``parse``, bounded in what it reads.

A file is opened without blocking (a FIFO with no writer does not hang the reader), checked to
be a regular file or a stream, and read to at most ``max_bytes + 1`` bytes, so ``/dev/zero`` or
a 10 GB file costs no more than the limit. Each way a read fails gets one message.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path
from typing import Any

from documents.limits import (
    DEFAULT_MAX_ALIAS_NODES,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DEPTH,
    Syntax,
    too_large,
)
from documents.parse import parse_document, parse_documents
from placement.fields import DocumentError

_CHUNK = 1024**2


def read_bounded(path: Path | str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of the file at ``path``; ``DocumentError`` when it is missing, unreadable, a
    folder, or larger than ``max_bytes`` (reading at most ``max_bytes + 1`` bytes)."""
    source = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise DocumentError(source, _os_message(exc)) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise DocumentError(source, "is a folder, not a file")
        if stat.S_ISREG(info.st_mode) and info.st_size > max_bytes:
            raise DocumentError(source, too_large(max_bytes, info.st_size))
        # Blocking again for the read itself: a pipe with a writer is read to its end.
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:
            chunk = os.read(fd, min(_CHUNK, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise DocumentError(source, _os_message(exc)) from None
    finally:
        os.close(fd)
    if size > max_bytes:
        raise DocumentError(source, too_large(max_bytes))
    return b"".join(chunks)


def _os_message(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "file not found"
    if exc.errno == errno.EISDIR:
        return "is a folder, not a file"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "cannot read: permission denied"
    return f"cannot read: {exc.strerror or type(exc).__name__}"


def load_document(
    path: Path | str,
    *,
    syntax: Syntax = "auto",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_alias_nodes: int = DEFAULT_MAX_ALIAS_NODES,
) -> Any:
    """The one YAML or JSON document in the file at ``path`` (``None`` when empty).

    ``syntax="auto"`` reads a ``.json`` file as JSON, any other as YAML. Raises
    ``DocumentError`` naming the file, with one clear message for each failure.
    """
    data = read_bounded(path, max_bytes=max_bytes)
    return parse_document(
        data,
        str(path),
        syntax=syntax,
        max_bytes=max_bytes,
        max_depth=max_depth,
        max_alias_nodes=max_alias_nodes,
    )


def load_documents(
    path: Path | str,
    *,
    syntax: Syntax = "auto",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_alias_nodes: int = DEFAULT_MAX_ALIAS_NODES,
) -> list[Any]:
    """Every document of the ``---`` stream in the file at ``path`` (see ``load_document``)."""
    data = read_bounded(path, max_bytes=max_bytes)
    return parse_documents(
        data,
        str(path),
        syntax=syntax,
        max_bytes=max_bytes,
        max_depth=max_depth,
        max_alias_nodes=max_alias_nodes,
    )
