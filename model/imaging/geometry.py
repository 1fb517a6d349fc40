"""Digit geometry: which ink is the digit, its box, strokes thickened to MNIST's width, fitted into
20x20 and centred by mass in 28x28, and the check that an image already looks like that."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np
from PIL import Image

from model.contract import BOX, COM_TARGET, SIZE
from model.imaging.components import Components, dilate_cross, erode_cross
from model.imaging.errors import NoInk, SeveralDigits
from model.imaging.segment import Box, Group, group_strokes

#: Stroke width / digit size in MNIST: 10th percentile 0.109, median 0.141 (measured on 5,000
#: training digits); strokes thinner than MIN are thickened to TARGET.
MIN_STROKE_RATIO = 0.10
TARGET_STROKE_RATIO = 0.13
#: A stroke is a component of ink above WEAK that holds ink above STRONG (`keep_digit`).
WEAK, STRONG = 0.1, 0.5
#: A component with less than SPECKS of the largest one's strong ink is a speck.
SPECKS = 0.1
#: A component touching the border with more than BORDER_SHARE of its pixels in the outer
#: BORDER_BAND of the image (on each side) is clutter along the border.
BORDER_BAND, BORDER_SHARE = 0.1, 0.6
#: Ink in the border band running along the border for at least EDGE_RUN of the image's side is
#: the edge of a sheet or a table, cut away before the strokes are found: a digit written up to the
#: sheet's edge would otherwise be one stroke with the table beyond it.
EDGE_RUN = 0.8
#: At most this many strokes are kept, those with the most strong ink: more is texture or noise,
#: not writing, and grouping strokes costs time with their number (a 16-digit number written in
#: pieces has a few hundred at most).
MAX_PIECES = 512
#: A component inside the image, at least INTERIOR_SHARE of the largest one reaching in from the
#: border, is the digit and those reaching in are clutter (the slanted edge of a photographed sheet).
INTERIOR_SHARE = 0.15


@dataclass(frozen=True)
class Strokes:
    """The ink `find_strokes` keeps, and which of its strokes are digits (`model.imaging.segment`)."""

    ink: np.ndarray  # the kept ink map: what is not a stroke of a digit is zero
    parts: Components  # the components strokes were chosen from
    kept: np.ndarray  # (parts.count,) bool: the components kept
    areas: np.ndarray  # (parts.count,) each component's strong ink, in pixels

    @cached_property
    def digits(self) -> list[Group]:
        """The kept strokes grouped into digits, left to right."""
        return group_strokes(self.parts.boxes()[self.kept], np.flatnonzero(self.kept))

    def mask(self, group: Group) -> np.ndarray:
        """The pixels of one digit's strokes (grown by one pixel, as the kept ink is), but for those
        with less than SPECKS of its largest stroke's strong ink: specks, as a single digit's are."""
        members = np.array(group.members)
        areas = self.areas[members]
        wanted = np.zeros(self.parts.count, dtype=bool)
        wanted[members[areas >= SPECKS * areas.max()]] = True
        return dilate_cross(self.parts.mask(wanted))


def keep_digit(ink: np.ndarray, border_clutter: bool = True) -> np.ndarray:
    """`find_strokes`' ink, for an image that holds one digit: SeveralDigits when its strokes make
    more than one (`model.imaging.segment`), side by side. In a photo (`border_clutter`) groups whose every
    stroke touches the border, beside a single group inside, are clutter (a lit corner of the table,
    a shadow) and only the one inside is kept."""
    strokes = find_strokes(ink, border_clutter)
    if strokes.parts.count == 1 or len(strokes.digits) <= 1:
        return strokes.ink
    digits = strokes.digits
    if border_clutter:  # a photo: a group reaching in from the border beside one inside is clutter
        inside = [g for g in digits if not strokes.parts.touches_border[list(g.members)].all()]
        if len(inside) == 1:
            alone: np.ndarray = ink * strokes.mask(inside[0])
            return alone
    raise SeveralDigits(len(digits))


def find_strokes(ink: np.ndarray, border_clutter: bool = True, specks: float = SPECKS) -> Strokes:
    """Zero what is not a digit: specks, and clutter along the border (table edges, frames).

    Thresholds decide what is kept, never a kept pixel's level: a stroke is a component of ink
    above WEAK that holds some ink above STRONG, so the fading side of a faint or blurred stroke
    stays with it (hysteresis). With `border_clutter` (a photo) strokes are components of ink above
    STRONG: a faint halo would join the digit to a table edge; and ink running in from the border
    along it for EDGE_RUN of the side (the table beyond the sheet) is cut away first, so that a
    digit written up to the sheet's edge is not one stroke with the table. Components with less
    than `specks` of the largest one's strong ink are specks (a number's thin 1 beside a bold 8 has less than
    SPECKS: its reading passes a lower share, and drops specks by their size, `model.imaging.segment`).
    Clutter (unless `border_clutter` is off: an image whose border is clean) is a component that
    touches the border and lies mostly along it; of the rest, a digit
    inside the image wins over lines reaching in from the border unless it is much smaller than
    them (INTERIOR_SHARE): a digit running off the edge, or filling the frame edge to edge, is kept.
    """
    weak = ink > (STRONG if border_clutter else WEAK)
    if border_clutter and _on_border(weak):  # the sheet's or the table's edge cut away: a digit
        weak &= ~_edges(weak)  # written up to it is freed
    parts = Components(weak)
    if parts.count == 1:  # one stroke, the usual drawing: nothing to choose
        if float(ink.max()) <= STRONG:
            raise NoInk("no ink found")
        one: np.ndarray = ink * dilate_cross(weak)
        return Strokes(one, parts, np.ones(1, dtype=bool), np.ones(1))
    areas = parts.count_in(ink > STRONG)  # strong ink
    if parts.count == 0 or not areas.any():
        raise NoInk("no ink found")
    candidates = areas > 0
    if border_clutter and parts.touches_border.any():
        h, w = ink.shape
        dy, dx = max(1, round(BORDER_BAND * h)), max(1, round(BORDER_BAND * w))
        band = np.ones(ink.shape, dtype=bool)
        band[dy : h - dy, dx : w - dx] = False
        along = parts.touches_border & (parts.count_in(band) > BORDER_SHARE * parts.areas)
        interior = candidates & ~parts.touches_border
        reaching = candidates & parts.touches_border & ~along  # off the edge, or filling the frame
        enough = max(0.05 * areas.max(), 0.001 * ink.size)
        if interior.any() and areas[interior].max() >= max(enough, INTERIOR_SHARE * areas[reaching].max(initial=0)):
            candidates = interior
        elif (candidates & ~along).any() and areas[candidates & ~along].max() >= enough:
            candidates = candidates & ~along
    wanted = candidates & (areas >= specks * areas[candidates].max())
    if wanted.sum() > MAX_PIECES:  # the boldest MAX_PIECES, in component order
        boldest = np.argsort(np.where(wanted, -areas, np.inf), kind="stable")[:MAX_PIECES]
        wanted = np.zeros_like(wanted)
        wanted[boldest] = True
    kept: np.ndarray = ink * dilate_cross(parts.mask(wanted))
    return Strokes(kept, parts, wanted, areas)


def _on_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def _edges(weak: np.ndarray) -> np.ndarray:
    """The pixels of `weak` in the border band (BORDER_BAND) on runs along the border at least
    EDGE_RUN of the side long."""
    h, w = weak.shape
    dy, dx = max(1, round(BORDER_BAND * h)), max(1, round(BORDER_BAND * w))
    out = np.zeros_like(weak)
    reach = np.logical_and.accumulate  # ink running in unbroken from the image's border
    out[:, :dx] = _long_runs(reach(weak[:, :dx], axis=1), EDGE_RUN * h)
    out[:, w - dx :] |= _long_runs(reach(weak[:, w - dx :][:, ::-1], axis=1)[:, ::-1], EDGE_RUN * h)
    out[:dy] |= _long_runs(reach(weak[:dy], axis=0).T, EDGE_RUN * w).T
    out[h - dy :] |= _long_runs(reach(weak[h - dy :][::-1], axis=0)[::-1].T, EDGE_RUN * w).T
    return out


def _long_runs(mask: np.ndarray, length: float) -> np.ndarray:
    """The pixels of `mask` on vertical runs (down each column) at least `length` long."""
    h, w = mask.shape
    flat = np.zeros((w, h + 1), dtype=bool)  # column by column, each ended by a gap
    flat[:, :h] = mask.T
    flat = flat.ravel()
    run = np.cumsum(flat & ~np.concatenate([[False], flat[:-1]])) * flat  # 1, 2, ... per run; 0 off it
    long = (np.bincount(run) >= length)[run] & flat
    out: np.ndarray = long.reshape(w, h + 1)[:, :h].T
    return out


def bbox(ink: np.ndarray, threshold: float = 0.05) -> Box:
    inked = ink > threshold
    rows = np.flatnonzero(inked.any(axis=1))
    cols = np.flatnonzero(inked.any(axis=0))
    if rows.size == 0:
        raise NoInk("no ink found")
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def crop(ink: np.ndarray, threshold: float = 0.05, box: Box | None = None) -> np.ndarray:
    r0, r1, c0, c1 = box or bbox(ink, threshold)
    return ink[r0:r1, c0:c1]


def thicken(digit: np.ndarray) -> np.ndarray:
    """Dilate strokes that are much thinner, relative to the digit's size, than MNIST's."""
    binary = digit > 0.5
    area = int(binary.sum())
    if area == 0:
        return digit
    boundary = area - int(erode_cross(binary).sum())  # the erosion lies inside
    width = area / max(boundary / 2, 1)
    side = max(digit.shape)
    if width / side >= MIN_STROKE_RATIO:
        return digit
    grow = round(TARGET_STROKE_RATIO * side - width)
    if grow < 1:
        return digit
    pad = grow // 2 + 1
    padded = np.pad(digit, pad)
    grown = cv2.dilate(padded, disk(grow).view(np.uint8))
    return crop(grown)


def disk(diameter: int) -> np.ndarray:
    r = (diameter + 1) / 2
    y, x = np.mgrid[: diameter + 1, : diameter + 1] - diameter / 2
    inside: np.ndarray = (x * x + y * y) <= r * r
    return inside


def fit_and_centre(digit: np.ndarray) -> np.ndarray:
    """Fit into BOX x BOX keeping aspect ratio, then centre by centre of mass in SIZE x SIZE."""
    h, w = digit.shape
    scale = BOX / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    method = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    small = np.asarray(Image.fromarray(np.asarray(digit, dtype=np.float32), mode="F").resize((nw, nh), method))
    small = np.clip(small, 0.0, 1.0)
    peak = float(small.max())
    if peak <= 0:
        raise NoInk("no ink found")
    small = small / peak
    total = small.sum()  # scipy's center_of_mass, the same sums without its overhead
    cy = float((small * np.arange(nh, dtype=np.float64)[:, None]).sum() / total)
    cx = float((small * np.arange(nw, dtype=np.float64)[None, :]).sum() / total)
    top = min(max(round(COM_TARGET[0] - cy), 0), SIZE - nh)
    left = min(max(round(COM_TARGET[1] - cx), 0), SIZE - nw)
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    out[top : top + nh, left : left + nw] = small
    return out


_ROWS = np.arange(SIZE, dtype=np.float64)


def is_mnist_like(ink: np.ndarray) -> bool:
    """28x28, digit about 20 pixels tall or wide, centre of mass where MNIST puts it.

    Plain numpy sums rather than scipy's center_of_mass: this runs on every 28x28 upload."""
    if ink.shape != (SIZE, SIZE):
        return False
    row_peaks = ink.max(axis=1)
    if float(row_peaks.max()) < 0.5:
        return False
    rows = ink.sum(axis=1, dtype=np.float64)
    cols = ink.sum(axis=0, dtype=np.float64)
    inked_rows = np.flatnonzero(row_peaks > 0.05)
    inked_cols = np.flatnonzero(ink.max(axis=0) > 0.05)
    side = max(inked_rows[-1] - inked_rows[0], inked_cols[-1] - inked_cols[0]) + 1
    total = float(rows.sum())
    cy, cx = float(rows @ _ROWS) / total, float(cols @ _ROWS) / total
    return bool(BOX - 2 <= side <= BOX + 1 and abs(cy - COM_TARGET[0]) <= 1 and abs(cx - COM_TARGET[1]) <= 1)


_HALF = SIZE * SIZE // 2


def passes_through(gray: np.ndarray) -> np.ndarray | None:
    """An MNIST-like 28x28 image, made white on black if it was not, or None."""
    if gray.shape != (SIZE, SIZE):
        return None
    part = np.partition(gray.ravel(), (_HALF - 1, _HALF))
    median = (part[_HALF - 1] + part[_HALF]) / part.dtype.type(2)  # np.median's arithmetic, without its overhead
    raw = gray if float(median) < 0.5 else 1.0 - gray
    return raw.astype(np.float32) if is_mnist_like(raw) else None


def model_input(ink: np.ndarray, box: Box | None = None) -> np.ndarray:
    """The digit's ink map (and its `bbox`, if known) -> 28x28: cropped, thin strokes thickened,
    fitted and centred."""
    return fit_and_centre(thicken(crop(ink, box=box)))
