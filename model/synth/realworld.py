"""Labelled upload-like images for evaluating the whole path: `python -m model.synth.realworld OUT_DIR`.

Twelve kinds, each written as `<digit>_<kind>_<n>.<ext>` (the name pattern `model.evaluate --images`
reads labels from):

- `ink`: dark pen on white paper, many sizes and positions, thin to thick strokes (PNG);
- `canvas`: strokes on a transparent 280x280 canvas, as a browser drawing exports it (RGBA PNG);
- `photo`: a phone photo of paper: uneven light, noise, blur, tilt, a table edge, JPEG artefacts;
- `printed`: digits typeset in several fonts, weights and slants (PNG);
- `framed`: MNIST digits as people re-upload them: enlarged, inverted, padded, as JPEG;
- `lowres8`, `lowres16`: a coarse scan: reduced to 8..11 or 12..16 pixels a side with 16 or 17
  grey levels, either filling the frame edge to edge or padded as in MNIST, enlarged 4-16x with
  bilinear or nearest resampling, either polarity, PNG or JPEG;
- `faint`: pencil-grey ink on off-white paper, low contrast, unevenly lit, a little noise;
- `blurry`: out of focus, a Gaussian blur of sigma 1-4 px;
- `thin-thick`: extremes of stroke width: hairlines and felt-tip strokes that nearly close loops;
- `table`: a phone photo of a sheet lying askew on a table (wood grain, cloth or an even tone, any
  shade), the sheet 20-90% of the frame, the digit anywhere on it, light falling off, JPEG;
- `fonts`: printed in typefaces never trained or tuned on (`model.synth.printed`'s held-out
  families), 16-200 px high, tinted paper, PNG or JPEG.

Handwritten shapes come from the MNIST *test* set (never trained on); printed ones from fonts.
Needs scipy (the `realworld` extra, part of `dev`), which the service itself does not install.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from scipy import ndimage

from model.data import load_split
from model.synth import printed
from model.synth.cli import main as cli
from model.synth.fonts import fonts as _fonts

KINDS = ("ink", "canvas", "photo", "printed", "framed", "lowres8", "lowres16", "faint", "blurry", "thin-thick", "table",
         "fonts")  # fmt: skip


def _stroke_mask(digit: np.ndarray, height: int, rng: np.random.Generator) -> np.ndarray:
    """An MNIST digit enlarged to `height` px as a pen stroke in [0, 1], of random thickness."""
    img = Image.fromarray(digit).resize((height * 28 // 20, height * 28 // 20), Image.Resampling.BICUBIC)
    level = rng.uniform(0.25, 0.75)  # higher threshold: thinner pen
    soft = np.asarray(img, dtype=np.float32) / 255.0
    mask = np.clip((soft - level) * 8 + 0.5, 0, 1)
    if rng.random() < 0.25:  # a fine pen: erode to a thin line
        mask = ndimage.grey_erosion(mask, size=max(1, height // 25))
    rows, cols = np.nonzero(mask > 0.05)
    cropped: np.ndarray = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return cropped


def _paste(canvas: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> None:
    """Blend `mask` (1 = ink) into `canvas` (ink = 0, paper = 1) at a random place."""
    h, w = mask.shape
    top = int(rng.integers(0, max(1, canvas.shape[0] - h)))
    left = int(rng.integers(0, max(1, canvas.shape[1] - w)))
    region = canvas[top : top + h, left : left + w]
    region *= 1 - mask[: region.shape[0], : region.shape[1]]


def _png(img: Image.Image) -> tuple[bytes, str]:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue(), "png"


def _jpeg(img: Image.Image, quality: int, exif: Image.Exif | None = None) -> tuple[bytes, str]:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality, **({"exif": exif} if exif else {}))
    return buf.getvalue(), "jpg"


def make_ink(digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    w, h = int(rng.integers(80, 900)), int(rng.integers(80, 900))
    height = int(rng.uniform(0.3, 0.9) * min(w, h))
    paper = np.ones((h, w), dtype=np.float32)
    _paste(paper, _stroke_mask(digit, height, rng), rng)
    ink, white = rng.uniform(0, 0.3), rng.uniform(0.85, 1.0)
    gray = ink + (white - ink) * paper
    return _png(Image.fromarray((gray * 255).astype(np.uint8), "L").convert("RGB"))


def make_canvas(digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    size = 280
    alpha = np.zeros((size, size), dtype=np.float32)
    height = int(rng.uniform(0.4, 0.9) * size)
    paper = 1 - alpha
    _paste(paper, _stroke_mask(digit, height, rng), rng)
    alpha = 1 - paper
    colour = (0, 0, 0) if rng.random() < 0.6 else tuple(int(c) for c in rng.integers(0, 256, 3))
    rgba = np.zeros((size, size, 4), dtype=np.uint8)
    rgba[..., :3] = colour
    rgba[..., 3] = (alpha * 255).astype(np.uint8)
    return _png(Image.fromarray(rgba, "RGBA"))


def make_photo(digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    w, h = (int(rng.integers(400, 1400)), int(rng.integers(300, 1000)))
    height = int(rng.uniform(0.3, 0.8) * min(w, h))
    paper = np.ones((h, w), dtype=np.float32)
    _paste(paper, _stroke_mask(digit, height, rng), rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 0.75 + 0.2 * (xx / w) * rng.uniform(-1, 1) + 0.15 * (yy / h) * rng.uniform(-1, 1)
    ink = rng.uniform(0.05, 0.35)
    gray = np.clip(light * (ink + (1 - ink) * paper), 0, 1)
    tint = np.array([1.0, rng.uniform(0.93, 1.0), rng.uniform(0.8, 1.0)], dtype=np.float32)
    rgb = gray[..., None] * tint
    if rng.random() < 0.3:  # the table shows along one edge
        edge = int(rng.uniform(0.03, 0.1) * w)
        rgb[:, :edge] = rng.uniform(0.05, 0.25)
    rgb += rng.normal(0, 0.03, rgb.shape).astype(np.float32)
    img = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8), "RGB")
    img = img.rotate(rng.uniform(-8, 8), Image.Resampling.BILINEAR, fillcolor=img.getpixel((0, 0)))
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    exif = None
    if rng.random() < 0.25:  # camera stored it sideways and says so in EXIF
        img = img.transpose(Image.Transpose.ROTATE_90)
        exif = Image.Exif()
        exif[0x0112] = 6  # orientation: rotate 90 CW to display
    return _jpeg(img, int(rng.integers(50, 92)), exif)


def make_printed(label: int, rng: np.random.Generator, fonts: list[Path | None]) -> tuple[bytes, str]:
    w, h = int(rng.integers(60, 600)), int(rng.integers(60, 600))
    size = int(rng.uniform(0.4, 0.9) * min(w, h))
    font_path = fonts[int(rng.integers(len(fonts)))]
    font = ImageFont.truetype(str(font_path), size) if font_path else ImageFont.load_default(size)
    img = Image.new("L", (w, h), int(rng.integers(215, 256)))
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = (int(v) for v in draw.textbbox((0, 0), str(label), font=font))
    x = int(rng.integers(0, max(1, w - (right - left)))) - left
    y = int(rng.integers(0, max(1, h - (bottom - top)))) - top
    draw.text((x, y), str(label), fill=int(rng.integers(0, 80)), font=font)
    return _png(img)


def make_framed(digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    img = Image.fromarray(digit, "L")
    style = int(rng.integers(4))
    if style == 0:  # enlarged as is, white on black
        img = img.resize((280, 280), Image.Resampling.NEAREST)
    elif style == 1:  # inverted, as a "black on white" version
        img = Image.fromarray(255 - digit, "L").resize((112, 112), Image.Resampling.BILINEAR)
    elif style == 2:  # padded into a larger frame, off-centre
        frame = Image.new("L", (int(rng.integers(40, 120)), int(rng.integers(40, 120))), 0)
        frame.paste(img, (int(rng.integers(0, frame.width - 27)), int(rng.integers(0, frame.height - 27))))
        img = frame
    else:
        return _jpeg(img.resize((200, 200), Image.Resampling.BICUBIC), 75)
    return _png(img.convert("RGB") if rng.random() < 0.5 else img)


def make_lowres(digit: np.ndarray, sides: tuple[int, int], rng: np.random.Generator) -> tuple[bytes, str]:
    """A coarse scan: `digit` reduced to sides[0]..sides[1] px by box filter, 16 or 17 grey levels."""
    if rng.random() < 0.5:  # the longer side filling the frame edge to edge, the aspect kept
        rows, cols = np.nonzero(digit > 0)
        digit = digit[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        h, w = digit.shape
        side = max(h, w)
        frame = np.zeros((side, side), dtype=np.uint8)
        frame[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = digit
        digit = frame
    n = int(rng.integers(sides[0], sides[1] + 1))
    small = np.asarray(Image.fromarray(digit).resize((n, n), Image.Resampling.BOX), dtype=np.float32) / 255
    levels = 16 if rng.random() < 0.5 else 17
    small = np.round(small * (levels - 1)) / (levels - 1)
    if rng.random() < 0.7:  # dark on light, as printed or scanned; else white on black, as stored
        small = 1 - small
    scale = int(rng.integers(4, 17))
    method = Image.Resampling.BILINEAR if rng.random() < 0.5 else Image.Resampling.NEAREST
    img = Image.fromarray((small * 255).round().astype(np.uint8), "L").resize((n * scale, n * scale), method)
    return _jpeg(img, int(rng.integers(70, 95))) if rng.random() < 0.3 else _png(img)


def make_faint(digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    """Pencil: grey ink (140-180) on off-white paper (215-240), lit unevenly, a little grain."""
    w = int(rng.integers(80, 700))
    h = int(w * rng.uniform(0.6, 1.6))
    height = int(rng.uniform(0.35, 0.9) * min(w, h))
    paper = np.ones((h, w), dtype=np.float32)
    _paste(paper, _stroke_mask(digit, height, rng), rng)
    white, ink = rng.uniform(215, 240) / 255, rng.uniform(140, 180) / 255
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 1 + 0.06 * (xx / w - 0.5) * rng.uniform(-1, 1) + 0.06 * (yy / h - 0.5) * rng.uniform(-1, 1)
    gray = light * (ink + (white - ink) * paper) + rng.normal(0, 0.012, (h, w)).astype(np.float32)
    img = Image.fromarray((np.clip(gray, 0, 1) * 255).astype(np.uint8), "L")
    return _jpeg(img, int(rng.integers(80, 95))) if rng.random() < 0.4 else _png(img)


def make_blurry(digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    """Out of focus: a digit 60-250 px tall on paper, then a Gaussian blur of sigma 1-4 px."""
    height = int(rng.integers(60, 251))
    w, h = int(height / rng.uniform(0.4, 0.9)), int(height / rng.uniform(0.4, 0.9))
    paper = np.ones((h, w), dtype=np.float32)
    _paste(paper, _stroke_mask(digit, height, rng), rng)
    ink, white = rng.uniform(0, 0.3), rng.uniform(0.8, 1.0)
    img = Image.fromarray(((ink + (white - ink) * paper) * 255).astype(np.uint8), "L")
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(1, 4)))
    return _jpeg(img, int(rng.integers(75, 95))) if rng.random() < 0.3 else _png(img)


def make_thin_thick(digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    """Stroke width at the extremes: a hairline (1-2 px on a large digit) or a felt tip."""
    w = int(rng.integers(120, 800))
    h = int(w * rng.uniform(0.6, 1.6))
    height = int(rng.uniform(0.4, 0.9) * min(w, h))
    big = Image.fromarray(digit).resize((height * 28 // 20,) * 2, Image.Resampling.BICUBIC)
    soft = np.asarray(big, dtype=np.float32) / 255
    if rng.random() < 0.5:  # a hairline: the stroke eroded while it stays in one piece, 1-3 px left
        core = soft > 0.5
        pieces = ndimage.label(core)[1]
        while True:
            thinner = ndimage.binary_erosion(core)
            if thinner.sum() < 0.4 * core.sum() or ndimage.label(thinner)[1] > pieces:
                break
            core = thinner
        mask = (ndimage.binary_dilation(core) if rng.random() < 0.5 else core).astype(np.float32)
    else:  # a felt tip: the stroke grown by a tenth of the digit's size
        mask = ndimage.grey_dilation(soft, size=max(2, int(height * rng.uniform(0.06, 0.12))))
        mask = np.clip((mask - 0.4) * 6, 0, 1)
    rows, cols = np.nonzero(mask > 0.05)
    mask = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    paper = np.ones((h, w), dtype=np.float32)
    _paste(paper, mask, rng)
    ink, white = rng.uniform(0, 0.3), rng.uniform(0.85, 1.0)
    return _png(Image.fromarray(((ink + (white - ink) * paper) * 255).astype(np.uint8), "L"))


def make_table(digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    """A sheet lying askew on a table (wood grain, cloth, an even tone), the digit somewhere on it."""
    w, h = int(rng.integers(500, 1600)), int(rng.integers(400, 1200))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    grain = np.sin(xx / rng.uniform(3, 12) + np.sin(yy / rng.uniform(20, 60)) * rng.uniform(1, 4))
    table = rng.uniform(0.08, 0.55) + grain * rng.uniform(0, 0.06) + rng.normal(0, rng.uniform(0.005, 0.03), (h, w))
    sw, sh = rng.uniform(0.45, 0.95) * w, rng.uniform(0.45, 0.95) * h  # the sheet, rotated about its centre
    cx, cy, a = rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h, np.radians(rng.uniform(-25, 25))
    u, v = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
    corners = [
        tuple(np.array([cx, cy]) + du * sw / 2 * u + dv * sh / 2 * v) for du, dv in ((-1, -1), (1, -1), (1, 1), (-1, 1))
    ]
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).polygon(corners, fill=255)
    on = np.asarray(mask, dtype=np.float32) / 255
    img = table * (1 - on) + rng.uniform(0.78, 0.97) * on
    size = int(min(sw, sh) * rng.uniform(0.25, 0.6))  # the digit, somewhere on the sheet
    d = Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC)
    stroke = np.asarray(d.rotate(np.degrees(a) * rng.uniform(-0.3, 1)), dtype=np.float32) / 255
    for _ in range(50):
        x, y = (
            np.array([cx, cy])
            + rng.uniform(-0.5, 0.5) * (sw - size) * u
            + rng.uniform(-0.5, 0.5) * (sh - size) * v
            - size / 2
        ).astype(int)
        if 0 <= x <= w - size and 0 <= y <= h - size and on[y : y + size, x : x + size][stroke > 0.3].min() > 0.99:
            break
    else:  # no room: in the middle
        x, y = int(cx - size / 2), int(cy - size / 2)
    region = img[y : y + size, x : x + size]
    region[:] = (
        region * (1 - stroke[: region.shape[0], : region.shape[1]])
        + rng.uniform(0.05, 0.3) * stroke[: region.shape[0], : region.shape[1]]
    )
    fall = ((xx - rng.uniform(0, w)) ** 2 + (yy - rng.uniform(0, h)) ** 2) / (w * w + h * h)
    gray = np.clip(img * (1 - rng.uniform(0, 0.35) * fall), 0, 1)[..., None]
    rgb = gray * np.array([1.0, rng.uniform(0.9, 1.0), rng.uniform(0.75, 1.0)])
    pic = Image.fromarray((rgb * 255).astype(np.uint8), "RGB").filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.6)))
    return _jpeg(pic, int(rng.integers(55, 92)))


def start(
    out: Path, seed: int, data_dir: str | Path | None
) -> tuple[np.random.Generator, np.ndarray, np.ndarray, list[Path | None]]:
    """A generator's seeded rng, the MNIST test digits and labels, and the fonts; `out` made."""
    test = load_split("test", data_dir)
    out.mkdir(parents=True, exist_ok=True)
    return np.random.default_rng(seed), test.images.numpy(), test.labels.numpy(), _fonts()


def generate(out: Path, per_kind: int = 100, seed: int = 0, data_dir: str | Path | None = None) -> int:
    """Write `per_kind` images of each kind into `out`; return how many were written."""
    rng, images, labels, fonts = start(out, seed, data_dir)
    makers: dict[str, Callable[[int], tuple[bytes, str]]] = {
        "ink": lambda i: make_ink(images[i], rng),
        "canvas": lambda i: make_canvas(images[i], rng),
        "photo": lambda i: make_photo(images[i], rng),
        "printed": lambda i: make_printed(int(labels[i]), rng, fonts),
        "framed": lambda i: make_framed(images[i], rng),
        "lowres8": lambda i: make_lowres(images[i], (8, 11), rng),
        "lowres16": lambda i: make_lowres(images[i], (12, 16), rng),
        "faint": lambda i: make_faint(images[i], rng),
        "blurry": lambda i: make_blurry(images[i], rng),
        "thin-thick": lambda i: make_thin_thick(images[i], rng),
        "table": lambda i: make_table(images[i], rng),
        "fonts": lambda i: printed.printed(str(labels[i]), rng, held_out=True, low=16),
    }
    for kind, make in makers.items():
        for k in range(per_kind):
            i = int(rng.integers(len(images)))
            data, ext = make(i)
            (out / f"{labels[i]}_{kind}_{k:04d}.{ext}").write_bytes(data)
    return len(makers) * per_kind


def main(argv: list[str] | None = None) -> int:
    return cli(argv, generate, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
