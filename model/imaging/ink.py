"""The ink map: white ink on black in [0, 1], the paper's level and uneven light taken away and
the contrast stretched so the ink is 1. Two ways to the same map: `clean_ink_map` where the
border is one even level (a canvas, a scan), `ink_map` for anything else (photos)."""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from model.imaging.errors import NoInk
from model.imaging.gray import shrink
from model.imaging.quantiles import median, quantiles
from model.imaging.sheet import MIN_SHEET, SOLID, TABLE_CONTRAST, sheet

#: Below this spread between darkest and lightest (on 0-1), the image is blank.
MIN_CONTRAST = 0.12
#: Ink stands out from the paper's floor by this many times its noise, and by MIN_STANDOUT to
#: MAX_STANDOUT (on 0-1).
STANDOUT_NOISE, MIN_STANDOUT, MAX_STANDOUT = 3.0, 0.03, 0.06
#: A background-free image spanning less than this is faint: Otsu's bins go over its own range.
WIDE_RANGE = 0.5
#: Ink found above the paper's noise (when Otsu finds none) counts if it is this share of the image.
MIN_INK_SHARE = 0.001
#: The rank (as a share of the window) of the local level taken as the paper's: ink is bright.
PAPER_RANK = 0.1
#: The paper's levels are read from about this many of its pixels.
PAPER_SAMPLE = 8192
#: The darkest (lightest) 1% of pixels lying further below the 10th (above the 90th) percentile than
#: this times the 10th-90th spread are ink: dark ink (light ink), a thin stroke on a big sheet.
TAIL_RATIO = 1.0
#: Background spread (5th to 90th percentile, on 0-1) under which the light is taken as even.
FLAT_BACKGROUND = 0.05


_OTSU_BINS = 64
_OTSU_CENTRES = (np.arange(_OTSU_BINS) + 0.5) / _OTSU_BINS


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold over 64 bins of [0, 1] for values in [0, 1]."""
    return _otsu_split(values)[0]


def _otsu_split(values: np.ndarray) -> tuple[float, float]:
    """Otsu's threshold over 64 bins of [0, 1], and the fraction of `values` below it.

    The values must lie in [0, 1]. Multiplying by 64 is exact in binary floating point, so
    v < k / 64 exactly when v's bin is below k: the fraction comes from the histogram, not from
    another pass over the pixels. (The bins as bytes, counted by OpenCV's histogram: cheaper than
    np.bincount or np.histogram.)
    """
    bins = np.multiply(values, _OTSU_BINS).astype(np.uint8).reshape(1, -1)  # one row: calcHist goes row by row
    hist = cv2.calcHist([bins], [0], None, [_OTSU_BINS + 1], [0, _OTSU_BINS + 1]).ravel().astype(np.float64)
    hist[_OTSU_BINS - 1] += hist[_OTSU_BINS]  # 1.0 goes in the top bin
    hist = hist[:_OTSU_BINS]
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * _OTSU_CENTRES)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    k = int(between.argmax()) + 1
    return k / _OTSU_BINS, float(w0[k - 1] / w0[-1])


def _background(ink: np.ndarray, threshold: float) -> np.ndarray:
    """The background level under every pixel (ink bright), for uneven light on photos.

    Evenly lit when the paper's level, read as the darkest tenth of each ninth of the image, varies
    by less than FLAT_BACKGROUND: then one level, the median of what lies below `threshold` (the
    spread of those pixels would not do: on a coarse or blurred digit that fills the frame, much of
    it is grey ink). Otherwise the darkest tenth (PAPER_RANK) of a window a third of the image wide
    at 48 px: some paper shows in almost every window, so grey strokes and large digits are not
    taken for it, as they were by a median. Windows that are all ink take the value of the nearest
    window that is not.
    """
    h, w = ink.shape
    small = shrink(ink, 48)
    paper = small[small < threshold]
    if paper.size and _paper_spread(small, threshold) < FLAT_BACKGROUND:
        return np.full_like(ink, median(paper))  # evenly lit: one level
    window = max(3, max(small.shape) // 3)
    share = float((small >= threshold).mean())  # of the image that is ink
    rank = max(PAPER_RANK, (1 - 2 * share) / 2)  # the paper's median where ink is twice as dense
    level = _rank_filter(small, window, int(rank * (window * window - 1)))
    inked = level >= threshold
    if inked.all():
        return np.full_like(ink, quantiles(ink, (5,))[0])
    if inked.any():
        level = _from_nearest_outside(level, inked)
    background: np.ndarray = cv2.resize(level.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return background


def _rank_filter(image: np.ndarray, size: int, rank: int) -> np.ndarray:
    """scipy's rank_filter(image, rank, size, mode="nearest"): over each size x size window, the
    element of `rank` (0: the minimum). (OpenCV has the minimum, the maximum and the median, not
    other ranks.)"""
    before = size // 2
    padded = np.pad(image, ((before, size - 1 - before), (before, size - 1 - before)), mode="edge")
    # the overlapping windows side by side: a copy, sorted in place, each window whole (numpy's
    # vectorised sort beats its selection of one rank here)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size)).reshape(*image.shape, size * size)
    windows.sort(axis=-1)
    ranked: np.ndarray = windows[..., rank]
    return ranked


def _from_nearest_outside(level: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """`level` with every pixel `inside` taking the value of the nearest pixel outside (OpenCV's
    distance transform with the label of the nearest zero pixel; its 5x5 mask's distances are
    within 2% of Euclidean)."""
    _, nearest = cv2.distanceTransformWithLabels(
        inside.view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5, labelType=cv2.DIST_LABEL_PIXEL
    )
    outside = ~inside
    where = np.zeros(int(nearest.max()) + 1, dtype=np.intp)  # label -> the flat index of its pixel
    where[nearest[outside]] = np.flatnonzero(outside)
    filled: np.ndarray = level.ravel()[where[nearest]]
    return filled


def _paper_spread(small: np.ndarray, threshold: float) -> float:
    """How much the darkest tenth of each cell of a 3x3 grid over `small` (ink bright) varies,
    over the cells where that tenth is paper (below `threshold`). (The last row or two and column
    or two are left out when the sides are not multiples of 3.)"""
    ch, cw = small.shape[0] // 3, small.shape[1] // 3
    if ch == 0 or cw == 0:  # a strip of an image: no grid to compare
        return 0.0
    cells = small[: 3 * ch, : 3 * cw].reshape(3, ch, 3, cw).transpose(0, 2, 1, 3).reshape(9, ch * cw)
    tenth = (ch * cw - 1) // 10
    lows = np.partition(cells, tenth, axis=1)[:, tenth]
    paper = lows[lows < threshold]
    return float(paper.max() - paper.min()) if paper.size else 0.0


def _light_background(gray: np.ndarray, smooth: np.ndarray) -> bool:
    """Dark ink on light paper? A few pixels far darker (or lighter) than the bulk of the levels are
    the ink (TAIL_RATIO); else ink is the minority of pixels; when it is not clearly so (a big bold
    digit), the border decides.

    The tails read paper lit from one side right, where Otsu parts the paper itself into halves and
    the border (a table, the sheet's dim end) would say dark background. The minority rule reads a
    sheet of paper photographed on a dark table right, where the border alone (mostly table) would
    not.
    """
    q1, q10, q90, q99 = quantiles(smooth.ravel()[:: max(1, smooth.size // PAPER_SAMPLE)], (1, 10, 90, 99))
    if q10 - q1 > TAIL_RATIO * (q90 - q10):
        return True
    if q99 - q90 > TAIL_RATIO * (q90 - q10):
        return False
    t, dark = _otsu_split(smooth)
    if dark < 0.35 or dark > 0.65:
        return dark < 0.5
    band = max(1, round(0.02 * min(gray.shape)))
    border = np.concatenate(
        [gray[:band].ravel(), gray[-band:].ravel(), gray[:, :band].ravel(), gray[:, -band:].ravel()]
    )
    return median(border) > t


def _smoothed(gray: np.ndarray) -> np.ndarray:
    """The 3x3 mean that levels are read from; NoInk when even it spans too little to hold ink."""
    smooth = cv2.blur(gray, (3, 3), borderType=cv2.BORDER_REPLICATE) if min(gray.shape) >= 3 else gray
    if float(smooth.max() - smooth.min()) < MIN_CONTRAST:
        raise NoInk("the image is blank: no ink found")
    return smooth


class Paper(NamedTuple):
    """What a background-free image's paper is: the level below which a pixel is paper, its
    noise (one standard deviation) and its spread (5th to 90th percentile)."""

    floor: float
    noise: float
    spread: float


def _split(flat: np.ndarray) -> tuple[Paper, float]:
    """A background-free image's paper (`_paper`) and the ink's median level.

    Otsu's split (for a faint image, spanning under WIDE_RANGE, with its 64 bins over the image's
    own range of levels). Where the ink is too small a share of the image for Otsu to find it (a
    few faint strokes: the split falls inside the paper's noise and the "ink" stands out from
    nothing), the ink is what lies STANDOUT_NOISE times the paper's noise above the paper, as long
    as there is some.
    """
    low, high = float(flat.min()), float(flat.max())
    if high - low >= WIDE_RANGE:  # Otsu's 64 bins over [0, 1] resolve it
        t = _otsu(np.clip(flat, 0.0, 1.0) if low < 0.0 or high > 1.0 else flat)
    else:  # faint: the bins over its own range
        high = max(high, low + 1e-6)
        t = low + (high - low) * _otsu((flat - low) * np.float32(1 / (high - low)))
    background, ink = flat[flat < t], flat[flat >= t]
    if ink.size == 0 or background.size == 0:
        raise NoInk("the image is blank: no ink found")
    paper, level = _paper(background), median(ink)
    if level - paper.floor < _standout(paper):
        q16, q50 = quantiles(flat, (16, 50))
        t = q50 + STANDOUT_NOISE * (q50 - q16)
        few = flat[flat > t]
        if few.size >= MIN_INK_SHARE * flat.size:
            paper, level = _paper(flat[flat <= t]), median(few)
    return paper, level


def _standout(paper: Paper) -> float:
    """How far above the paper's floor ink must lie: STANDOUT_NOISE times its noise, within
    MIN_STANDOUT and MAX_STANDOUT (the noise read from a background with a table or a shadow in it
    would otherwise refuse a plain digit)."""
    return min(MAX_STANDOUT, max(MIN_STANDOUT, STANDOUT_NOISE * paper.noise))


def _paper(background: np.ndarray) -> Paper:
    """The paper under `background`, the pixels below the ink's threshold.

    The floor is the paper's median plus three times its noise, or the 99th percentile of
    `background` where that is lower. Those pixels are mostly paper but also the fading edges of
    strokes and, on a coarse or blurred image, whole stretches of grey ink; all of those lie above
    the paper's level, so the noise is read from the paper's darker part alone (the 5th to 30th
    percentiles), and grey ink stays grey.
    """
    sample = background[:: max(1, background.size // PAPER_SAMPLE)]  # every n-th: enough for levels
    q5, q30, q50, q90, q99 = quantiles(sample, (5, 30, 50, 90, 99))
    noise = (q30 - q5) / 1.12  # the 5th to 30th percentiles of Gaussian noise: 1.12 deviations
    return Paper(min(q99, q50 + 3.0 * noise), noise, q90 - q5)


def _stretch(sharp: np.ndarray, paper: Paper, level: float) -> np.ndarray:
    """`sharp` (the unsmoothed image, background taken away) with the paper's floor at 0 and
    `level` at 1; NoInk unless the ink stands out (`_standout`)."""
    floor = paper.floor
    if level - floor < _standout(paper):
        raise NoInk("no ink stands out from the background")
    out: np.ndarray = np.clip((sharp - floor) / (level - floor), 0.0, 1.0).astype(np.float32)
    return out


def ink_map(gray: np.ndarray, photo: bool = False) -> np.ndarray:
    """White ink on black in [0, 1]: polarity from which pixels are the minority (or the border),
    background and uneven light taken away, contrast stretched so the ink is 1. With `photo` (an
    image of a photo's size, not a few pixels enlarged), a sheet of paper on a darker table
    (`model.imaging.sheet`) is paper, and the table around it blank."""
    smooth = _smoothed(gray)
    on = sheet(smooth, _otsu(smooth)) if photo else None
    if on is not None:  # a sheet of paper on a darker table: the table taken as blank paper
        blank = np.float32(median(smooth[on]))
        gray, smooth = np.where(on, gray, blank), np.where(on, smooth, blank)
    if on is not None or _light_background(gray, smooth):  # dark ink on paper: make it white on black
        gray = 1.0 - gray
        smooth = 1.0 - smooth
    flat = smooth - _background(smooth, _otsu(smooth))
    paper, level = _split(flat)
    return _stretch(gray - (smooth - flat), paper, level)


def on_table(gray: np.ndarray, border: float) -> bool:
    """Whether `gray`, whose border is all one level `border` (`border_level`), shows a sheet of
    paper on a darker table (`model.imaging.sheet`): an even-toned table makes a clean border, but the
    paper is the sheet, not the table. (Nothing well lighter than the border: no sheet, at once.)"""
    if (gray > border + TABLE_CONTRAST).mean() < MIN_SHEET * SOLID:
        return False
    smooth = _smoothed(gray)
    return sheet(smooth, _otsu(smooth)) is not None


def clean_ink_map(gray: np.ndarray, paper: float) -> np.ndarray:
    """`ink_map` for an image whose border is all one level, `paper` (a canvas, a scan): the
    background is taken as that level everywhere, and the ink as whatever lies towards the far end
    of the range from it. Half of ink_map's work (no local background estimate, one Otsu threshold
    instead of three); should the background still spread (uneven light inside a clean border),
    ink_map decides.
    """
    given = gray
    smooth = _smoothed(gray)
    low, high = float(smooth.min()), float(smooth.max())
    if paper - low > high - paper:  # dark ink on light paper: make it white on black
        gray, smooth, paper = 1.0 - gray, 1.0 - smooth, 1.0 - paper
    found, level = _split(smooth - paper)
    if found.spread >= FLAT_BACKGROUND:
        return ink_map(given)
    return _stretch(gray - paper, found, level)


def border_level(gray: np.ndarray) -> float | None:
    """The background's level where it is clean all round (a canvas, a scan, a drawing): the
    border's median when its pixels barely vary, else None."""
    band = max(1, round(0.03 * min(gray.shape)))
    border = np.concatenate(
        [gray[:band].ravel(), gray[-band:].ravel(), gray[:, :band].ravel(), gray[:, -band:].ravel()]
    )
    low, middle, high = quantiles(border, (10, 50, 90))
    return middle if high - low < FLAT_BACKGROUND else None
