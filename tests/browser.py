"""Headless Chromium (Debian's package ``chromium``; ``make chromium`` installs it) for the tests
that look at the HTML reports as a person would: a screenshot of the whole page, and the box
every piece of SVG text really takes once the browser has laid it out with its fonts.

The reports carry no script; ``measure`` renders a copy with one appended that writes the
boxes into the page, and reads them back from ``--dump-dom``. With ``VRAMFIT_SCREENSHOTS`` set
to a folder (``make screenshots``: ``docs/screenshots``), each screenshot is also copied there.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

WIDTH = 1200
MAX_HEIGHT = 16_000

Point = tuple[float, float]

# For each <svg>: its size and, per <text>, the corners of its box in the SVG's coordinates
# (getBBox in the text's own frame, through its transform, so rotated labels keep their shape).
_MEASURE = """
<script>
const svgs = [...document.querySelectorAll("svg")].map((svg) => ({
  width: svg.viewBox.baseVal.width,
  height: svg.viewBox.baseVal.height,
  texts: [...svg.querySelectorAll("text")].map((t) => {
    const b = t.getBBox(), m = t.getCTM(), s = svg.getCTM().inverse().multiply(m);
    const corners = [[b.x, b.y], [b.x + b.width, b.y], [b.x + b.width, b.y + b.height],
                     [b.x, b.y + b.height]];
    return {text: t.textContent,
            corners: corners.map(([x, y]) => [s.a * x + s.c * y + s.e, s.b * x + s.d * y + s.f])};
  }),
}));
const out = document.createElement("pre");
out.id = "vramfit-measure";
out.textContent = JSON.stringify({height: document.documentElement.scrollHeight, svgs});
document.body.appendChild(out);
</script>
"""
_RESULT = re.compile(r'<pre id="vramfit-measure">(.*?)</pre>', re.DOTALL)


def _axes(corners: tuple[Point, ...]) -> list[Point]:
    out = []
    for i, (x1, y1) in enumerate(corners):
        x2, y2 = corners[(i + 1) % len(corners)]
        length = math.hypot(x2 - x1, y2 - y1) or 1.0
        out.append((-(y2 - y1) / length, (x2 - x1) / length))
    return out


def overlap(a: tuple[Point, ...], b: tuple[Point, ...], slack: float = 0.5) -> bool:
    """Whether two convex polygons overlap by more than ``slack`` pixels (separating axes)."""
    for ax, ay in _axes(a) + _axes(b):
        pa = [x * ax + y * ay for x, y in a]
        pb = [x * ax + y * ay for x, y in b]
        if max(pa) - slack <= min(pb) or max(pb) - slack <= min(pa):
            return False
    return True


@dataclass(frozen=True, slots=True)
class SvgText:
    """One piece of text of an SVG, and the corners of its box in the browser."""

    text: str
    corners: tuple[Point, ...]


@dataclass(frozen=True, slots=True)
class SvgLayout:
    """One SVG of a page as the browser laid it out."""

    width: float
    height: float
    texts: tuple[SvgText, ...]

    def problems(self, slack: float = 0.5) -> list[str]:
        """Every pair of overlapping texts, and every text that leaves the picture."""
        out = []
        for i, a in enumerate(self.texts):
            for b in self.texts[i + 1 :]:
                if overlap(a.corners, b.corners, slack):
                    out.append(f"{a.text!r} overlaps {b.text!r}")
            xs, ys = [p[0] for p in a.corners], [p[1] for p in a.corners]
            if min(xs) < -slack or min(ys) < -slack:
                out.append(f"{a.text!r} leaves the picture at the left or top")
            if max(xs) > self.width + slack or max(ys) > self.height + slack:
                out.append(f"{a.text!r} leaves the {self.width:.0f}x{self.height:.0f} picture")
        return out


@dataclass(frozen=True, slots=True)
class Page:
    """A page as the browser laid it out: its height and its SVGs."""

    height: int
    svgs: tuple[SvgLayout, ...]


def chromium() -> str:
    """The Chromium executable; the tests need it."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path is not None, "chromium is required (make chromium installs it)"
    return path


def _run(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    cmd = [
        chromium(),
        "--headless",
        "--no-sandbox",  # root in containers; the pages are our own files
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def measure(page: Path, work: Path) -> Page:
    """Lay ``page`` out in Chromium at ``WIDTH`` pixels and read back its height and the box of
    every SVG text. ``work`` holds the measuring copy and the browser profile."""
    copy = work / f"{page.stem}.measure.html"
    copy.write_text(page.read_text().replace("</body>", _MEASURE + "</body>"))
    done = _run(
        [f"--window-size={WIDTH},1000", "--dump-dom", copy.as_uri()], work / "chromium-profile"
    )
    found = _RESULT.search(done.stdout)
    assert found, f"chromium did not lay the page out: {done.stderr[-2000:]}"
    raw = json.loads(html.unescape(found.group(1)))
    return Page(
        height=int(raw["height"]),
        svgs=tuple(
            SvgLayout(
                s["width"],
                s["height"],
                tuple(
                    SvgText(t["text"], tuple((float(x), float(y)) for x, y in t["corners"]))
                    for t in s["texts"]
                ),
            )
            for s in raw["svgs"]
        ),
    )


def screenshot(page: Path, png: Path, height: int, work: Path) -> Path:
    """A screenshot of ``page`` at ``WIDTH`` pixels by ``height`` (the page's, at most
    ``MAX_HEIGHT``); copied into ``$VRAMFIT_SCREENSHOTS`` when set."""
    size = f"--window-size={WIDTH},{min(max(height, 200), MAX_HEIGHT)}"
    done = _run([size, f"--screenshot={png}", page.as_uri()], work / "chromium-profile")
    assert png.is_file() and png.stat().st_size > 0, done.stderr[-2000:]
    if folder := os.environ.get("VRAMFIT_SCREENSHOTS"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, Path(folder) / png.name)
    return png
