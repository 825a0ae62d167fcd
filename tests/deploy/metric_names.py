"""The metric and label names on both sides of the monitoring files: what a PromQL expression
reads, and what the exporters' source defines.

The PromQL side is a small lexer, not a full parser: it drops strings, label matchers, ranges,
grouping clauses and Grafana variables, then keeps the identifiers that are not followed by "("
(functions and aggregations) and are not keywords. The exporter side reads the metric
constructors of ``prometheus_client`` from the modules' syntax trees, so nothing is imported or
run, and derives the series names each type exposes (``_total`` of a counter, ``_bucket`` of a
histogram, ...).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_VARIABLE = re.compile(r"\$\{\w+(?::\w+)?\}|\$\w+")
_SELECTOR = re.compile(r"(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)?\s*\{(?P<matchers>[^{}]*)\}")
_MATCHER_LABEL = re.compile(r"(?P<label>[A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(
    r"\b(?P<kind>by|without|on|ignoring|group_left|group_right)\s*\((?P<labels>[^()]*)\)"
)
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "atan2"}
)


@dataclass(frozen=True)
class Reads:
    """What one expression reads: metric names, the labels its selectors match on, and the
    labels its grouping clauses name."""

    metrics: frozenset[str]
    matched: frozenset[tuple[str, str]]  # (metric, label)
    grouped: frozenset[str]


def reads(expr: str) -> Reads:
    """Pure: the metrics and labels ``expr`` names."""
    text = _VARIABLE.sub("1", _STRING.sub('""', expr))
    matched: set[tuple[str, str]] = set()
    for selector in _SELECTOR.finditer(text):
        for matcher in _MATCHER_LABEL.finditer(selector.group("matchers")):
            if matcher.group("label") != "__name__":
                matched.add((selector.group("name") or "", matcher.group("label")))
    text = _SELECTOR.sub(lambda m: m.group("name") or "", text)
    text = _RANGE.sub("", text)
    grouped: set[str] = set()
    for grouping in _GROUPING.finditer(text):
        grouped |= {g.strip() for g in grouping.group("labels").split(",") if g.strip()}
    text = _GROUPING.sub(" ", text)
    metrics = set()
    for found in _IDENTIFIER.finditer(text):
        before = text[found.start() - 1] if found.start() else " "
        after = text[found.end() :].lstrip()[:1]
        word = found.group()
        if before.isdigit() or before == "." or after == "(" or word.lower() in KEYWORDS:
            continue
        metrics.add(word)
    return Reads(frozenset(metrics), frozenset(matched), frozenset(grouped))


# --- the exporters ------------------------------------------------------------------------

# Constructor -> the suffixes of the series it exposes ("" is the bare name).
_EXPOSED = {
    "Counter": ("_total",),
    "CounterMetricFamily": ("_total",),
    "Gauge": ("",),
    "GaugeMetricFamily": ("",),
    "Histogram": ("_bucket", "_sum", "_count"),
    "HistogramMetricFamily": ("_bucket", "_sum", "_count"),
    "Summary": ("", "_sum", "_count"),
    "SummaryMetricFamily": ("", "_sum", "_count"),
    "Info": ("_info",),
    "InfoMetricFamily": ("_info",),
}


@dataclass(frozen=True)
class Defined:
    """One metric an exporter defines: its name as written, its type and its labels."""

    name: str
    constructor: str
    labels: frozenset[str]

    def series(self) -> dict[str, frozenset[str]]:
        """The series names it exposes, each with the labels it carries."""
        base = self.name.removesuffix("_total") if "Counter" in self.constructor else self.name
        out = {}
        for suffix in _EXPOSED[self.constructor]:
            extra = {"le"} if suffix == "_bucket" else set()
            if self.constructor.startswith("Summary") and not suffix:
                extra = {"quantile"}
            out[base + suffix] = self.labels | extra
        return out


def defined_metrics(paths: Iterable[Path]) -> list[Defined]:
    """Every metric constructed in the modules at ``paths``, by reading their syntax trees."""
    found = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        constants = _list_constants(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            constructor = _callee(node.func)
            if constructor not in _EXPOSED or not node.args:
                continue
            name = node.args[0]
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                continue
            found.append(Defined(name.value, constructor, _labels(node, constants)))
    return found


def _callee(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _list_constants(tree: ast.Module) -> dict[str, list[ast.expr]]:
    """Every ``NAME = ...`` assignment in the module, at any depth (label lists shared by
    several metrics, or chosen at run time: ``labels = A if uuids else B``)."""
    assigned: dict[str, list[ast.expr]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    assigned.setdefault(target.id, []).append(node.value)
    return assigned


def _labels(call: ast.Call, assigned: dict[str, list[ast.expr]]) -> frozenset[str]:
    """The label names of a constructor call: its third argument (``Counter(name, doc,
    labels)``) or its ``labels``/``labelnames`` keyword. A name is resolved through its
    assignments; where the labels depend on a condition, every branch's labels count."""
    node: ast.expr | None = call.args[2] if len(call.args) > 2 else None
    for keyword in call.keywords:
        if keyword.arg in ("labels", "labelnames"):
            node = keyword.value
    return frozenset(_strings(node, assigned, set())) if node is not None else frozenset()


def _strings(node: ast.expr, assigned: dict[str, list[ast.expr]], seen: set[str]) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.List | ast.Tuple):
        return set().union(*(_strings(e, assigned, seen) for e in node.elts))
    if isinstance(node, ast.Starred):
        return _strings(node.value, assigned, seen)
    if isinstance(node, ast.IfExp):
        return _strings(node.body, assigned, seen) | _strings(node.orelse, assigned, seen)
    if isinstance(node, ast.BinOp):
        return _strings(node.left, assigned, seen) | _strings(node.right, assigned, seen)
    if isinstance(node, ast.Name) and node.id not in seen:
        values = assigned.get(node.id, [])
        return set().union(*(_strings(v, assigned, seen | {node.id}) for v in values))
    return set()
