"""Labelled images of whole numbers, for `/predict/number`: `python -m model.synth.realnumbers OUT_DIR`.

The number kinds of `model.synth.realworld`, each written as `<number>_<kind>_<n>.<ext>` (the number's
digits, which may start with 0, are the label `model.evaluate --images` reads):

- `handwritten`: 2-6 MNIST *test* digits (real handwriting, never trained on) as pen strokes,
  each 80-120% of the number's height, gaps of 10-100% of the mean digit width, a baseline
  sloping up to 8 degrees either way; on scanned paper (PNG) or photographed (uneven light,
  noise, blur, a slight rotation, JPEG);
- `printed`: typeset digit by digit in the available fonts, gaps of 10-80% of a digit's width,
  dark on light or light on dark, PNG or JPEG;
- `drawn`: digits as pen strokes (`model.synth.strokes.DIGITS`: a 4 and a 5 in two strokes) on a
  transparent 840x280 canvas, as the page sends them;
- `touching`: two handwritten digits moved together until their strokes touch (a stretch,
  reported on its own);
- `fonts`: printed in typefaces never trained or tuned on (`model.synth.printed`'s held-out
  families), 16-200 px high, letter spacing from loose to tight, PNG or JPEG;
- `fonts-touching`: two digits of those faces set so close that they touch or overlap.

Seeded; nothing downloaded. Needs scipy, as `model.synth.realworld` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from model.synth import printed, realworld
from model.synth.cli import main as cli
from model.synth.realworld import _jpeg, _png, _stroke_mask
from model.synth.strokes import DIGITS, pen

KINDS = ("handwritten", "printed", "drawn", "touching", "fonts", "fonts-touching")
#: Digits in a number (inclusive).
LENGTHS = (2, 6)
#: The page's canvas, and the drawn kind's.
CANVAS = (840, 280)


def _layout(widths: list[int], heights: list[int], gaps: list[int], slope: float, rng: np.random.Generator
            ) -> tuple[list[tuple[int, int]], int, int]:  # fmt: skip
    """Top-left corners of digits placed left to right with `gaps`, their bottoms on a line of
    `slope` (+-5% of the height jitter), inside a margin; and the page's width and height."""
    tallest = max(heights)
    margin = int(tallest * rng.uniform(0.2, 0.8))
    x, lefts, drops = margin, [], []
    for w, gap in zip(widths, [0, *gaps], strict=True):
        x += gap
        lefts.append(x)
        drops.append(x * slope + rng.uniform(-0.05, 0.05) * tallest)
        x += w
    low = min(drops)
    corners = [(left, int(margin + tallest + d - low) - h) for left, d, h in zip(lefts, drops, heights, strict=True)]
    return corners, x + margin, int(2 * margin + tallest + max(drops) - low) + 1


def _masks(digits: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    height = int(rng.integers(40, 160))
    return [_stroke_mask(d, max(12, int(height * rng.uniform(0.8, 1.2))), rng) for d in digits]


def make_handwritten(digits: list[np.ndarray], rng: np.random.Generator, touch: bool = False) -> tuple[bytes, str]:
    masks = _masks(digits, rng)
    widths, heights = [m.shape[1] for m in masks], [m.shape[0] for m in masks]
    mean = float(np.mean(widths))
    if touch:  # the second digit moved left until its strokes meet the first's
        gaps = [-int(mean * rng.uniform(0.05, 0.25))]
    else:
        gaps = [math.ceil(mean * rng.uniform(0.1, 1.0)) for _ in masks[1:]]
    slope = math.tan(math.radians(rng.uniform(-8, 8)))
    corners, w, h = _layout(widths, heights, gaps, slope, rng)
    ink = np.zeros((h + 1, w + 1), dtype=np.float32)
    for (x, y), m in zip(corners, masks, strict=True):
        region = ink[y : y + m.shape[0], x : x + m.shape[1]]
        np.maximum(region, m[: region.shape[0], : region.shape[1]], out=region)
    if rng.random() < 0.5:  # scanned: even paper, PNG
        dark, white = rng.uniform(0, 0.3), rng.uniform(0.85, 1.0)
        return _png(Image.fromarray(((white - (white - dark) * ink) * 255).astype(np.uint8), "L"))
    hh, ww = ink.shape  # photographed: uneven light, tinted, noise, rotated a little, blurred, JPEG
    yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
    light = 0.75 + 0.2 * (xx / ww) * rng.uniform(-1, 1) + 0.15 * (yy / hh) * rng.uniform(-1, 1)
    dark = rng.uniform(0.05, 0.35)
    gray = light * (1 - (1 - dark) * ink)
    rgb = gray[..., None] * np.array([1.0, rng.uniform(0.93, 1.0), rng.uniform(0.8, 1.0)], dtype=np.float32)
    rgb += rng.normal(0, 0.03, rgb.shape).astype(np.float32)
    img = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8), "RGB")
    img = img.rotate(rng.uniform(-3, 3), Image.Resampling.BILINEAR, expand=True, fillcolor=img.getpixel((0, 0)))
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    return _jpeg(img, int(rng.integers(60, 92)))


def make_printed(number: str, rng: np.random.Generator, fonts: list[Path | None]) -> tuple[bytes, str]:
    size = int(rng.integers(24, 120))
    path = fonts[int(rng.integers(len(fonts)))]
    font = ImageFont.truetype(str(path), size) if path else ImageFont.load_default(size)
    boxes = [font.getbbox(c) for c in number]
    widths = [int(b[2] - b[0]) for b in boxes]
    gaps = [math.ceil(max(widths) * rng.uniform(0.1, 0.8)) for _ in number[1:]]
    margin = int(size * rng.uniform(0.2, 1.0))
    width = sum(widths) + sum(gaps) + 2 * margin
    height = size + 2 * margin
    paper, ink = int(rng.integers(215, 256)), int(rng.integers(0, 80))
    if rng.random() < 0.25:
        paper, ink = 255 - paper, 255 - ink
    img = Image.new("L", (width, height), paper)
    draw = ImageDraw.Draw(img)
    x = margin
    for c, box, w, gap in zip(number, boxes, widths, [0, *gaps], strict=True):
        x += gap
        draw.text((x - int(box[0]), margin), c, fill=ink, font=font)
        x += w
    return _jpeg(img, int(rng.integers(70, 95))) if rng.random() < 0.3 else _png(img)


def make_drawn(number: str, rng: np.random.Generator) -> tuple[bytes, str]:
    scale = 2  # drawn large, then reduced: antialiased edges, as a browser's
    cw, ch = CANVAS
    canvas = Image.new("L", (cw * scale, ch * scale), 0)
    draw = ImageDraw.Draw(canvas)
    height = rng.uniform(0.35, 0.75) * ch
    widths = [height * rng.uniform(0.45, 0.7) * (0.5 if c == "1" else 1.0) for c in number]
    mean = float(np.mean(widths))
    gaps = [mean * rng.uniform(0.25, 0.8) for _ in number[1:]]
    width = int(rng.integers(4, 16))
    total = sum(widths) + sum(gaps) + width * len(number)
    if total > 0.95 * cw:  # fit the number into the canvas
        shrink = 0.95 * cw / total
        height, widths, gaps = height * shrink, [w * shrink for w in widths], [g * shrink for g in gaps]
        total = 0.95 * cw
    x = rng.uniform(0.02 * cw, cw - total)
    top = rng.uniform(0.05 * ch, 0.95 * ch - height)
    slope = math.tan(math.radians(rng.uniform(-6, 6)))
    for c, w, gap in zip(number, widths, [0.0, *gaps], strict=True):
        x += gap
        y = min(max(top + (x - cw / 2) * slope, 0.0), ch - height)
        h = height * rng.uniform(0.9, 1.1)
        pen(draw, DIGITS[c], (x * scale, y * scale, w * scale, h * scale), width * scale, rng)
        x += w + width
    alpha = np.asarray(canvas.resize(CANVAS, Image.Resampling.BOX))
    rgba = np.zeros((ch, cw, 4), dtype=np.uint8)
    rgba[..., :3] = (17, 17, 17) if rng.random() < 0.7 else tuple(int(v) for v in rng.integers(0, 256, 3))
    rgba[..., 3] = alpha
    return _png(Image.fromarray(rgba, "RGBA"))


def canvas_png(number: str, seed: int = 7) -> bytes:
    """`number` written on the page's transparent canvas, digits 140 px tall and 180 px apart, as a
    hand draws them (examples/number.png, `bench/latency.py --numbers`)."""
    rng = np.random.default_rng(seed)
    alpha = Image.new("L", CANVAS, 0)
    draw = ImageDraw.Draw(alpha)
    for k, c in enumerate(number):
        pen(draw, DIGITS[c], (60 + 180 * k, 70, 90, 140), 20, rng)
    rgba = Image.new("RGBA", CANVAS, (17, 17, 17, 0))
    rgba.putalpha(alpha)
    return _png(rgba)[0]


def generate(out: Path, per_kind: int = 100, seed: int = 0, data_dir: str | Path | None = None) -> int:
    """Write `per_kind` numbers of each kind into `out`; return how many were written."""
    rng, images, labels, fonts = realworld.start(out, seed, data_dir)

    def pick(n: int) -> tuple[list[np.ndarray], str]:
        at = rng.integers(len(images), size=n)
        return [images[i] for i in at], "".join(str(int(labels[i])) for i in at)

    def random_number() -> str:
        return "".join(str(int(d)) for d in rng.integers(10, size=int(rng.integers(LENGTHS[0], LENGTHS[1] + 1))))

    def handwritten(touch: bool) -> tuple[str, tuple[bytes, str]]:
        digits, label = pick(2 if touch else int(rng.integers(LENGTHS[0], LENGTHS[1] + 1)))
        return label, make_handwritten(digits, rng, touch)

    def unseen(number: str, spacing: tuple[float, float]) -> tuple[str, tuple[bytes, str]]:
        return number, printed.printed(number, rng, True, spacing, 16)

    makers: dict[str, Callable[[], tuple[str, tuple[bytes, str]]]] = {
        "handwritten": lambda: handwritten(False),
        "printed": lambda: (n := random_number(), make_printed(n, rng, fonts)),
        "drawn": lambda: (n := random_number(), make_drawn(n, rng)),
        "touching": lambda: handwritten(True),
        "fonts": lambda: unseen(random_number(), printed.LOOSE if rng.random() < 0.5 else printed.TIGHT),
        "fonts-touching": lambda: unseen(random_number()[:2], printed.TOUCHING),
    }
    n = 0
    for kind, make in makers.items():
        for k in range(per_kind):
            label, (data, ext) = make()
            (out / f"{label}_{kind}_{k:04d}.{ext}").write_bytes(data)
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    """`python -m model.synth.realnumbers OUT_DIR [--per-kind N] [--seed S] [--data-dir D]`."""
    return cli(argv, generate, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
