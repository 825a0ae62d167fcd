"""Decoding a document already in hand: YAML (safe) or JSON, within bounds (pure).

YAML is read in two passes. The first walks the parser's events, which hold the nesting and
every alias without building anything: it refuses nesting deeper than ``max_depth`` (before the
recursive composer could meet it), an alias inside the node it names (a structure that contains
itself, which any walk over it would follow forever), and aliases that together stand for more
than ``max_alias_nodes`` nodes (a "billion laughs" bomb is a few hundred bytes of aliases of
aliases). Only a stream that passes is built, by the safe loader. JSON goes to ``json``, which
is faster and reads numbers as JSON means them (YAML 1.1 reads ``1e3`` as a string).
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from documents.limits import (
    DEFAULT_MAX_ALIAS_NODES,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DEPTH,
    Syntax,
    line_column,
    too_large,
)
from placement.fields import DocumentError

_MESSAGE_CAP = 160
_MAX_INT_TEXT = 4300
"""Longest integer literal built (Python's own limit for decimal text; YAML 1.1's base-60
integers such as ``1:30:00`` take quadratic time to build when long)."""

_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """The safe loader (libyaml's when installed), with a value that fails to build (a date
    that does not exist, an integer too long) reported as a YAML error at its place."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if (
            isinstance(node, yaml.ScalarNode)
            and node.tag == "tag:yaml.org,2002:int"
            and len(node.value) > _MAX_INT_TEXT
        ):
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of more than {_MAX_INT_TEXT} characters", node.start_mark
            )
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            detail = str(exc)
        except (TypeError, LookupError, AttributeError):
            # An explicit tag forces its constructor onto any text: ``!!bool x`` is a KeyError
            # in PyYAML, ``!!timestamp x`` an AttributeError.
            detail = f"not a valid {node.tag.rsplit(':', 1)[-1]}"
        raise yaml.constructor.ConstructorError(
            None, None, f"cannot build this value ({detail})", node.start_mark
        )


def parse_document(
    data: bytes | str,
    source: str,
    *,
    syntax: Syntax = "auto",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_alias_nodes: int = DEFAULT_MAX_ALIAS_NODES,
) -> Any:
    """The one document in ``data`` (``None`` when empty); ``source`` names it in errors.

    A stream of several documents is an error (``parse_documents`` reads those). ``data`` as
    bytes must be UTF-8; ``max_bytes`` bounds its length (in characters for ``str``). Raises
    ``DocumentError``.
    """
    docs = _parse(
        data,
        source,
        syntax=syntax,
        max_bytes=max_bytes,
        max_depth=max_depth,
        max_alias_nodes=max_alias_nodes,
    )
    if len(docs) > 1:
        _, line = docs[1]
        raise DocumentError(
            source,
            f"holds {len(docs)} YAML documents (the second at line {line}); expected one",
            line=line,
        )
    return docs[0][0] if docs else None


def parse_documents(
    data: bytes | str,
    source: str,
    *,
    syntax: Syntax = "auto",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_alias_nodes: int = DEFAULT_MAX_ALIAS_NODES,
) -> list[Any]:
    """Every document of a ``---`` stream in ``data``, in order (empty documents as ``None``;
    an empty stream is ``[]``; JSON is one document). Raises ``DocumentError``."""
    docs = _parse(
        data,
        source,
        syntax=syntax,
        max_bytes=max_bytes,
        max_depth=max_depth,
        max_alias_nodes=max_alias_nodes,
    )
    return [doc for doc, _ in docs]


def _parse(
    data: bytes | str,
    source: str,
    *,
    syntax: Syntax,
    max_bytes: int,
    max_depth: int,
    max_alias_nodes: int,
) -> list[tuple[Any, int]]:
    """The documents with the line each starts on."""
    if len(data) > max_bytes:
        raise DocumentError(source, too_large(max_bytes, len(data)))
    text = _decode(data, source)
    if syntax == "json" or (syntax == "auto" and source.lower().endswith(".json")):
        return [(_json(text, source, max_depth), 1)]
    try:
        lines = _check_events(text, source, max_depth, max_alias_nodes, _Loader)
    except _LibyamlDepthError:
        # libyaml looks ahead up to 1,024 characters and stops at 1,000 levels there; the pure
        # parser, which has no such limit, finds the level that passes ``max_depth`` itself.
        lines = _check_events(text, source, max_depth, max_alias_nodes, yaml.SafeLoader)
    try:
        docs = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, source) from None
    return list(zip(docs, lines, strict=True))


def _decode(data: bytes | str, source: str) -> str:
    if isinstance(data, str):
        text = data
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
            raise DocumentError(
                source,
                f"not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line}, column {column}",
                line=line,
                column=column,
            ) from None
    return text.removeprefix("\ufeff")


def _cap(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_CAP else text[:_MESSAGE_CAP] + "…"


def _yaml_error(exc: yaml.YAMLError, text: str, source: str) -> DocumentError:
    """One message for a YAML error: where (1-based), what, and while doing what."""
    if isinstance(exc, yaml.reader.ReaderError):
        line, column = line_column(text, min(exc.position, len(text)))
        char = exc.character if isinstance(exc.character, int) else None
        what = f"character #x{char:04x} is not allowed" if char is not None else exc.reason
        return DocumentError(
            source,
            f"not valid YAML at line {line}, column {column}: {_cap(str(what))}",
            line=line,
            column=column,
        )
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        line, column = exc.problem_mark.line + 1, exc.problem_mark.column + 1
        what = _cap(exc.problem or "unreadable")
        if exc.context:
            what += f" ({_cap(exc.context)}"
            cm = exc.context_mark
            if cm is not None and (cm.line, cm.column) != (line - 1, column - 1):
                what += f" at line {cm.line + 1}, column {cm.column + 1}"
            what += ")"
        return DocumentError(
            source,
            f"not valid YAML at line {line}, column {column}: {what}",
            line=line,
            column=column,
        )
    return DocumentError(source, f"not valid YAML: {_cap(str(exc))}")


def _refuse(source: str, what: str, mark: Any) -> DocumentError:
    line, column = mark.line + 1, mark.column + 1
    return DocumentError(
        source, f"{what} at line {line}, column {column}", line=line, column=column
    )


class _LibyamlDepthError(Exception):
    """libyaml's own nesting limit, met while looking ahead."""


class _EventWalk:
    """The state of one walk over YAML events (see :func:`_check_events`).

    A frame per open collection holds its anchor, the nodes it stands for so far (aliases
    counted at the size of what they name) and its height; a closed anchored node's size and
    height are remembered for its aliases.
    """

    def __init__(self, source: str, max_depth: int, max_alias_nodes: int) -> None:
        self.source = source
        self.max_depth = max_depth
        self.max_alias_nodes = max_alias_nodes
        self.too_deep = f"nested too deeply (more than {max_depth} levels)"
        self.stack: list[list[Any]] = []  # [anchor, nodes, height]
        self.anchors: dict[str, tuple[int, int]] = {}
        self.aliased = 0
        self.starts: list[int] = []

    def document_start(self, event: yaml.DocumentStartEvent) -> None:
        mark = event.start_mark
        self.starts.append(mark.line + 1 if mark is not None else 1)
        self.anchors = {}

    def collection_start(self, event: yaml.CollectionStartEvent) -> None:
        if len(self.stack) >= self.max_depth:
            raise _refuse(self.source, self.too_deep, event.start_mark)
        self.stack.append([event.anchor, 0, 0])

    def alias(self, event: yaml.AliasEvent) -> tuple[int, int]:
        """The size and height an alias stands for; refuses what would expand too far."""
        name = event.anchor or ""
        if any(frame[0] == name for frame in self.stack):
            raise _refuse(
                self.source,
                f"the YAML alias *{_cap(name)} is inside the node it names",
                event.start_mark,
            )
        nodes, height = self.anchors.get(name, (1, 0))
        self.aliased += nodes
        if self.aliased > self.max_alias_nodes:
            raise _refuse(
                self.source,
                f"YAML aliases expand to more than {self.max_alias_nodes} nodes",
                event.start_mark,
            )
        if len(self.stack) + height > self.max_depth:
            raise _refuse(self.source, self.too_deep, event.start_mark)
        return nodes, height

    def node_end(self, anchor: str | None, nodes: int, height: int) -> None:
        """A node closed (scalar, alias or collection): count it in its parent."""
        if anchor is not None:
            self.anchors[anchor] = (nodes, height)
        if self.stack:
            self.stack[-1][1] += nodes
            self.stack[-1][2] = max(self.stack[-1][2], height)

    def step(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.DocumentStartEvent):
            self.document_start(event)
        elif isinstance(event, yaml.CollectionStartEvent):
            self.collection_start(event)
        elif isinstance(event, yaml.ScalarEvent):
            self.node_end(event.anchor, 1, 0)
        elif isinstance(event, yaml.AliasEvent):
            self.node_end(None, *self.alias(event))
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, nodes, height = self.stack.pop()
            self.node_end(anchor, nodes + 1, height + 1)


def _check_events(
    text: str, source: str, max_depth: int, max_alias_nodes: int, loader: type[yaml.SafeLoader]
) -> list[int]:
    """Walk the YAML events: refuse deep nesting and unbounded or self-containing aliases.

    Returns the line each document starts on.
    """
    walk = _EventWalk(source, max_depth, max_alias_nodes)
    try:
        for event in yaml.parse(text, Loader=loader):
            walk.step(event)
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(getattr(exc, "problem", "")):
            raise _LibyamlDepthError from None
        raise _yaml_error(exc, text, source) from None
    return walk.starts


def _json(text: str, source: str, max_depth: int) -> Any:
    too_deep = f"nested too deeply (more than {max_depth} levels)"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(
            source,
            f"not valid JSON at line {exc.lineno}, column {exc.colno}: {_cap(exc.msg)}",
            line=exc.lineno,
            column=exc.colno,
        ) from None
    except RecursionError:
        value = None
        depth_ok = False
    except ValueError as exc:  # a number too long to convert
        raise DocumentError(source, f"not valid JSON: {_cap(str(exc))}") from None
    else:
        depth_ok = _depth_within(value, max_depth)
    if not depth_ok:
        where = _json_too_deep_at(text, max_depth)
        if where is None:
            raise DocumentError(source, too_deep)
        line, column = where
        raise DocumentError(
            source, f"{too_deep} at line {line}, column {column}", line=line, column=column
        )
    return value


def _depth_within(value: Any, max_depth: int) -> bool:
    """Whether lists and mappings in ``value`` nest at most ``max_depth`` deep (iterative)."""
    todo: list[tuple[Any, int]] = [(value, 0)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict | list):
            if depth >= max_depth:
                return False
            children = item.values() if isinstance(item, dict) else item
            todo.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return True


def _json_too_deep_at(text: str, max_depth: int) -> tuple[int, int] | None:
    """Line and column of the bracket that opens level ``max_depth + 1``, strings skipped."""
    depth = 0
    for m in _JSON_TOKEN.finditer(text):
        token = m.group()
        if token in "[{":
            depth += 1
            if depth > max_depth:
                return line_column(text, m.start())
        elif token in "]}":
            depth -= 1
    return None
