"""Small inline SVG charts for the HTML report: step lines on linear or logarithmic axes.

The report must open anywhere without scripts or network access, so charts are plain SVG text
built here. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


@dataclass(frozen=True, slots=True)
class Line:
    """One labelled step line: points sorted by x; each value holds until the next point."""

    label: str
    points: tuple[tuple[float, float], ...]


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] on a linear axis."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _log_ticks(low: float, high: float) -> list[float]:
    out = []
    e = math.floor(math.log10(low))
    while 10**e <= high * 1.0001:
        for m in (1, 2, 5):
            v = m * 10**e
            if low <= v <= high:
                out.append(float(v))
        e += 1
    return out


def _label(v: float) -> str:
    if v >= 1000 and v == int(v):
        return f"{int(v):,}"
    if v == int(v):
        return str(int(v))
    return f"{v:g}"


def step_chart(
    lines: Sequence[Line],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float] | None = None,
    log_x: bool = False,
    width: int = 760,
    height: int = 320,
) -> str:
    """An SVG step chart of ``lines`` with axes, ticks and a legend."""
    left, right, top, bottom = 64, 170, 34, 48
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [x for line in lines for x, _ in line.points]
    ys = [y for line in lines for _, y in line.points]
    if x_range is not None:
        x0, x1 = x_range
    else:
        x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if log_x:
        x0 = max(x0, 1.0)
        x1 = max(x1, x0 * 10)
    elif x1 <= x0:
        x1 = x0 + 1.0
    y1 = max(ys, default=1.0)
    y1 = y1 if y1 > 0 else 1.0

    def sx(x: float) -> float:
        if log_x:
            x = max(x, x0)
            return left + plot_w * (math.log10(x) - math.log10(x0)) / (
                math.log10(x1) - math.log10(x0)
            )
        return left + plot_w * (x - x0) / (x1 - x0)

    def sy(y: float) -> float:
        return top + plot_h * (1.0 - y / y1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#999"/>',
    ]
    x_ticks = _log_ticks(x0, x1) if log_x else _ticks(x0, x1)
    for t in x_ticks:
        x = sx(t)
        parts.append(
            f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" y2="{top}" stroke="#eee"/>'
            f'<text x="{x:.1f}" y="{top + plot_h + 16}" font-size="11" '
            f'text-anchor="middle">{_label(t)}</text>'
        )
    for t in _ticks(0.0, y1):
        y = sy(t)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" '
            f'text-anchor="end">{_label(t)}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 10}" font-size="12" '
        f'text-anchor="middle">{escape(x_label)}</text>'
        f'<text x="16" y="{top + plot_h / 2:.1f}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 16 {top + plot_h / 2:.1f})">{escape(y_label)}</text>'
    )
    for k, line in enumerate(lines):
        color = PALETTE[k % len(PALETTE)]
        if line.points:
            path = []
            prev_y: float | None = None
            for x, y in line.points:
                if prev_y is not None:
                    path.append(f"L{sx(x):.1f},{sy(prev_y):.1f}")
                path.append(f"{'M' if prev_y is None else 'L'}{sx(x):.1f},{sy(y):.1f}")
                prev_y = y
            last_x = line.points[-1][0]
            end_x = x1 if x_range is not None or log_x else last_x
            if prev_y is not None and end_x > last_x:
                path.append(f"L{sx(end_x):.1f},{sy(prev_y):.1f}")
            parts.append(
                f'<path d="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="2"/>'
            )
        ly = top + 14 + 18 * k
        lx = left + plot_w + 12
        parts.append(
            f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 18}" y2="{ly - 4}" stroke="{color}" '
            f'stroke-width="3"/><text x="{lx + 24}" y="{ly}" font-size="12">'
            f"{escape(line.label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def ecdf(values: Sequence[float]) -> tuple[tuple[float, float], ...]:
    """The empirical distribution of ``values`` as step points (value, share at or below)."""
    ordered = sorted(values)
    n = len(ordered)
    points: list[tuple[float, float]] = []
    for i, v in enumerate(ordered, start=1):
        if points and points[-1][0] == v:
            points[-1] = (v, i / n)
        else:
            points.append((v, i / n))
    return tuple(points)
