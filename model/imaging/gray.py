"""Grey levels in [0, 1] at a working size, with any transparency composited onto the side
opposite the strokes, so polarity can be decided afterwards."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from model.imaging.errors import NoInk, UnsupportedImage

#: 16-bit, 32-bit integer and floating-point modes: read on [0, 1] a strip at a time (`_wide_unit`).
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
#: Pixels in one strip of a wide image: a MB or two of float copies, whatever the image's size.
STRIP_PIXELS = 1 << 18


def _wide_unit(img: Image.Image, side: int) -> Image.Image:
    """A 16-bit, 32-bit or floating-point image as an "F" image on [0, 1] (16-bit: of 65535; the
    others: of their brightest pixel, at least 255), NaN and infinite pixels black; one over 4x
    `side` averaged in blocks of k x k first, k as large as leaves 2x `side`. Read a strip of rows
    at a time, so that no float copy of the whole upload is made beside the decoded pixels."""
    width, height = img.size
    k = max(1, max(width, height) // (2 * side))
    rows = max(1, STRIP_PIXELS // max(width, 1) // k) * k  # whole blocks of k rows

    def strip(top: int) -> np.ndarray:
        part = img.crop((0, top, width, min(height, top + rows)))
        arr = np.array(part.convert("I") if img.mode.startswith("I;16") else part, dtype=np.float32)
        arr[~np.isfinite(arr)] = 0.0  # no level: black
        return arr

    tops = range(0, height, rows)
    peak = 65535.0 if img.mode.startswith("I;16") else max(max(float(strip(t).max()) for t in tops), 255.0)
    out = np.empty((-(-height // k), -(-width // k)), dtype=np.float32)
    columns = np.arange(0, width, k)
    for top in tops:
        unit = strip(top)
        unit /= np.float32(peak)
        np.clip(unit, 0.0, 1.0, out=unit)
        if k > 1:  # block means; the blocks at the right and bottom edges may be smaller
            sums = np.add.reduceat(np.add.reduceat(unit, np.arange(0, len(unit), k), axis=0), columns, axis=1)
            counts = np.outer(np.diff([*range(0, len(unit), k), len(unit)]), np.diff([*columns, width]))
            unit = sums / counts
        out[top // k : top // k + len(unit)] = unit
    return Image.fromarray(out, mode="F")


#: A long, low image (a row of digits) is read with at least ROW_HEIGHT pixels on its shorter side,
#: within side x side pixels in all (`row_side`): at `side` on its longer side, a row of 150 digits
#: would be a band a few pixels high in which no digit can be told from the next.
ROW_HEIGHT = 48


def row_side(size: tuple[int, int], side: int) -> int:
    """The longer side to read an image of `size` (width, height) at, for `side`: `side`, but for a
    landscape image too long for ROW_HEIGHT rows at it, more, up to its own width and to side^2 pixels."""
    width, height = size
    if width <= side or width * ROW_HEIGHT <= side * height:
        return side
    return max(side, min(width, math.ceil(ROW_HEIGHT * width / height), int(side * math.sqrt(width / height))))


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info


def transparent(img: Image.Image) -> bool:
    """Some of the image is transparent (a drawing on a canvas, as the page sends it)."""
    if not _has_alpha(img) or img.mode in WIDE_MODES:
        return False
    alpha = img.getchannel("A") if img.mode in ("RGBA", "LA") else img.convert("RGBA").getchannel("A")
    low = alpha.getextrema()[0]
    return isinstance(low, (int, float)) and low < 250


def shrink_to(img: Image.Image, side: int, blocks: bool = False) -> Image.Image:
    """`side` pixels on the longer side (box filter); or with `blocks`, at most `side`, each pixel
    the mean of a block of n x n (fewer at the right and bottom edges), n as small as fits: Pillow's
    reduce() is several times cheaper than a resize (bench/LOG.md, round 5)."""
    longer = max(img.size)
    if longer <= side:
        return img
    if blocks:
        return img.reduce(-(-longer // side))
    scale = side / longer
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.BOX)


def _coarsen(img: Image.Image, side: int) -> Image.Image:
    """An 8-bit image over 4x `side` resized to `side` in 8 bits (the same box filter, its result
    rounded to a grey level), so that no float copy of the whole upload is made: that would take
    4 bytes a pixel of it."""
    return shrink_to(img, side) if max(img.size) > 4 * side else img


def to_gray(img: Image.Image, side: int, blocks: bool = False) -> np.ndarray:
    """Luminance in [0, 1], at most `side` pixels on the longer side, with any transparency composited.

    Transparent pixels get the colour opposite to the strokes, so dark strokes on a transparent
    canvas land on white and light strokes on black; polarity is decided afterwards.
    """
    wide = img.mode in WIDE_MODES
    if wide:
        gray, alpha = _wide_unit(img, side), None
    elif img.mode == "LAB":  # Pillow converts LAB to nothing else; L is its lightness
        gray, alpha = img.getchannel("L"), None
    elif img.mode == "RGBA":  # a canvas: the same pixels as through LA below, cheaper
        gray, alpha = img.convert("L"), img.getchannel("A")
    elif _has_alpha(img):
        la = img.convert("RGBA").convert("LA")
        gray, alpha = la.getchannel("L"), la.getchannel("A")
    else:
        try:
            gray, alpha = img.convert("L"), None
        except ValueError as e:  # a mode Pillow cannot convert to grey
            raise UnsupportedImage(f"images in colour mode {img.mode} are not supported") from e
    if not (wide or blocks):  # an exact resize, in floating point (but for large uploads: _coarsen)
        gray = _coarsen(gray, side).convert("F")
        alpha = _coarsen(alpha, side).convert("F") if alpha is not None else None
    gray = shrink_to(gray, side, blocks)  # blocks: averaged in 8 bits, rounded
    alpha = shrink_to(alpha, side, blocks) if alpha is not None else None
    g = _unit(gray) if not wide else np.asarray(gray, dtype=np.float32)
    if alpha is None:
        return g
    a = _unit(alpha)
    if a.min() >= 0.99:
        return g
    if a.sum() < 1e-3:
        raise NoInk("the image is fully transparent: no ink found")
    stroke = float((g * a).sum() / a.sum())
    background = 1.0 if stroke < 0.5 else 0.0
    result: np.ndarray = g * a + background * (1.0 - a)
    return result


_UNIT = np.arange(256, dtype=np.float32) / np.float32(255)


def _unit(img: Image.Image) -> np.ndarray:
    """An 8-bit ("L") or floating-point ("F", 0-255) image on [0, 1] as float32."""
    if img.mode == "L":
        return _UNIT.take(np.asarray(img))
    unit: np.ndarray = np.asarray(img, dtype=np.float32) / np.float32(255)
    return unit


def shrink(gray: np.ndarray, side: int) -> np.ndarray:
    """A float image at most `side` pixels on its longer side (box filter)."""
    if max(gray.shape) <= side:
        return gray
    small: np.ndarray = np.asarray(shrink_to(Image.fromarray(gray, mode="F"), side))
    return small


def enlarge(gray: np.ndarray, below: int, to: int) -> np.ndarray:
    """A float image whose longer side is under `below`, enlarged (bilinear, a whole factor) to at
    least `to`: a digit of a few pixels a side is analysed as the smooth shape it stands for."""
    longer = max(gray.shape)
    if longer >= below:
        return gray
    k = -(-to // longer)
    h, w = gray.shape
    big: np.ndarray = np.asarray(Image.fromarray(gray, mode="F").resize((w * k, h * k), Image.Resampling.BILINEAR))
    return big


def unblock(gray: np.ndarray) -> np.ndarray:
    """An image that is a small one enlarged by repeating pixels (nearest neighbour: every k x k
    block one level, for a whole k of at least 2 and a grid of 4 to 64 blocks a side) is enlarged
    again from that grid, bilinear: the digit's smooth shape rather than its staircase. Anything
    else is returned as it is.

    Such an image changes level from one row to the next only at multiples of k, and from one
    column to the next likewise: k is the greatest common divisor of where it changes (and of
    its sides), found in one comparison of neighbouring rows and one of neighbouring columns.
    """
    h, w = gray.shape
    rows = np.flatnonzero((gray[1:] != gray[:-1]).any(axis=1)) + 1
    cols = np.flatnonzero((gray[:, 1:] != gray[:, :-1]).any(axis=0)) + 1
    k = math.gcd(h, w, *rows.tolist(), *cols.tolist())
    if k < 2 or not (4 <= h // k <= 64 and 4 <= w // k <= 64):
        return gray
    grid = np.ascontiguousarray(gray[::k, ::k], dtype=np.float32)
    smooth: np.ndarray = np.asarray(Image.fromarray(grid, mode="F").resize((w, h), Image.Resampling.BILINEAR))
    return smooth
