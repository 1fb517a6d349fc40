"""Digits of seven-segment displays (meters, clocks, calculators, LED counters), a style MNIST lacks:
`python -m model.synth.segments OUT_DIR --count N --seed S`, written as `<digit>_segments_<n>.png|jpg`
(the name `model.evaluate --images` reads).

Each digit is drawn from its segments as bevelled bars with gaps between them, at a random size,
slant, bar thickness and gap, dark on a light panel or lit on a dark one, sometimes with the unlit
segments faintly visible, blurred a little and saved as PNG or JPEG. The shipped checkpoint reads
many of them wrong (docs/feedback.md): this is the style of the feedback loop's demonstration.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

#: The lit segments of each digit: a top, b top right, c bottom right, d bottom, e bottom left, f top
#: left, g middle. 6, 7 and 9 have their common variants (with and without the tail bar).
SEGMENTS = {
    0: ("abcdef",),
    1: ("bc",),
    2: ("abged",),
    3: ("abgcd",),
    4: ("fgbc",),
    5: ("afgcd",),
    6: ("afgedc", "fgedc"),
    7: ("abc", "fabc"),
    8: ("abcdefg",),
    9: ("abcdfg", "abcfg"),
}


def _bars(w: float, h: float, t: float, gap: float) -> dict[str, tuple[tuple[float, float], tuple[float, float]]]:
    """Each segment's two end points, in a w x h box (y down)."""
    m = h / 2
    return {
        "a": ((t / 2 + gap, t / 2), (w - t / 2 - gap, t / 2)),
        "g": ((t / 2 + gap, m), (w - t / 2 - gap, m)),
        "d": ((t / 2 + gap, h - t / 2), (w - t / 2 - gap, h - t / 2)),
        "f": ((t / 2, t / 2 + gap), (t / 2, m - gap)),
        "b": ((w - t / 2, t / 2 + gap), (w - t / 2, m - gap)),
        "e": ((t / 2, m + gap), (t / 2, h - t / 2 - gap)),
        "c": ((w - t / 2, m + gap), (w - t / 2, h - t / 2 - gap)),
    }


def _bar(p: tuple[float, float], q: tuple[float, float], t: float) -> list[tuple[float, float]]:
    """A bar from p to q of thickness t with pointed (bevelled) ends, as a hexagon."""
    (x0, y0), (x1, y1) = p, q
    dx, dy = x1 - x0, y1 - y0
    length = max((dx * dx + dy * dy) ** 0.5, 1e-6)
    ux, uy = dx / length, dy / length
    nx, ny = -uy * t / 2, ux * t / 2
    bevel = min(t / 2, length / 2)
    a = (x0 + ux * bevel, y0 + uy * bevel)
    b = (x1 - ux * bevel, y1 - uy * bevel)
    return [(x0, y0), (a[0] + nx, a[1] + ny), (b[0] + nx, b[1] + ny), (x1, y1), (b[0] - nx, b[1] - ny),
            (a[0] - nx, a[1] - ny)]  # fmt: skip


def draw(digit: int, rng: np.random.Generator) -> Image.Image:
    """One seven-segment digit on its panel, as an RGB image."""
    lit = SEGMENTS[digit][int(rng.integers(len(SEGMENTS[digit])))]
    h = float(rng.uniform(40, 160))
    w = h * float(rng.uniform(0.45, 0.62))
    t = h * float(rng.uniform(0.07, 0.15))
    gap = t * float(rng.uniform(0.1, 0.6))
    slant = float(rng.uniform(0, 0.2))  # x shifts by slant * (h - y)
    margin = int(h * rng.uniform(0.15, 0.5))
    size = (int(w + slant * h) + 2 * margin, int(h) + 2 * margin)
    dark_panel = rng.random() < 0.4
    if dark_panel:
        panel = tuple(int(v) for v in rng.integers(0, 60, 3))
        ink = tuple(int(v) for v in rng.choice([(255, 40, 30), (80, 255, 90), (250, 250, 250), (255, 170, 40)]))
    else:
        base = int(rng.integers(150, 245))
        panel = (base - int(rng.integers(0, 30)), base, base - int(rng.integers(0, 40)))
        ink = tuple(int(v) for v in rng.integers(0, 70, 3))
    img = Image.new("RGB", size, panel)
    pen = ImageDraw.Draw(img)
    ghost = rng.random() < 0.3
    for name, (p, q) in _bars(w, h, t, gap).items():
        if name not in lit and not ghost:
            continue
        pts = [(margin + x + slant * (h - y), margin + y) for x, y in _bar(p, q, t)]
        colour = ink if name in lit else tuple(int(0.85 * a + 0.15 * b) for a, b in zip(panel, ink, strict=True))
        pen.polygon(pts, fill=colour)
    if rng.random() < 0.6:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.5))))
    return img


def write(folder: Path, count: int, seed: int) -> list[Path]:
    """`count` digits, the ten alike, as files in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = []
    for n in range(count):
        digit = n % 10
        img = draw(digit, rng)
        buf = io.BytesIO()
        jpeg = rng.random() < 0.3
        img.save(buf, "JPEG", quality=int(rng.integers(50, 95))) if jpeg else img.save(buf, "PNG")
        path = folder / f"{digit}_segments_{n:05d}.{'jpg' if jpeg else 'png'}"
        path.write_bytes(buf.getvalue())
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m model.synth.segments", description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--count", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(f"wrote {len(write(args.out, args.count, args.seed))} files to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
