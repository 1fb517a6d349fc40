"""Letters, doodles and digits as pen strokes in a unit box (x right, y down), and drawing them as a
hand on the page's canvas would: wobbling, tilted, with round pen ends (`model.synth.negatives` draws its
`drawn` kind with the letters and doodles, `model.synth.realnumbers` its drawn numbers with the digits)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

Stroke = list[tuple[float, float]]

#: Capital letters as pen strokes in a unit box (x right, y down).
LETTERS: dict[str, list[Stroke]] = {
    "A": [[(0.1, 1), (0.5, 0), (0.9, 1)], [(0.28, 0.6), (0.72, 0.6)]],
    "E": [[(0.85, 0), (0.15, 0), (0.15, 1), (0.85, 1)], [(0.15, 0.5), (0.7, 0.5)]],
    "F": [[(0.85, 0), (0.15, 0), (0.15, 1)], [(0.15, 0.5), (0.7, 0.5)]],
    "H": [[(0.15, 0), (0.15, 1)], [(0.85, 0), (0.85, 1)], [(0.15, 0.5), (0.85, 0.5)]],
    "K": [[(0.15, 0), (0.15, 1)], [(0.85, 0), (0.15, 0.55)], [(0.4, 0.38), (0.85, 1)]],
    "M": [[(0.1, 1), (0.1, 0), (0.5, 0.6), (0.9, 0), (0.9, 1)]],
    "N": [[(0.15, 1), (0.15, 0), (0.85, 1), (0.85, 0)]],
    "R": [
        [(0.15, 1), (0.15, 0), (0.7, 0), (0.85, 0.15), (0.85, 0.35), (0.7, 0.5), (0.15, 0.5)],
        [(0.45, 0.5), (0.85, 1)],
    ],
    "V": [[(0.1, 0), (0.5, 1), (0.9, 0)]],
    "W": [[(0.05, 0), (0.28, 1), (0.5, 0.35), (0.72, 1), (0.95, 0)]],
    "X": [[(0.1, 0), (0.9, 1)], [(0.9, 0), (0.1, 1)]],
    "Y": [[(0.1, 0), (0.5, 0.5), (0.9, 0)], [(0.5, 0.5), (0.5, 1)]],
    "P": [[(0.15, 1), (0.15, 0), (0.7, 0), (0.85, 0.15), (0.85, 0.35), (0.7, 0.5), (0.15, 0.5)]],
    "U": [[(0.15, 0), (0.15, 0.75), (0.3, 0.95), (0.5, 1), (0.7, 0.95), (0.85, 0.75), (0.85, 0)]],
    "C": [
        [(0.85, 0.15), (0.65, 0), (0.35, 0), (0.15, 0.2), (0.1, 0.5), (0.15, 0.8), (0.35, 1), (0.65, 1), (0.85, 0.85)]
    ],
    "L": [[(0.2, 0), (0.2, 1), (0.85, 1)]],
}


def _digits() -> dict[str, list[Stroke]]:
    """The ten digits as a hand draws them; a 4 and a 5 in two strokes, as many people write them."""
    eight = [(0.5 + 0.3 * math.sin(t) * (1 if t < math.pi else 0.85), 0.27 - 0.27 * math.cos(t)) for t in
             np.linspace(0, 2 * math.pi, 24)]  # fmt: skip
    return {
        "0": [_circle(0.5, 0.5, 0.5, -math.pi / 2, 1.5 * math.pi, 28)],
        "1": [[(0.3, 0.2), (0.55, 0), (0.55, 1)]],
        "2": [[(0.15, 0.25), (0.3, 0.05), (0.6, 0), (0.85, 0.2), (0.8, 0.45), (0.15, 1), (0.9, 1)]],
        "3": [
            [
                (0.15, 0.1),
                (0.5, 0),
                (0.85, 0.15),
                (0.8, 0.38),
                (0.45, 0.5),
                (0.85, 0.62),
                (0.85, 0.85),
                (0.5, 1),
                (0.15, 0.9),
            ]
        ],
        "4": [[(0.55, 0), (0.1, 0.65), (0.9, 0.65)], [(0.65, 0.25), (0.65, 1)]],
        "5": [
            [(0.85, 0), (0.25, 0)],
            [(0.25, 0), (0.2, 0.45), (0.55, 0.38), (0.85, 0.58), (0.82, 0.88), (0.5, 1), (0.15, 0.9)],
        ],
        "6": [
            [
                (0.75, 0),
                (0.35, 0.28),
                (0.15, 0.65),
                (0.25, 0.95),
                (0.55, 1),
                (0.8, 0.8),
                (0.72, 0.55),
                (0.45, 0.5),
                (0.2, 0.65),
            ]
        ],
        "7": [[(0.1, 0), (0.9, 0), (0.4, 1)]],
        "8": [
            eight
            + [
                (0.5 + 0.35 * math.sin(t), 0.73 - 0.27 * math.cos(t + math.pi))
                for t in np.linspace(0, -2 * math.pi, 24)
            ]
        ],
        "9": [[(0.82, 0.22), (0.5, 0), (0.18, 0.18), (0.25, 0.42), (0.6, 0.45), (0.82, 0.22), (0.75, 0.6), (0.7, 1)]],
    }


def _circle(cx: float, cy: float, r: float, start: float = 0.0, end: float = 2 * math.pi, n: int = 24) -> Stroke:
    return [(cx + r * math.cos(start + (end - start) * k / n), cy + r * math.sin(start + (end - start) * k / n))
            for k in range(n + 1)]  # fmt: skip


def _doodles() -> dict[str, list[Stroke]]:
    star = [(0.5 + 0.45 * math.sin(k * 4 * math.pi / 5), 0.5 - 0.45 * math.cos(k * 4 * math.pi / 5)) for k in range(6)]
    spiral = [(0.5 + 0.045 * t * math.cos(t), 0.5 + 0.045 * t * math.sin(t)) for t in np.linspace(0, 10, 60)]
    heart = [(0.5 + 0.4 * math.sin(t) ** 3, 0.45 - 0.03 * (13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t)
              - math.cos(4 * t))) for t in np.linspace(0, 2 * math.pi, 40)]  # fmt: skip
    squiggle = [(x, 0.5 + 0.25 * math.sin(x * 14)) for x in np.linspace(0.05, 0.95, 50)]
    return {
        "smiley": [
            _circle(0.5, 0.5, 0.45),
            _circle(0.35, 0.38, 0.05),
            _circle(0.65, 0.38, 0.05),
            _circle(0.5, 0.5, 0.27, 0.3, math.pi - 0.3, 12),
        ],
        "star": [star],
        "spiral": [spiral],
        "heart": [heart],
        "house": [
            [(0.15, 0.45), (0.15, 1), (0.85, 1), (0.85, 0.45), (0.15, 0.45), (0.5, 0.05), (0.85, 0.45)],
            [(0.42, 1), (0.42, 0.7), (0.58, 0.7), (0.58, 1)],
        ],
        "squiggle": [squiggle],
        "cross": [[(0.5, 0.05), (0.5, 0.95)], [(0.05, 0.5), (0.95, 0.5)]],
        "arrow": [[(0.05, 0.5), (0.95, 0.5)], [(0.7, 0.25), (0.95, 0.5), (0.7, 0.75)]],
        "sun": [_circle(0.5, 0.5, 0.2)]
        + [
            [(0.5 + 0.27 * math.cos(a), 0.5 + 0.27 * math.sin(a)), (0.5 + 0.45 * math.cos(a), 0.5 + 0.45 * math.sin(a))]
            for a in np.linspace(0, 2 * math.pi, 9)[:-1]
        ],
        "scribble": [],  # random, drawn per image
        "box": [[(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9), (0.1, 0.1)], [(0.1, 0.1), (0.9, 0.9)]],
    }


DOODLES = _doodles()
DIGITS = _digits()


def draw_strokes(strokes: list[Stroke], rng: np.random.Generator, size: int = 280) -> np.ndarray:
    """Strokes in a unit box drawn with a hand's wobble, fitted into a random box of the canvas; alpha
    as uint8 (255 = ink)."""
    scale = 4  # drawn large, then reduced: smooth edges, as a browser's antialiased line
    canvas = Image.new("L", (size * scale, size * scale), 0)
    box = rng.uniform(0.35, 0.85) * size
    aspect = rng.uniform(0.7, 1.3)
    bw, bh = box * min(1.0, aspect), box * min(1.0, 1 / aspect)
    left, top = rng.uniform(0, size - bw), rng.uniform(0, size - bh)
    width = int(rng.integers(6, 26)) * scale
    pen(ImageDraw.Draw(canvas), strokes, (left * scale, top * scale, bw * scale, bh * scale), width, rng)
    return np.asarray(canvas.resize((size, size), Image.Resampling.BOX))


def pen(
    draw: ImageDraw.ImageDraw,
    strokes: list[Stroke],
    box: tuple[float, float, float, float],
    width: int,
    rng: np.random.Generator,
) -> None:
    """Strokes in a unit box drawn into `box` (left, top, width, height) with a round pen of `width`
    pixels, tilted and wobbling a little as a hand does."""
    left, top, bw, bh = box
    tilt = rng.uniform(-0.25, 0.25)
    for stroke in strokes:
        pts = []
        for x, y in stroke:
            x, y = x + tilt * (0.5 - y), y
            jx, jy = rng.normal(0, 0.015, 2)
            pts.append((left + (x + jx) * bw, top + (y + jy) * bh))
        draw.line(pts, fill=255, width=width, joint="curve")
        r = width // 2
        for px, py in (pts[0], pts[-1]):
            draw.ellipse((px - r, py - r, px + r, py + r), fill=255)


def scribble(rng: np.random.Generator) -> list[Stroke]:
    points = rng.uniform(0.05, 0.95, (int(rng.integers(5, 14)), 2))
    return [[(float(x), float(y)) for x, y in points]]
