"""Images that hold no digit, for teaching and measuring refusal: `python -m model.synth.negatives OUT_DIR`.

Seven kinds, seeded, built in code (no downloaded or bundled image sets), each written as
`x_<kind>_<n>.png|jpg` (`x`: not a digit, the label `model.evaluate --images` reads):

- `typed`: letters and symbols typeset in the fonts available, in many sizes, weights, slants and
  positions, dark on light or light on dark;
- `drawn`: capital letters and doodles (smileys, stars, spirals, hearts, houses, squiggles,
  crosses, arrows) drawn as strokes on a transparent 280x280 canvas, as the page sends them;
- `texture`: smooth random textures (low-pass noise, a few octaves), wood-grain and fabric-like
  stripes, checkerboards;
- `gradient`: linear and radial grey or colour gradients;
- `ruled`: ruled, squared and dotted paper, blank;
- `noise`: salt-and-pepper, Gaussian and speckle noise on paper, at many levels;
- `scene`: compositions of filled and outlined shapes (rectangles, ellipses, polygons, lines) in
  colour, like a cropped photo of things, with blur and JPEG.

Letters and symbols that people write as digits are left out of `typed` and `drawn` (O o Q D for
0; I l i j | ! for 1; Z z for 2; S s $ for 5; G b for 6; T for 7; B & for 8; g q for 9): a
service cannot refuse them without refusing real digits, and they are not what refusal is for.
"""

from __future__ import annotations

import argparse
import io
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from model.synth.fonts import fonts as _fonts
from model.synth.strokes import DOODLES, LETTERS, draw_strokes, scribble

KINDS = ("typed", "drawn", "texture", "gradient", "ruled", "noise", "scene")

#: Characters typeset as negatives: letters and symbols that no one writes as a digit.
TYPED = "ACEFHKMNPRUVWXYacdefhkmnprtuvwxy#%?@*+=<>{}[]~^"


def _save(img: Image.Image, rng: np.random.Generator, jpeg: float = 0.3) -> tuple[bytes, str]:
    buf = io.BytesIO()
    if rng.random() < jpeg:
        img.convert("RGB").save(buf, "JPEG", quality=int(rng.integers(40, 95)))
        return buf.getvalue(), "jpg"
    img.save(buf, "PNG")
    return buf.getvalue(), "png"


def _paper(
    rng: np.random.Generator, size: tuple[int, int]
) -> tuple[Image.Image, tuple[int, int, int], tuple[int, int, int]]:
    """A light background and a dark ink colour, or the other way round."""

    def colour(low: int, high: int) -> tuple[int, int, int]:
        r, g, b = (int(v) for v in rng.integers(low, high, 3))
        return r, g, b

    light = colour(200, 256) if rng.random() < 0.5 else (255, 255, 255)
    dark = colour(0, 90) if rng.random() < 0.5 else (0, 0, 0)
    if rng.random() < 0.2:
        light, dark = dark, light
    return Image.new("RGB", size, light), dark, light


def make_typed(rng: np.random.Generator, fonts: list[Path | None]) -> tuple[bytes, str]:
    w, h = int(rng.integers(40, 400)), int(rng.integers(40, 400))
    img, ink, _ = _paper(rng, (w, h))
    char = TYPED[int(rng.integers(len(TYPED)))]
    font_path = fonts[int(rng.integers(len(fonts)))]
    size = int(rng.uniform(0.4, 0.9) * min(w, h))
    font = ImageFont.truetype(str(font_path), size) if font_path else ImageFont.load_default(size)
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = draw.textbbox((0, 0), char, font=font)
    x = int(rng.integers(0, max(1, int(w - (right - left))))) - int(left)
    y = int(rng.integers(0, max(1, int(h - (bottom - top))))) - int(top)
    draw.text((x, y), char, fill=ink, font=font)
    if rng.random() < 0.3:
        img = img.rotate(
            float(rng.uniform(-15, 15)), resample=Image.Resampling.BILINEAR, fillcolor=img.getpixel((0, 0))
        )
    return _save(img, rng)


def make_drawn(rng: np.random.Generator) -> tuple[bytes, str]:
    if rng.random() < 0.5:
        strokes = LETTERS[list(LETTERS)[int(rng.integers(len(LETTERS)))]]
    else:
        name = list(DOODLES)[int(rng.integers(len(DOODLES)))]
        strokes = DOODLES[name] or scribble(rng)
    alpha = draw_strokes(strokes, rng)
    rgba = np.zeros((*alpha.shape, 4), dtype=np.uint8)
    rgba[..., :3] = (0, 0, 0) if rng.random() < 0.6 else tuple(int(c) for c in rng.integers(0, 256, 3))
    rgba[..., 3] = alpha
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    return buf.getvalue(), "png"


def _smooth_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Octaves of low-pass noise, in [0, 1]."""
    out = np.zeros((h, w), dtype=np.float32)
    for octave in range(int(rng.integers(1, 5))):
        cells = 2 ** (octave + int(rng.integers(1, 4)))
        small = rng.random((cells, cells)).astype(np.float32)
        layer = np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
        out += layer / (octave + 1)
    out -= out.min()
    return out / max(float(out.max()), 1e-6)


def make_texture(rng: np.random.Generator) -> tuple[bytes, str]:
    w, h = int(rng.integers(48, 400)), int(rng.integers(48, 400))
    choice = rng.random()
    if choice < 0.5:
        grey = _smooth_noise(rng, h, w)
    elif choice < 0.8:  # stripes: wood grain, fabric
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        angle, period = rng.uniform(0, math.pi), rng.uniform(3, 40)
        phase = (xx * math.cos(angle) + yy * math.sin(angle)) / period
        grey = 0.5 + 0.5 * np.sin(2 * math.pi * phase + 3 * _smooth_noise(rng, h, w))
    else:  # a checkerboard
        cell = int(rng.integers(3, 60))
        yy, xx = np.mgrid[0:h, 0:w]
        grey = (((yy // cell) + (xx // cell)) % 2).astype(np.float32)
    lo, hi = sorted(rng.uniform(0, 1, 2))
    grey = lo + (hi - lo + 0.2) * grey
    rgb = np.stack([np.clip(grey * rng.uniform(0.6, 1.0), 0, 1) for _ in range(3)], axis=-1)
    return _save(Image.fromarray((rgb * 255).astype(np.uint8), "RGB"), rng)


def make_gradient(rng: np.random.Generator) -> tuple[bytes, str]:
    w, h = int(rng.integers(28, 500)), int(rng.integers(28, 500))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.6:
        angle = rng.uniform(0, 2 * math.pi)
        t = xx / w * math.cos(angle) + yy / h * math.sin(angle)
    else:
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        t = np.hypot(xx - cx, yy - cy) / max(w, h)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    if rng.random() < 0.5:  # grey
        a, b = np.repeat(a[:1], 3), np.repeat(b[:1], 3)
    rgb = a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]
    return _save(Image.fromarray(rgb.astype(np.uint8), "RGB"), rng)


def make_ruled(rng: np.random.Generator) -> tuple[bytes, str]:
    w, h = int(rng.integers(100, 600)), int(rng.integers(100, 600))
    img, _, paper = _paper(rng, (w, h))
    img = Image.new("RGB", (w, h), paper if sum(paper) > 384 else (250, 250, 245))
    draw = ImageDraw.Draw(img)
    line = tuple(int(v) for v in rng.integers(100, 220, 3))
    gap, width = int(rng.integers(12, 40)), int(rng.integers(1, 3))
    style = rng.random()
    offset = int(rng.integers(0, gap))
    if style < 0.5:  # ruled, perhaps with a margin
        for y in range(offset, h, gap):
            draw.line([(0, y), (w, y)], fill=line, width=width)
        if rng.random() < 0.5:
            x = int(rng.integers(20, max(21, w // 4)))
            draw.line([(x, 0), (x, h)], fill=(220, 80, 80), width=width)
    elif style < 0.8:  # squared
        for y in range(offset, h, gap):
            draw.line([(0, y), (w, y)], fill=line, width=width)
        for x in range(offset, w, gap):
            draw.line([(x, 0), (x, h)], fill=line, width=width)
    else:  # dotted
        for y in range(offset, h, gap):
            for x in range(offset, w, gap):
                draw.ellipse((x - width, y - width, x + width, y + width), fill=line)
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.5))))
    return _save(img, rng)


def make_noise(rng: np.random.Generator) -> tuple[bytes, str]:
    w, h = int(rng.integers(28, 400)), int(rng.integers(28, 400))
    base = rng.uniform(0.3, 1.0)
    level = rng.uniform(0.02, 0.5)
    kind = rng.random()
    if kind < 0.4:  # Gaussian
        grey = base + rng.normal(0, level, (h, w))
    elif kind < 0.7:  # salt and pepper
        grey = np.full((h, w), base)
        flips = rng.random((h, w))
        grey[flips < level / 4] = 0
        grey[flips > 1 - level / 4] = 1
    else:  # speckle
        grey = base * (1 + rng.normal(0, level, (h, w)))
    return _save(Image.fromarray((np.clip(grey, 0, 1) * 255).astype(np.uint8), "L"), rng)


def make_scene(rng: np.random.Generator) -> tuple[bytes, str]:
    w, h = int(rng.integers(64, 640)), int(rng.integers(64, 640))
    top = rng.integers(0, 256, 3)
    bottom = rng.integers(0, 256, 3)
    t = np.linspace(0, 1, h)[:, None, None]
    sky = (top * (1 - t) + bottom * t).repeat(w, axis=1).astype(np.uint8)
    img = Image.fromarray(sky, "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 15))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x0, y0 = rng.uniform(-0.2, 1.0) * w, rng.uniform(-0.2, 1.0) * h
        x1, y1 = x0 + rng.uniform(0.05, 0.6) * w, y0 + rng.uniform(0.05, 0.6) * h
        shape = rng.random()
        if shape < 0.35:
            draw.rectangle((x0, y0, x1, y1), fill=colour if rng.random() < 0.7 else None, outline=colour)
        elif shape < 0.7:
            draw.ellipse((x0, y0, x1, y1), fill=colour if rng.random() < 0.7 else None, outline=colour)
        elif shape < 0.85:
            pts = [(float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1))) for _ in range(int(rng.integers(3, 7)))]
            draw.polygon(pts, fill=colour)
        else:
            draw.line([(x0, y0), (x1, y1)], fill=colour, width=int(rng.integers(1, 12)))
    if rng.random() < 0.6:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 3))))
    return _save(img, rng, jpeg=0.7)


def makers(rng: np.random.Generator) -> dict[str, Callable[[], tuple[bytes, str]]]:
    """A maker of each kind, drawing from `rng`: each call gives one image's bytes and extension."""
    fonts = _fonts()
    return {
        "typed": lambda: make_typed(rng, fonts),
        "drawn": lambda: make_drawn(rng),
        "texture": lambda: make_texture(rng),
        "gradient": lambda: make_gradient(rng),
        "ruled": lambda: make_ruled(rng),
        "noise": lambda: make_noise(rng),
        "scene": lambda: make_scene(rng),
    }


def generate(out: Path, per_kind: int = 100, seed: int = 0) -> int:
    """Write `per_kind` images of each kind into `out` as `x_<kind>_<n>.<ext>`; how many were written."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for kind, make in makers(rng).items():
        for k in range(per_kind):
            data, ext = make()
            (out / f"x_{kind}_{k:04d}.{ext}").write_bytes(data)
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--per-kind", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(f"wrote {generate(args.out, args.per_kind, args.seed)} images to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
