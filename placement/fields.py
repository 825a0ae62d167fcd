"""One reader for structured input: typed, path-aware, and collecting every problem at once.

Scenarios, catalogs, node specs, InferenceService manifests and NodeGPUState reports are all raw
mappings decoded from YAML or JSON. A person fixing one wants every mistake in one run, each
naming its field (``services[3].traffic.duration: ...``), so ``Fields`` never raises while
reading: each bad value becomes a ``Problem`` and the reading method returns its default. The
caller ends with ``raise_if_problems(source)``, which raises ``InputError`` listing them all.

Unknown fields follow a policy chosen per reader: ``"problem"`` (a hand-written scenario: a typo
is an error), ``"note"`` (a real KServe manifest: a field vramfit does not read is recorded in
``notes`` with its full path and reading goes on), or ``"ignore"``.

Values a caller controls never make a message unbounded: every value and key quoted in a message
goes through ``quote``, which caps it. Pure: no I/O.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

MAX_QUOTE = 80
"""Characters of a caller-controlled value quoted in a message, before the ``…``."""

Unknown = Literal["problem", "note", "ignore"]
"""What a reader does with a field it does not know."""

_D = TypeVar("_D")

_repr = reprlib.Repr()
_repr.maxlevel = 2
_repr.maxstring = MAX_QUOTE + 2
_repr.maxother = MAX_QUOTE
_repr.maxlong = MAX_QUOTE
_repr.maxdict = 4
_repr.maxlist = 6
_repr.maxtuple = 6
_repr.maxset = 6


def quote(value: object, limit: int = MAX_QUOTE) -> str:
    """``repr(value)`` capped at ``limit`` characters plus ``…`` (pure).

    Bounded in time and size whatever ``value`` is: long strings, deep or wide containers and
    integers with thousands of digits all give a short text.
    """
    try:
        text = repr(value[: limit + 1]) if isinstance(value, str) else _repr.repr(value)
    except (ValueError, RecursionError):  # an int past the digit limit of int -> str
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "…"


MAX_REASON = 300
"""Longest reason a decision gives for one node, on one line."""


def reason_line(text: str, limit: int = MAX_REASON) -> str:
    """``text`` as one line of at most ``limit`` characters, ``…`` where cut (pure).

    Reasons quote what pod authors and node reports wrote (an annotation's value, a product
    list, a report's decode errors, a line each); a scheduler repeats a reason per node, so
    none may grow with what a caller wrote. Bounded in time whatever ``text`` is.
    """
    head = text[: 4 * limit]  # whitespace runs collapse: read a little more than needed
    line = " ".join(head.split())
    if len(line) <= limit and len(head) == len(text):
        return line
    return line[: limit - 1] + "…"


def _key_text(key: object) -> str:
    """A mapping key as it appears in a path: the key itself, capped like a quoted value."""
    text = key if isinstance(key, str) else quote(key)
    return text if len(text) <= MAX_QUOTE else text[:MAX_QUOTE] + "…"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with (or, as a note, worth saying about) the input: where, and what."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class InputError(ValueError):
    """Input that cannot be used; carries its ``source`` and every problem found, in order.

    The message is ``source: problem`` for one problem, and ``source:`` followed by one
    indented problem a line for several; without a source, one problem a line.
    """

    def __init__(self, source: str, problems: Iterable[Problem]) -> None:
        self.source = source
        self.problems: tuple[Problem, ...] = tuple(problems)
        lines = [str(p) for p in self.problems]
        if not source:
            message = "\n".join(lines)
        elif len(lines) == 1:
            message = f"{source}: {lines[0]}"
        else:
            message = f"{source}:\n" + "\n".join(f"  {line}" for line in lines)
        super().__init__(message)


class FieldError(InputError):
    """One bad value: the message is ``where: detail``, and ``detail`` says what is wrong
    without the place (for a reader that records ``Problem(where, detail)`` itself)."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__("", [Problem(where, detail)])
        self.where = where
        self.detail = detail


class DocumentError(InputError):
    """A file or text that is not a readable document: missing, unreadable, too large, not
    YAML or JSON, nested too deeply, or aliases that expand too far. ``source`` names the file;
    ``line`` and ``column`` (1-based) say where in it, when known."""

    def __init__(
        self, source: str, detail: str, *, line: int | None = None, column: int | None = None
    ) -> None:
        super().__init__(source, [Problem("", detail)])
        self.detail = detail
        self.line = line
        self.column = column


class Fields:
    """One raw mapping at ``path``; reading methods record problems and return defaults.

    ``problems`` (and ``notes``) are shared with every child reader, so one list collects the
    whole document. ``raw`` of ``None`` reads as an empty mapping (an absent section); any other
    non-mapping is a problem. ``known`` lists the fields this mapping may have (``None``: any);
    ``unknown`` says what to do with the others. Reading methods treat a ``null`` value as
    absent: the default is returned, or "missing (required)" recorded when ``required``.
    """

    def __init__(
        self,
        raw: object,
        path: str = "",
        problems: list[Problem] | None = None,
        known: Iterable[str] | None = None,
        *,
        unknown: Unknown = "problem",
        notes: list[Problem] | None = None,
    ) -> None:
        self.path = path
        self.problems: list[Problem] = [] if problems is None else problems
        self.notes: list[Problem] = [] if notes is None else notes
        self.known: frozenset[str] | None = None if known is None else frozenset(known)
        self.unknown: Unknown = unknown
        self.raw: Mapping[Any, Any]
        if raw is None:
            self.raw = {}
            return
        if not isinstance(raw, Mapping):
            self.raw = {}
            self.bad("", f"expected a mapping, got {_kind(raw)}")
            return
        self.raw = raw
        if self.known is not None and unknown != "ignore":
            for key in raw:
                if key not in self.known:
                    self._unknown(key)

    def _unknown(self, key: object) -> None:
        where = self.where(_key_text(key))
        if self.unknown == "note":
            self.notes.append(Problem(where, "unknown field, ignored"))
        else:
            known = ", ".join(sorted(self.known or ()))
            self.problems.append(Problem(where, f"unknown field (known: {known})"))

    # -- places and problems ------------------------------------------------------------------

    def where(self, key: str) -> str:
        """The full path of ``key`` (``path`` itself for ``""``)."""
        if not key:
            return self.path
        return f"{self.path}.{key}" if self.path else key

    def bad(self, key: str, message: str) -> None:
        """Record a problem with ``key`` (``""``: with this mapping as a whole)."""
        self.problems.append(Problem(self.where(key), message))

    def note(self, key: str, message: str) -> None:
        """Record a note about ``key``: worth telling, but not a problem."""
        self.notes.append(Problem(self.where(key), message))

    def raise_if_problems(self, source: str) -> None:
        """Raise ``InputError(source, problems)`` when any problem was recorded."""
        if self.problems:
            raise InputError(source, self.problems)

    # -- raw access ---------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        """Whether ``key`` is present with a non-null value."""
        return self.raw.get(key) is not None

    def get(self, key: str) -> Any:
        """The raw value of ``key`` (``None`` when absent)."""
        return self.raw.get(key)

    def _absent(self, key: str, required: bool, what: str = "") -> bool:
        """Whether ``key`` is absent or null; records "missing" when it is ``required``."""
        if self.raw.get(key) is not None:
            return False
        if required:
            self.bad(key, f"missing (required){what}")
        return True

    # -- scalars ------------------------------------------------------------------------------

    @overload
    def text(
        self, key: str, default: str = "", *, required: bool = False, max_length: int | None = None
    ) -> str: ...
    @overload
    def text(
        self, key: str, default: _D, *, required: bool = False, max_length: int | None = None
    ) -> str | _D: ...
    def text(
        self,
        key: str,
        default: object = "",
        *,
        required: bool = False,
        max_length: int | None = None,
    ) -> object:
        """A non-empty string, stripped of surrounding blanks, of at most ``max_length``."""
        if self._absent(key, required):
            return default
        value = self.raw[key]
        if not isinstance(value, str) or not value.strip():
            self.bad(key, f"expected a non-empty string, got {quote(value)}")
            return default
        if max_length is not None and len(value.strip()) > max_length:
            self.bad(key, f"longer than {max_length} characters: {quote(value)}")
            return default
        return value.strip()

    def integer(
        self,
        key: str,
        default: _D,
        *,
        minimum: int | None = 0,
        maximum: int | None = None,
        required: bool = False,
    ) -> int | _D:
        """A whole number in ``minimum..maximum`` (``None``: unbounded on that side)."""
        if self._absent(key, required):
            return default
        value = self.raw[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.bad(key, f"expected a whole number, got {quote(value)}")
            return default
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self.bad(
                key, f"expected a whole number {_bounds(minimum, maximum)}, got {quote(value)}"
            )
            return default
        return int(value)

    def number(
        self,
        key: str,
        default: _D,
        *,
        minimum: float | None = 0.0,
        maximum: float | None = None,
        exclusive_minimum: bool = False,
        required: bool = False,
    ) -> float | _D:
        """A finite number in range (``exclusive_minimum``: strictly above ``minimum``)."""
        if self._absent(key, required):
            return default
        value = self.raw[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            self.bad(key, f"expected a number, got {quote(value)}")
            return default
        low_ok = minimum is None or (value > minimum if exclusive_minimum else value >= minimum)
        if not low_ok or (maximum is not None and value > maximum):
            parts = []
            if minimum is not None:
                parts.append(f"{'>' if exclusive_minimum else '>='} {minimum}")
            if maximum is not None:
                parts.append(f"<= {maximum}")
            self.bad(key, f"expected a number {' and '.join(parts)}, got {quote(value)}")
            return default
        return float(value)

    def flag(self, key: str, default: _D, *, required: bool = False) -> bool | _D:
        """A boolean (``true`` or ``false``; no strings, no numbers)."""
        if self._absent(key, required):
            return default
        value = self.raw[key]
        if not isinstance(value, bool):
            self.bad(key, f"expected true or false, got {quote(value)}")
            return default
        return value

    def choice(
        self, key: str, choices: Collection[str], default: _D, *, required: bool = False
    ) -> str | _D:
        """One of ``choices`` (a string, compared exactly)."""
        if self._absent(key, required):
            return default
        value = self.raw[key]
        if not isinstance(value, str) or value not in choices:
            self.bad(key, f"expected one of {', '.join(choices)}, got {quote(value)}")
            return default
        return value

    # -- quantities and durations -------------------------------------------------------------

    def size(
        self, key: str, default: _D, *, positive: bool = False, required: bool = False
    ) -> int | _D:
        """Bytes from a Kubernetes quantity such as ``80Gi`` (``positive``: above zero)."""
        if self._absent(key, required):
            return default
        # Imported on use: the quantity parser loads the kubernetes client package, which a
        # reader of plain counts and strings (the node agent's) need not carry.
        from placement.quantity import QuantityError, parse_bytes  # noqa: PLC0415

        value = self.raw[key]
        try:
            n = parse_bytes(value, self.where(key))
        except ValueError as exc:  # QuantityError, or an int too long to print in its message
            why = exc.why if isinstance(exc, QuantityError) else "too long"
            self.bad(key, f"{quote(value)} is not a valid quantity ({why})")
            return default
        if positive and n <= 0:
            self.bad(key, f"expected a size above zero, got {quote(value)}")
            return default
        return n

    def rate(self, key: str, default: _D, *, required: bool = False) -> float | _D:
        """Bytes per second from a quantity such as ``2Gi`` (must be above zero)."""
        n = self.size(key, None, positive=True, required=required)
        return default if n is None else float(n)

    def milli(self, key: str, default: _D, *, required: bool = False) -> int | _D:
        """Whole millicores from a CPU quantity such as ``96`` or ``500m`` (above zero)."""
        if self._absent(key, required):
            return default
        from placement.quantity import QuantityError, parse_milli  # noqa: PLC0415 (see size)

        value = self.raw[key]
        try:
            milli = parse_milli(value, self.where(key))
        except ValueError as exc:  # as in size
            why = exc.why if isinstance(exc, QuantityError) else "too long"
            self.bad(key, f"{quote(value)} is not a valid CPU quantity such as 500m ({why})")
            return default
        if milli <= 0:
            self.bad(key, f"expected CPU cores above zero such as 96 or 500m, got {quote(value)}")
            return default
        return milli

    def duration(
        self, key: str, default: _D, *, positive: bool = False, required: bool = False
    ) -> float | _D:
        """Seconds from ``90s``, ``15m``, ``1h30m``, ``250ms`` or a number of seconds."""
        if self._absent(key, required):
            return default
        from placement.quantity import duration_seconds  # noqa: PLC0415 (see size)

        value = self.raw[key]
        try:
            seconds = duration_seconds(value)
        except ValueError:
            self.bad(
                key,
                "expected a finite duration such as 90s, 15m, 1h30m or a number of seconds, "
                f"got {quote(value)}",
            )
            return default
        if positive and seconds <= 0:
            self.bad(key, f"expected a duration above zero, got {quote(value)}")
            return default
        return seconds

    # -- collections --------------------------------------------------------------------------

    def items(self, key: str, *, required: bool = False) -> list[Any]:
        """A list (empty when absent)."""
        if self._absent(key, required, ": expected a list"):
            return []
        value = self.raw[key]
        if not isinstance(value, list):
            self.bad(key, f"expected a list, got {_kind(value)}")
            return []
        return value

    def strings(self, key: str, *, required: bool = False) -> tuple[str, ...]:
        """A list of non-empty strings, or one comma-separated string; each stripped."""
        if self._absent(key, required):
            return ()
        value = self.raw[key]
        if isinstance(value, str):
            return tuple(p.strip() for p in value.split(",") if p.strip())
        if isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value):
            return tuple(v.strip() for v in value)
        self.bad(key, f"expected a list of strings, got {quote(value)}")
        return ()

    def string_map(self, key: str, *, required: bool = False) -> dict[str, str]:
        """A mapping of strings to strings (labels, annotations); numbers are written as text.

        Entries that are not a string key with a string or number value are problems and left
        out; the others are kept.
        """
        if self._absent(key, required):
            return {}
        value = self.raw[key]
        if not isinstance(value, Mapping):
            self.bad(key, f"expected a mapping of strings to strings, got {_kind(value)}")
            return {}
        out: dict[str, str] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                self.bad(key, f"key {quote(k)} is not a string")
            elif isinstance(v, bool) or not isinstance(v, str | int | float):
                self.bad(f"{key}.{_key_text(k)}", f"expected a string, got {quote(v)}")
            else:
                out[k] = v if isinstance(v, str) else str(v)
        return out

    def child(
        self,
        key: str,
        known: Iterable[str] | None = None,
        *,
        required: bool = False,
        unknown: Unknown | None = None,
    ) -> Fields:
        """The mapping under ``key`` as ``Fields`` (empty when absent); ``unknown`` defaults
        to this reader's policy."""
        self._absent(key, required)
        return Fields(
            self.raw.get(key),
            self.where(key),
            self.problems,
            known,
            unknown=self.unknown if unknown is None else unknown,
            notes=self.notes,
        )

    def children(
        self,
        key: str,
        known: Iterable[str] | None = None,
        *,
        required: bool = False,
        unknown: Unknown | None = None,
    ) -> list[Fields]:
        """Each mapping of the list under ``key``, at ``key[0]``, ``key[1]``, ...; an entry
        that is not a mapping is a problem (and reads as empty)."""
        where = self.where(key)
        policy = self.unknown if unknown is None else unknown
        out: list[Fields] = []
        for i, entry in enumerate(self.items(key, required=required)):
            if entry is None:
                self.problems.append(Problem(f"{where}[{i}]", "expected a mapping, got null"))
            out.append(
                Fields(
                    entry, f"{where}[{i}]", self.problems, known, unknown=policy, notes=self.notes
                )
            )
        return out


def _kind(value: object) -> str:
    """What a value is, for "expected ..., got <kind>" (a list, a mapping, null, 'text')."""
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return quote(value)


def _bounds(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{minimum}..{maximum}"
    if minimum is not None:
        return f">= {minimum}"
    return f"<= {maximum}"
