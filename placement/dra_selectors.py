"""The common forms of a DRA claim's CEL device selectors, read without a CEL engine.

A ResourceClaim asks for devices with CEL expressions over ``device.driver``,
``device.attributes[<domain>].<name>`` and ``device.capacity[<domain>].<name>``; the DRA
scheduler plugin allocates only devices for which every one is true. vramfit must never pass a
node on GPUs the claim cannot use, so it reads the forms that claims for GPUs use in practice
(the NVIDIA driver's demos and tests, KServe's samples):

* ``device.driver == "gpu.nvidia.com"``;
* an attribute compared with a literal: ``device.attributes["gpu.nvidia.com"].productName ==
  "NVIDIA H100 80GB HBM3"`` (``!=``; the literal on either side; ``['productName']`` for
  ``.productName``; strings, integers, booleans, and ``semver("9.0.0")`` for version values);
* ``<attribute> in ["A", "B"]``;
* a string method, after an optional ``.lowerAscii()`` or ``.upperAscii()``:
  ``.matches("re")`` (RE2, read as Python's ``re.search``), ``.startsWith``, ``.endsWith``,
  ``.contains``;
* a capacity or version compared: ``device.capacity["gpu.nvidia.com"].memory.compareTo(
  quantity("80Gi")) >= 0`` (any of ``== != < <= > >=`` against -1, 0 or 1), and
  ``.isGreaterThan(quantity("40Gi"))``, ``.isLessThan(...)`` (``semver(...)`` for versions);
* conjunctions of those with ``&&``, in parentheses or not.

Anything else (``||``, ``!``, ``has()``, arithmetic, other functions) is not guessed: the part
that cannot be read is returned as text, to be named in the decision, and only the parts read
narrow the devices, so the GPUs vramfit considers are never fewer than the claim may get. A
device that lacks an attribute or capacity a clause reads is not selected (CEL would fail on
it). Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from placement.quantity import QuantityError, parse_bytes

AttributeValue = str | int | bool
"""A device attribute's value as read from a ResourceSlice; versions are kept as strings."""


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What a selector may read of one device: its driver, and its attributes and capacities
    keyed by qualified name (``<domain>/<name>``; a bare name in a slice belongs to the
    driver's own domain). Capacities are whole numbers (bytes for memory)."""

    driver: str
    attributes: Mapping[str, AttributeValue]
    capacity: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Clause:
    """One readable comparison: ``subject`` is ``driver``, ``attribute`` or ``capacity``;
    ``key`` the qualified name; ``op`` one of ``== != < <= > >= in matches startsWith
    endsWith contains``; ``value`` what it compares with; ``fold`` ``lower``/``upper``."""

    subject: str
    key: str
    op: str
    value: AttributeValue | tuple[AttributeValue, ...]
    fold: str = ""
    version: bool = False

    def test(self, device: DeviceFacts) -> bool:
        """Whether ``device`` passes this clause (pure)."""
        if self.subject == "driver":
            actual: AttributeValue | None = device.driver
        elif self.subject == "capacity":
            actual = device.capacity.get(self.key)
        else:
            actual = device.attributes.get(self.key)
        if actual is None:
            return False
        if self.version:
            if not isinstance(actual, str) or not isinstance(self.value, str):
                return False
            return _ordered(self.op, _semver(actual), _semver(self.value))
        if self.op == "in":
            return isinstance(self.value, tuple) and actual in self.value
        if self.op in ("matches", "startsWith", "endsWith", "contains"):
            return isinstance(actual, str) and _string_test(self.op, _fold(actual, self.fold), self)
        if type(actual) is not type(self.value):
            return False  # CEL compares values of one type only
        return _ordered(self.op, actual, self.value)


def _fold(text: str, fold: str) -> str:
    if fold == "lower":
        return text.lower()
    return text.upper() if fold == "upper" else text


def _string_test(op: str, actual: str, clause: Clause) -> bool:
    pattern = clause.value
    assert isinstance(pattern, str)
    if op == "matches":
        try:
            return re.search(pattern, actual) is not None
        except re.error:
            return False
    if op == "startsWith":
        return actual.startswith(pattern)
    if op == "endsWith":
        return actual.endswith(pattern)
    return pattern in actual


def _ordered(op: str, a: object, b: object) -> bool:
    if op == "==":
        return a == b
    if op == "!=":
        return a != b
    if not (
        (isinstance(a, int) and isinstance(b, int))
        or (isinstance(a, str) and isinstance(b, str))
        or (isinstance(a, tuple) and isinstance(b, tuple))
    ):
        return False
    key = {"<": (-1,), "<=": (-1, 0), ">": (1,), ">=": (1, 0)}[op]
    return ((a > b) - (a < b)) in key  # type: ignore[operator]


def _semver(text: str) -> tuple[int, ...]:
    """``major.minor.patch`` as numbers (a pre-release or build suffix is dropped)."""
    core = re.split(r"[-+]", text, maxsplit=1)[0]
    parts = []
    for p in core.split("."):
        parts.append(int(p) if p.isdigit() else -1)
    return tuple([*parts, 0, 0, 0][:3])


@dataclass(frozen=True, slots=True)
class Selectors:
    """What vramfit read of one request's selectors: the clauses (all must hold), and the text
    of each part it could not read (not applied)."""

    clauses: tuple[Clause, ...] = ()
    unread: tuple[str, ...] = ()

    def test(self, device: DeviceFacts) -> bool:
        """Whether ``device`` passes every clause read (pure)."""
        return all(c.test(device) for c in self.clauses)


_STRING = r"""(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
_NAME = rf"""(?:\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)|\[\s*(?P<qname>{_STRING})\s*\])"""
_PATH = re.compile(
    rf"""device\.(?P<what>attributes|capacity)\[\s*(?P<domain>{_STRING})\s*\]{_NAME}"""
    r"""|device\.(?P<driver>driver)\b"""
)
_LITERAL = re.compile(
    rf"""(?P<string>{_STRING})|(?P<bool>true|false)\b|(?P<int>-?[0-9]+)\b"""
    rf"""|(?P<fn>quantity|semver)\(\s*(?P<arg>{_STRING})\s*\)"""
)
_OPS = ("==", "!=", "<=", ">=", "<", ">")


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def _split(expression: str, token: str) -> list[str] | None:
    """``expression`` split at top-level ``token`` (outside strings and brackets); ``None``
    when the brackets or quotes do not balance."""
    parts: list[str] = []
    depth, quote, start, i = 0, "", 0, 0
    while i < len(expression):
        ch = expression[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                return None
        elif depth == 0 and expression.startswith(token, i):
            parts.append(expression[start:i])
            i += len(token)
            start = i
            continue
        i += 1
    if depth or quote:
        return None
    parts.append(expression[start:])
    return parts


def _strip(expression: str) -> str:
    """Without surrounding whitespace and wrapping parentheses."""
    text = expression.strip()
    while text.startswith("(") and text.endswith(")"):
        inner = _split(text[1:-1], "\u0000")
        if inner is None:
            break
        text = text[1:-1].strip()
    return text


def _literal(text: str) -> tuple[AttributeValue, bool] | None:
    """The value of a whole literal and whether it is a version; ``None`` if it is not one.
    ``quantity("80Gi")`` reads as its whole number."""
    m = _LITERAL.fullmatch(text.strip())
    if m is None:
        return None
    if m.group("string") is not None:
        return _unquote(m.group("string")), False
    if m.group("bool") is not None:
        return m.group("bool") == "true", False
    if m.group("int") is not None:
        return int(m.group("int")), False
    arg = _unquote(m.group("arg"))
    if m.group("fn") == "semver":
        return arg, True
    try:
        return parse_bytes(arg, "quantity"), False
    except QuantityError:
        return None


def _path(text: str) -> tuple[str, str, str] | None:
    """(subject, qualified key, rest of the text) of a clause that starts with a path."""
    m = _PATH.match(text)
    if m is None:
        return None
    rest = text[m.end() :]
    if m.group("driver"):
        return "driver", "", rest
    domain = _unquote(m.group("domain"))
    name = m.group("name") or _unquote(m.group("qname"))
    subject = "attribute" if m.group("what") == "attributes" else "capacity"
    return subject, f"{domain}/{name}", rest


_METHOD = re.compile(
    r"(?P<fold>\.(?:lowerAscii|upperAscii)\(\s*\))?\.(?P<method>matches|startsWith|endsWith|"
    r"contains|compareTo|isGreaterThan|isLessThan)\((?P<arg>.*)\)(?P<tail>.*)",
    re.DOTALL,
)
_COMPARE_TAIL = re.compile(r"\s*(?P<op>==|!=|<=|>=|<|>)\s*(?P<n>-?[01])\s*")


def _clause(text: str) -> Clause | None:
    """One clause read, or ``None``."""
    text = _strip(text)
    flipped = next(
        (op for op in _OPS if (parts := _split(text, op)) is not None and len(parts) == 2), None
    )
    if flipped is not None:
        left, right = (_strip(p) for p in _split(text, flipped) or ["", ""])
        path, lit = _path(left), _literal(right)
        if path is None or path[2].strip():
            path, lit = _path(right), _literal(left)
            flipped = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(flipped, flipped)
        if path is not None and not path[2].strip() and lit is not None:
            return Clause(path[0], path[1], flipped, lit[0], version=lit[1])
        return _method_clause(text)
    in_parts = _split(text, " in ")
    if in_parts is not None and len(in_parts) == 2:
        path = _path(_strip(in_parts[0]))
        items = in_parts[1].strip()
        if path is None or path[2].strip() or not (items.startswith("[") and items.endswith("]")):
            return None
        values = []
        for item in _split(items[1:-1], ",") or []:
            if not item.strip():
                continue
            lit = _literal(item)
            if lit is None or lit[1]:
                return None
            values.append(lit[0])
        return Clause(path[0], path[1], "in", tuple(values))
    return _method_clause(text)


def _method_clause(text: str) -> Clause | None:
    """A clause of the form ``<path>[.lowerAscii()].<method>(<literal>)[ <op> <n>]``."""
    path = _path(text)
    if path is None:
        return None
    m = _METHOD.fullmatch(path[2])
    if m is None:
        return None
    method, tail = m.group("method"), m.group("tail")
    lit = _literal(m.group("arg"))
    if lit is None:
        return None
    value, version = lit
    fold = {".lowerAscii()": "lower", ".upperAscii()": "upper"}.get(
        re.sub(r"\s", "", m.group("fold") or ""), ""
    )
    if method in ("matches", "startsWith", "endsWith", "contains"):
        if tail.strip() or not isinstance(value, str) or version:
            return None
        return Clause(path[0], path[1], method, value, fold=fold)
    if fold:
        return None
    if method in ("isGreaterThan", "isLessThan"):
        if tail.strip():
            return None
        return Clause(
            path[0], path[1], ">" if method == "isGreaterThan" else "<", value, "", version
        )
    compared = _COMPARE_TAIL.fullmatch(tail)
    if compared is None:
        return None
    op = _compare_op(compared.group("op"), int(compared.group("n")))
    return None if op is None else Clause(path[0], path[1], op, value, "", version)


def _compare_op(op: str, n: int) -> str | None:
    """``a.compareTo(b) <op> n`` as one comparison of ``a`` with ``b``; ``None`` when it is
    not one (``compareTo(...) > 1`` is never true, say)."""
    table = {
        ("==", 0): "==",
        ("!=", 0): "!=",
        (">=", 0): ">=",
        (">", 0): ">",
        ("<=", 0): "<=",
        ("<", 0): "<",
        ("==", 1): ">",
        (">=", 1): ">",
        ("!=", 1): "<=",
        ("<", 1): "<=",
        ("==", -1): "<",
        ("<=", -1): "<",
        ("!=", -1): ">=",
        (">", -1): ">=",
    }
    return table.get((op, n))


def read_selectors(expressions: tuple[str, ...]) -> Selectors:
    """What vramfit can read of a request's CEL selector ``expressions`` (pure): every clause
    of every expression (each a conjunction), and the text of each part it could not read."""
    clauses: list[Clause] = []
    unread: list[str] = []
    for expression in expressions:
        parts = _split(_strip(expression), "&&")
        if parts is None or _split(expression, "||") != [expression]:
            unread.append(" ".join(expression.split()))
            continue
        for part in parts:
            clause = _clause(part)
            if clause is None:
                unread.append(" ".join(part.split()))
            else:
                clauses.append(clause)
    return Selectors(tuple(clauses), tuple(unread))


__all__ = ["AttributeValue", "Clause", "DeviceFacts", "Selectors", "read_selectors"]
