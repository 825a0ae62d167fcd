"""The boxes the text of an SVG chart takes, read back from the SVG itself, and whether two
overlap: each ``<text>`` element's box from its position, size, anchor and rotation, its width
by the reports' text metrics; boxes as convex polygons, compared as the browser test does."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from planner.reports.text_metrics import ASCENT, DESCENT, text_width
from tests.browser import overlap

NS = "{http://www.w3.org/2000/svg}"
ROTATE = re.compile(r"rotate\(\s*([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s*\)")

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Box:
    """The corners of one piece of text, in the picture's coordinates."""

    text: str
    corners: tuple[Point, Point, Point, Point]


def _rotated(p: Point, degrees: float, cx: float, cy: float) -> Point:
    a = math.radians(degrees)
    x, y = p[0] - cx, p[1] - cy
    return (cx + x * math.cos(a) - y * math.sin(a), cy + x * math.sin(a) + y * math.cos(a))


def text_boxes(svg: str) -> tuple[list[Box], tuple[float, float]]:
    """Every text element's box, and the picture's width and height."""
    root = ET.fromstring(svg)
    _, _, width, height = (float(v) for v in root.attrib["viewBox"].split())
    boxes = []
    for t in root.iter(f"{NS}text"):
        text = t.text or ""
        x, y, size = float(t.attrib["x"]), float(t.attrib["y"]), float(t.attrib["font-size"])
        w = text_width(text, size, bold=t.attrib.get("font-weight") == "bold")
        anchor = t.attrib.get("text-anchor", "start")
        x0 = {"start": x, "middle": x - w / 2, "end": x - w}[anchor]
        top, bottom = y - ASCENT * size, y + DESCENT * size
        corners: list[Point] = [(x0, top), (x0 + w, top), (x0 + w, bottom), (x0, bottom)]
        if m := ROTATE.search(t.attrib.get("transform", "")):
            deg, cx, cy = (float(g) for g in m.groups())
            corners = [_rotated(p, deg, cx, cy) for p in corners]
        boxes.append(Box(text, (corners[0], corners[1], corners[2], corners[3])))
    return boxes, (width, height)


def layout_problems(svg: str) -> list[str]:
    """Every pair of overlapping text boxes, and every box that leaves the picture."""
    boxes, (width, height) = text_boxes(svg)
    problems = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            if overlap(a.corners, b.corners):
                problems.append(f"{a.text!r} overlaps {b.text!r}")
        xs = [p[0] for p in a.corners]
        ys = [p[1] for p in a.corners]
        if min(xs) < -0.5 or min(ys) < -0.5 or max(xs) > width + 0.5 or max(ys) > height + 0.5:
            problems.append(f"{a.text!r} leaves the {width:.0f}x{height:.0f} picture")
    return problems
