"""1s and 7s drawn from their parts, in the forms typefaces give them beyond the training families.

Every training typeface's 1 has a long diagonal flag and its 7 a bar as wide as the digit, so a 1
whose flag is short and level (a geometric sans such as Futura's or Avant Garde's), leaning as an
oblique face leans, is a short-barred 7 to the network. These glyphs span the space between the
two forms on purpose, each side kept to its own: a 1 is a stem with a flag at most a third of its
height across (level to steeply down, or none), sometimes on a foot (a base serif both sides or
one); a 7 is a bar at least half its height across with a stem from its right end to the baseline
(upright to well slanted, straight or bowed), sometimes with a crossbar or a drooping left end.
Strokes 6-20% of the height wide, drawn at 4x and reduced (antialiased like a font's outline),
as ink coverage in [0, 1] like `model.synth.printed.typeset`'s.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

SCALE = 4  # drawn at this multiple of the target height, then reduced
Point = tuple[float, float]


def _stroke(draw: ImageDraw.ImageDraw, points: list[Point], width: float) -> None:
    """A polyline of `width` with round joints and square-ish ends, in the drawing's pixels."""
    w = max(1, round(width))
    draw.line(points, fill=255, width=w, joint="curve")
    r = w / 2
    for x, y in (points[0], points[-1]):  # PIL's line ends flat across its width: a square cap
        draw.rectangle((x - r * 0.9, y - r * 0.9, x + r * 0.9, y + r * 0.9), fill=255)


def one(h: float, rng: np.random.Generator) -> tuple[list[list[Point]], float]:
    """The strokes of a 1 `h` high (y down, baseline at h) and their weight."""
    weight = h * rng.uniform(0.06, 0.2)
    x = h * 0.5
    strokes = [[(x, 0.0), (x, h)]]
    if rng.random() < 0.9:  # the flag: level to steep, 8-33% of the height across
        across = h * rng.uniform(0.08, 0.33)
        drop = across * np.tan(np.radians(rng.uniform(0, 60)))
        strokes.append([(x, weight * 0.3), (x - across, min(drop, h * 0.35) + weight * 0.3)])
    if rng.random() < 0.35:  # a foot, or a base serif each side
        half = h * rng.uniform(0.18, 0.32)
        strokes.append([(x - half, h), (x + half, h)] if rng.random() < 0.8 else [(x - half, h), (x, h)])
    return strokes, weight


def seven(h: float, rng: np.random.Generator) -> tuple[list[list[Point]], float]:
    """The strokes of a 7 `h` high and their weight: its bar 50-80% of the height across."""
    weight = h * rng.uniform(0.06, 0.2)
    bar = h * rng.uniform(0.5, 0.8)
    left = h * 0.2
    top = weight * 0.5
    foot = left + bar * rng.uniform(0.05, 0.7)  # where the stem meets the baseline
    start = (left + bar, top)
    if rng.random() < 0.3:  # bowed: through a point pushed right of the straight line
        mid = ((start[0] + foot) / 2 + h * rng.uniform(0.03, 0.1), h * 0.5)
        stem = [start, mid, (foot, h)]
    else:
        stem = [start, (foot, h)]
    strokes = [[(left, top), start], stem]
    if rng.random() < 0.15:  # a drooping left end of the bar
        strokes[0].insert(0, (left, top + h * rng.uniform(0.08, 0.2)))
    if rng.random() < 0.12:  # the continental crossbar
        y = h * rng.uniform(0.45, 0.6)
        x = start[0] + (foot - start[0]) * (y - top) / (h - top)
        strokes.append([(x - bar * 0.35, y), (x + bar * 0.3, y)])
    return strokes, weight


def glyph_ink(label: int, height: int, rng: np.random.Generator, slant: float = 0.0) -> np.ndarray:
    """A 1 or a 7 `height` px high, leaning right by `slant` (the top moves slant x height), as
    ink coverage in [0, 1] (H, W) cropped to the ink."""
    if label not in (1, 7):
        raise ValueError(f"glyphs draws 1s and 7s, not {label}")
    h = float(height * SCALE)
    strokes, weight = (one if label == 1 else seven)(h, rng)
    pad = h * 0.5
    canvas = Image.new("L", (int(2.5 * h), int(h + 2 * pad)), 0)
    draw = ImageDraw.Draw(canvas)
    for points in strokes:
        lean = [(x + pad + slant * (h - y), y + pad) for x, y in points]
        _stroke(draw, lean, weight)
    ink = np.asarray(canvas.reduce(SCALE), np.float32) / 255
    rows, cols = np.flatnonzero(ink.max(1) > 0), np.flatnonzero(ink.max(0) > 0)
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
