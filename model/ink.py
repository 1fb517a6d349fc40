"""The ink map: white ink on black in [0, 1], the paper's level and uneven light taken away and
the contrast stretched so the ink is 1. Two ways to the same map: `clean_ink_map` where the
border is one even level (a canvas, a scan), `ink_map` for anything else (photos)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from model import imageops
from model.errors import NoInk
from model.gray import shrink

#: Below this spread between darkest and lightest (on 0-1), the image is blank.
MIN_CONTRAST = 0.12
#: Background spread (5th to 90th percentile, on 0-1) under which the light is taken as even.
FLAT_BACKGROUND = 0.05


def _quantiles(values: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """np.percentile(values, q) for each q (numpy's default linear method), from one np.partition:
    np.percentile and np.median cost tens of microseconds each in overhead, several times a request."""
    flat = values.ravel()
    last = flat.size - 1
    positions = [q / 100 * last for q in qs]
    lows = [int(p) for p in positions]
    part = np.partition(flat, sorted({i for lo in lows for i in (lo, min(lo + 1, last))}))
    out = []
    for p, lo in zip(positions, lows, strict=True):
        a, b, t = float(part[lo]), float(part[min(lo + 1, last)]), p - lo
        out.append(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)  # numpy's _lerp
    return out


def _median(values: np.ndarray) -> float:
    return _quantiles(values, (50,))[0]


_OTSU_BINS = 64
_OTSU_CENTRES = (np.arange(_OTSU_BINS) + 0.5) / _OTSU_BINS


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold over 64 bins of [0, 1] for values in [0, 1]."""
    return _otsu_split(values)[0]


def _otsu_split(values: np.ndarray) -> tuple[float, float]:
    """Otsu's threshold over 64 bins of [0, 1], and the fraction of `values` below it.

    The values must lie in [0, 1]. Multiplying by 64 is exact in binary floating point, so
    v < k / 64 exactly when v's bin is below k: the fraction comes from the histogram, not from
    another pass over the pixels. (bincount: several times faster than np.histogram.)
    """
    bins = (values.ravel() * _OTSU_BINS).astype(np.intp)
    hist = np.bincount(bins, minlength=_OTSU_BINS + 1).astype(np.float64)
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

    A median over a third of the image at 48 px: strokes are a minority in most windows, so the
    median is the paper. Windows where ink is the majority (a large bold digit) take the value of
    the nearest window that is not.
    """
    h, w = ink.shape
    small = shrink(ink, 48)
    paper = small[small < threshold]
    if paper.size:
        p5, p50, p90 = _quantiles(paper, (5, 50, 90))
        if p90 - p5 < FLAT_BACKGROUND:
            return np.full_like(ink, p50)  # evenly lit: no need for the local median
    window = max(3, max(small.shape) // 3)
    level = imageops.median_filter(small, window)
    inked = level >= threshold
    if inked.all():
        return np.full_like(ink, _quantiles(ink, (5,))[0])
    if inked.any():
        level = level[imageops.nearest_outside(inked)]
    background: np.ndarray = np.asarray(
        Image.fromarray(level.astype(np.float32), mode="F").resize((w, h), Image.Resampling.BILINEAR)
    )
    return background


def _light_background(gray: np.ndarray, smooth: np.ndarray) -> bool:
    """Ink is the minority of pixels; when it is not clearly so (a big bold digit), the border decides.

    The minority rule reads a sheet of paper photographed on a dark table right, where the
    border alone (mostly table) would not.
    """
    t, dark = _otsu_split(smooth)
    if dark < 0.35 or dark > 0.65:
        return dark < 0.5
    band = max(1, round(0.02 * min(gray.shape)))
    border = np.concatenate(
        [gray[:band].ravel(), gray[-band:].ravel(), gray[:, :band].ravel(), gray[:, -band:].ravel()]
    )
    return _median(border) > t


def _smoothed(gray: np.ndarray) -> np.ndarray:
    """The 3x3 mean that levels are read from; NoInk when even it spans too little to hold ink."""
    smooth = imageops.mean3(gray) if min(gray.shape) >= 3 else gray
    if float(smooth.max() - smooth.min()) < MIN_CONTRAST:
        raise NoInk("the image is blank: no ink found")
    return smooth


def _split(flat: np.ndarray) -> tuple[np.ndarray, float]:
    """Otsu's split of a background-free image: the background's pixels and the ink's median level."""
    t = _otsu(np.clip(flat, 0.0, 1.0))
    background = flat[flat < t]
    ink = flat[flat >= t]
    if ink.size == 0 or background.size == 0:
        raise NoInk("the image is blank: no ink found")
    return background, _median(ink)


def _stretch(sharp: np.ndarray, floor: float, level: float) -> np.ndarray:
    """`sharp` (the unsmoothed image, background taken away) with `floor` at 0 and `level` at 1."""
    if level - floor < MIN_CONTRAST / 2:
        raise NoInk("no ink stands out from the background")
    out: np.ndarray = np.clip((sharp - floor) / (level - floor), 0.0, 1.0).astype(np.float32)
    return out


def ink_map(gray: np.ndarray) -> np.ndarray:
    """White ink on black in [0, 1]: polarity from which pixels are the minority (or the border),
    background and uneven light taken away, contrast stretched so the ink is 1."""
    smooth = _smoothed(gray)
    if _light_background(gray, smooth):  # dark ink on paper: make it white on black
        gray = 1.0 - gray
        smooth = 1.0 - smooth
    flat = smooth - _background(smooth, _otsu(smooth))
    background, level = _split(flat)
    floor = _quantiles(background, (99,))[0]
    return _stretch(gray - (smooth - flat), floor, level)


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
    background, level = _split(smooth - paper)
    spread_low, spread_high, floor = _quantiles(background, (5, 90, 99))
    if spread_high - spread_low >= FLAT_BACKGROUND:
        return ink_map(given)
    return _stretch(gray - paper, floor, level)


def border_level(gray: np.ndarray) -> float | None:
    """The background's level where it is clean all round (a canvas, a scan, a drawing): the
    border's median when its pixels barely vary, else None."""
    band = max(1, round(0.03 * min(gray.shape)))
    border = np.concatenate(
        [gray[:band].ravel(), gray[-band:].ravel(), gray[:, :band].ravel(), gray[:, -band:].ravel()]
    )
    low, median, high = _quantiles(border, (10, 50, 90))
    return median if high - low < FLAT_BACKGROUND else None
