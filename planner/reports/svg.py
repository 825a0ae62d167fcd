"""Small inline-SVG bar charts for the HTML report: no JavaScript, no external files. Pure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#718096")


@dataclass(frozen=True, slots=True)
class Series:
    """One named row of values, one value per category."""

    name: str
    values: tuple[float, ...]


def _legend(series: Sequence[Series], x: float, y: float) -> list[str]:
    out = []
    for k, s in enumerate(series):
        color = PALETTE[k % len(PALETTE)]
        out.append(
            f'<rect x="{x + k * 150:.1f}" y="{y:.1f}" width="12" height="12" fill="{color}"/>'
        )
        out.append(
            f'<text x="{x + k * 150 + 16:.1f}" y="{y + 10:.1f}" font-size="12">{escape(s.name)}</text>'
        )
    return out


def bar_chart(
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    fmt: Callable[[float], str],
    *,
    width: int = 720,
    height: int = 300,
) -> str:
    """Grouped vertical bars: one group per category, one bar per series."""
    top = max((v for s in series for v in s.values), default=0.0) or 1.0
    left, right, head, foot = 60, 20, 50, 60
    plot_w, plot_h = width - left - right, height - head - foot
    group = plot_w / max(1, len(categories))
    bar = group * 0.8 / max(1, len(series))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="20" font-size="15" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{left}" y1="{head + plot_h}" x2="{left + plot_w}" y2="{head + plot_h}" stroke="#444"/>',
    ]
    parts += _legend(series, left, 28)
    for c, cat in enumerate(categories):
        gx = left + c * group + group * 0.1
        for k, s in enumerate(series):
            v = s.values[c]
            h = plot_h * v / top
            x = gx + k * bar
            y = head + plot_h - h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar * 0.92:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[k % len(PALETTE)]}"><title>{escape(s.name)} {escape(cat)}: '
                f"{escape(fmt(v))}</title></rect>"
            )
            if len(series) * len(categories) <= 24:
                parts.append(
                    f'<text x="{x + bar * 0.46:.1f}" y="{y - 3:.1f}" font-size="10" '
                    f'text-anchor="middle">{escape(fmt(v))}</text>'
                )
        parts.append(
            f'<text x="{gx + group * 0.4:.1f}" y="{head + plot_h + 16}" font-size="11" '
            f'text-anchor="middle">{escape(cat)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def hbar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Callable[[float], str],
    *,
    capacity: Sequence[float] | None = None,
    width: int = 720,
) -> str:
    """Horizontal bars, one row per label (one bar per series), with an optional capacity mark
    behind each row."""
    row = 14 * max(1, len(series)) + 8
    left, head = 230, 50
    height = head + row * len(labels) + 20
    top = max([v for s in series for v in s.values] + list(capacity or []) + [1.0])
    plot_w = width - left - 90
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="10" y="20" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    parts += _legend(series, left, 28)
    for r, label in enumerate(labels):
        y0 = head + r * row
        parts.append(
            f'<text x="{left - 6}" y="{y0 + row / 2 + 3:.1f}" font-size="11" '
            f'text-anchor="end">{escape(label)}</text>'
        )
        if capacity is not None:
            w = plot_w * capacity[r] / top
            parts.append(
                f'<rect x="{left}" y="{y0 + 2}" width="{w:.1f}" height="{row - 6}" fill="#edf2f7" '
                f'stroke="#a0aec0"><title>capacity {escape(fmt(capacity[r]))}</title></rect>'
            )
        for k, s in enumerate(series):
            v = s.values[r]
            w = plot_w * v / top
            y = y0 + 4 + k * 14
            parts.append(
                f'<rect x="{left}" y="{y}" width="{w:.1f}" height="11" '
                f'fill="{PALETTE[k % len(PALETTE)]}"><title>{escape(s.name)}: {escape(fmt(v))}</title></rect>'
            )
            parts.append(
                f'<text x="{left + w + 4:.1f}" y="{y + 9}" font-size="10">{escape(fmt(v))}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
