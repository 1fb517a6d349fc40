"""Quantiles of pixel levels, as np.percentile gives them (its default, linear method), at a
fraction of its cost.

np.percentile and np.median select several ranks at once, which numpy does without its
vectorised selection, several times slower than one whole np.sort (bench/LOG.md, "The image
path on OpenCV"). So one quantile is one single-rank np.partition, and several are read off one
np.sort.
"""

from __future__ import annotations

import numpy as np


def quantiles(values: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """np.percentile(values, q) for each q in `qs` (0-100), `values` non-empty."""
    flat = values.ravel()
    last = flat.size - 1
    positions = [q / 100 * last for q in qs]
    if len(qs) == 1:
        lo = int(positions[0])
        part = np.partition(flat, lo)
        pairs = [(float(part[lo]), float(part[lo + 1 :].min()) if lo < last else float(part[lo]))]
    else:
        ordered = np.sort(flat)
        pairs = [(float(ordered[int(p)]), float(ordered[min(int(p) + 1, last)])) for p in positions]
    out = []
    for p, (a, b) in zip(positions, pairs, strict=True):
        t = p - int(p)
        out.append(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)  # numpy's _lerp
    return out


def median(values: np.ndarray) -> float:
    return quantiles(values, (50,))[0]
