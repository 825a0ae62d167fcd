"""Small inline-SVG bar charts for the HTML report: no JavaScript, no external files. Pure.

Every piece of text is laid out by its measured width (``text_metrics``), so that no label
overlaps another or leaves the picture, whatever the names: category labels turn 45 degrees
when they do not fit side by side, the margins grow to hold the longest, the legend wraps, and
values are written on bars only where they fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from planner.reports.text_metrics import DESCENT, LINE, text_width

PALETTE = ("#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#718096")
TITLE_SIZE = 15
LEGEND_SIZE = 12
LABEL_SIZE = 11
VALUE_SIZE = 10
SLANT = 45.0  # degrees category labels turn when they do not fit side by side
MIN_GROUP = 20.0  # least width of a category; slanted labels then still clear each other
_SLANT_COS = math.cos(math.radians(SLANT))


@dataclass(frozen=True, slots=True)
class Series:
    """One named row of values, one value per category."""

    name: str
    values: tuple[float, ...]


def _text(x: float, y: float, text: str, size: float, extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size:g}"{extra}>{escape(text)}</text>'


def _open(width: float, height: float, title: str, title_x: float) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{escape(title)}">',
        _text(title_x, 20, title, TITLE_SIZE, ' font-weight="bold"'),
    ]


CAPACITY_STYLE = 'fill="#edf2f7" stroke="#a0aec0"'


def _legend(
    entries: Sequence[tuple[str, str]], x: float, y: float, right: float
) -> tuple[list[str], float]:
    """The legend (name, swatch style) from (``x``, ``y``), one entry after another by their
    widths, wrapping before ``right``; returns its parts and the lowest y it reaches."""
    out: list[str] = []
    cx, cy = x, y
    for name, style in entries:
        w = 16 + text_width(name, LEGEND_SIZE) + 18
        if cx > x and cx + w > right:
            cx, cy = x, cy + LEGEND_SIZE * LINE + 4
        out.append(f'<rect x="{cx:.1f}" y="{cy:.1f}" width="12" height="12" {style}/>')
        out.append(_text(cx + 16, cy + 10, name, LEGEND_SIZE))
        cx += w
    return out, cy + 12 + LEGEND_SIZE * DESCENT


def _legend_entry(entries: Sequence[tuple[str, str]]) -> float:
    """Width of the legend's widest entry: the picture is at least that wide past its start."""
    return max((16 + text_width(name, LEGEND_SIZE) for name, _ in entries), default=0.0)


def _swatches(series: Sequence[Series]) -> list[tuple[str, str]]:
    return [(s.name, f'fill="{PALETTE[k % len(PALETTE)]}"') for k, s in enumerate(series)]


def bar_chart(
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    fmt: Callable[[float], str],
    *,
    width: int = 720,
    height: int = 300,
) -> str:
    """Grouped vertical bars: one group per category, one bar per series. ``height`` less 110
    is the plot's; the picture grows below it for slanted category labels."""
    top = max((v for s in series for v in s.values), default=0.0) or 1.0
    n = max(1, len(categories))
    widest = max((text_width(c, LABEL_SIZE) for c in categories), default=0.0)
    right, plot_h = 20.0, float(height - 110)
    slanted = widest + 6 > (width - 60 - right) / n
    # A slanted label reaches left of its bar by its width: the first must stay in the picture.
    left = max(60.0, (widest + LABEL_SIZE) * _SLANT_COS + 4) if slanted else 60.0
    width_px = max(
        float(width),
        left + right + MIN_GROUP * n,
        left + text_width(title, TITLE_SIZE, bold=True) + right,
        left + _legend_entry(_swatches(series)) + right,
    )
    plot_w = width_px - left - right
    group = plot_w / n
    bar = group * 0.8 / max(1, len(series))
    values = [fmt(v) for s in series for v in s.values]
    show_values = len(values) <= 24 and all(text_width(t, VALUE_SIZE) + 2 <= bar for t in values)
    legend, legend_bottom = _legend(_swatches(series), left, 28, width_px - right)
    head = legend_bottom + (VALUE_SIZE * LINE + 6 if show_values else 10)
    axis = head + plot_h
    if slanted:
        foot = 10 + (widest + LABEL_SIZE * DESCENT) * _SLANT_COS + LABEL_SIZE + 8
    else:
        foot = 16 + LABEL_SIZE * DESCENT + 12
    total_h = axis + foot
    parts = _open(width_px, total_h, title, left)
    parts.append(
        f'<line x1="{left:.1f}" y1="{axis:.1f}" x2="{left + plot_w:.1f}" y2="{axis:.1f}" '
        'stroke="#444"/>'
    )
    parts += legend
    for c, cat in enumerate(categories):
        gx = left + c * group + group * 0.1
        for k, s in enumerate(series):
            v = s.values[c]
            h = plot_h * v / top
            x = gx + k * bar
            y = axis - h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar * 0.92:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[k % len(PALETTE)]}"><title>{escape(s.name)} {escape(cat)}: '
                f"{escape(fmt(v))}</title></rect>"
            )
            if show_values:
                parts.append(
                    _text(x + bar * 0.46, y - 3, fmt(v), VALUE_SIZE, ' text-anchor="middle"')
                )
        cx = left + c * group + group / 2
        if slanted:
            ly = axis + 10
            rotate = f' text-anchor="end" transform="rotate({-SLANT:g} {cx:.1f} {ly:.1f})"'
            parts.append(_text(cx, ly, cat, LABEL_SIZE, rotate))
        else:
            parts.append(_text(cx, axis + 16, cat, LABEL_SIZE, ' text-anchor="middle"'))
    parts.append("</svg>")
    return "".join(parts)


def hbar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Callable[[float], str],
    *,
    capacity: Sequence[float] | None = None,
    capacity_name: str = "capacity",
    width: int = 720,
) -> str:
    """Horizontal bars, one row per label (one bar per series), with an optional capacity mark
    behind each row (``capacity_name`` in the legend); values are written after the bar or the
    mark, whichever is longer. The label column and the room for values grow to their widest."""
    row = 14 * max(1, len(series)) + 8
    top = max([v for s in series for v in s.values] + list(capacity or []) + [1.0])
    widest = max((text_width(label, LABEL_SIZE) for label in labels), default=0.0)
    left = max(230.0, widest + 16)
    values = [fmt(v) for s in series for v in s.values]
    room = max((text_width(t, VALUE_SIZE) for t in values), default=0.0) + 10
    entries = _swatches(series)
    if capacity is not None:
        entries.append((capacity_name, CAPACITY_STYLE))
    width_px = max(
        float(width),
        left + 200 + room,
        20 + text_width(title, TITLE_SIZE, bold=True),
        left + _legend_entry(entries) + 10,
    )
    plot_w = width_px - left - room
    legend, legend_bottom = _legend(entries, left, 28, width_px - 10)
    head = legend_bottom + 8
    height = head + row * len(labels) + 20
    parts = _open(width_px, height, title, 10)
    parts += legend
    for r, label in enumerate(labels):
        y0 = head + r * row
        parts.append(_text(left - 6, y0 + row / 2 + 3, label, LABEL_SIZE, ' text-anchor="end"'))
        mark = 0.0
        if capacity is not None:
            mark = plot_w * capacity[r] / top
            parts.append(
                f'<rect x="{left:.1f}" y="{y0 + 2:.1f}" width="{mark:.1f}" height="{row - 6}" '
                f"{CAPACITY_STYLE}><title>{escape(capacity_name)} {escape(fmt(capacity[r]))}"
                "</title></rect>"
            )
        for k, s in enumerate(series):
            v = s.values[r]
            w = plot_w * v / top
            y = y0 + 4 + k * 14
            parts.append(
                f'<rect x="{left:.1f}" y="{y:.1f}" width="{w:.1f}" height="11" '
                f'fill="{PALETTE[k % len(PALETTE)]}"><title>{escape(s.name)}: {escape(fmt(v))}'
                "</title></rect>"
            )
            parts.append(_text(left + max(w, mark) + 4, y + 9, fmt(v), VALUE_SIZE))
    parts.append("</svg>")
    return "".join(parts)
