"""The few neighbourhood operations preprocessing needs, in numpy: what scipy.ndimage did for it.

Importing scipy.ndimage pulls scipy.special, numpy.f2py and numpy.random into every service
worker (bench/LOG.md, round 5, "no scipy in the service"). These are the same results, tested
against scipy's (tests/model/imaging/test_imageops.py), on the small images preprocessing works with.
"""

from __future__ import annotations

import numpy as np


def mean3(image: np.ndarray) -> np.ndarray:
    """The 3x3 mean, the edge pixels repeated beyond the border: scipy's uniform_filter(size=3),
    whose "reflect" mode repeats the edge pixel for a window this small. Needs both sides >= 2."""
    cols = np.empty_like(image)  # sums of three rows
    cols[1:-1] = image[:-2] + image[1:-1] + image[2:]
    cols[0] = image[0] + image[0] + image[1]
    cols[-1] = image[-2] + image[-1] + image[-1]
    out = np.empty_like(image)
    out[:, 1:-1] = cols[:, :-2] + cols[:, 1:-1] + cols[:, 2:]
    out[:, 0] = cols[:, 0] + cols[:, 0] + cols[:, 1]
    out[:, -1] = cols[:, -2] + cols[:, -1] + cols[:, -1]
    out /= image.dtype.type(9)
    return out


def rank_filter(image: np.ndarray, size: int, rank: int) -> np.ndarray:
    """scipy's rank_filter(image, rank, size, mode="nearest"): over each size x size window, the
    element of `rank` (0: the minimum)."""
    before = size // 2
    padded = np.pad(image, ((before, size - 1 - before), (before, size - 1 - before)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size)).reshape(*image.shape, size * size)
    ranked: np.ndarray = np.partition(windows, rank, axis=-1)[..., rank]
    return ranked


def nearest_outside(inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every pixel, the (row, col) of the nearest pixel (Euclidean) that is not `inside`:
    scipy's distance_transform_edt(inside, return_indices=True), by brute force (the images are
    tiny: at 48x48, a table of at most 1,152 x 1,152 int32 distances, 5.3 MB). Where several are
    nearest, the first in row-major order is taken (scipy may pick another of them). Needs at least
    one pixel outside."""
    grid: np.ndarray = np.indices(inside.shape, dtype=np.int32)
    rows, cols = grid[0], grid[1]
    out_r, out_c = rows[~inside], cols[~inside]
    in_r, in_c = rows[inside], cols[inside]
    d2 = (in_r[:, None] - out_r[None, :]) ** 2 + (in_c[:, None] - out_c[None, :]) ** 2
    nearest = d2.argmin(axis=1)
    near_r: np.ndarray = rows.copy()
    near_c: np.ndarray = cols.copy()
    near_r[inside], near_c[inside] = out_r[nearest], out_c[nearest]
    return near_r, near_c


def dilate_disk(image: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Grey dilation (the maximum over the footprint) of a non-negative image with zeros beyond
    its border, for a footprint whose rows are each one run (a disk). The same as scipy's
    grey_dilation(image, footprint=footprint) on an image whose border is wider than the
    footprint's radius, up to a shift of one pixel for an even-sized footprint (scipy centres it
    differently), which cropping to the ink removes.

    Each row of the footprint is a horizontal maximum over a run, looked up in maxima over runs of
    1, 2, 4, ... pixels: a few dozen array operations, not one per footprint pixel.
    """
    height, width = image.shape
    centre = (footprint.shape[0] - 1) // 2
    reach = footprint.shape[1]
    # spans[n][:, reach + x]: maximum of image[:, x : x + n], zeros beyond the border
    spans = {1: np.pad(image, ((0, 0), (reach, reach)))}
    n = 1
    while 2 * n <= footprint.shape[1]:
        wider = spans[n].copy()
        np.maximum(wider[:, :-n], spans[n][:, n:], out=wider[:, :-n])
        spans[2 * n] = wider
        n *= 2
    out = np.zeros_like(image)
    for dy, row in enumerate(footprint):
        xs = np.flatnonzero(row)
        if xs.size == 0:
            continue
        first, last = int(xs[0]) - centre, int(xs[-1]) - centre
        # The run is covered by two spans of the longest length n that fits: from first and last - n + 1.
        n = 1 << ((last - first + 1).bit_length() - 1)
        a, b = reach + first, reach + last - n + 1
        run = np.maximum(spans[n][:, a : a + width], spans[n][:, b : b + width])
        shift = dy - centre  # out[y] takes run[y + shift]
        if shift >= 0:
            np.maximum(out[: height - shift], run[shift:], out=out[: height - shift])
        else:
            np.maximum(out[-shift:], run[: height + shift], out=out[-shift:])
    return out


def dilate_cross(mask: np.ndarray) -> np.ndarray:
    """scipy's binary_dilation with its default structure (the 3x3 cross) and border (0)."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def erode_cross(mask: np.ndarray) -> np.ndarray:
    """scipy's binary_erosion with its default structure (the 3x3 cross) and border (0)."""
    out = mask.copy()
    out[1:] &= mask[:-1]
    out[:-1] &= mask[1:]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    out[0] = out[-1] = False
    out[:, 0] = out[:, -1] = False
    return out


class Components:
    """The 8-connected components of a binary mask (scipy's label with a 3x3 structure), kept as
    runs of pixels along rows: a digit at 128 pixels is a few hundred runs, not 16,384 labels.

    `areas` and `touches_border` are per component (0 .. count - 1); `mask(wanted)` paints the
    components with wanted[i] True back into a mask.
    """

    def __init__(self, mask: np.ndarray) -> None:
        height, width = mask.shape
        self.shape = mask.shape
        self.source = mask
        stride = width + 1  # a zero column after each row: every run ends in its own row
        flat = np.zeros(1 + height * stride, dtype=bool)  # and a zero before the first pixel
        flat[1:].reshape(height, stride)[:, :width] = mask
        self.starts = np.flatnonzero(flat[1:] > flat[:-1])  # flat index of a run's first pixel
        self.ends = np.flatnonzero(flat[1:] < flat[:-1])  # flat index one past its last
        row = self.starts // stride
        first, end = self.starts - row * stride, self.ends - row * stride
        # 8-connected to run b: the runs of the row above with end >= b's first and first <= b's end.
        lo = np.searchsorted(self.ends, self.starts - stride, side="left")
        hi = np.searchsorted(self.starts, self.ends - stride, side="right")
        counts = np.maximum(hi - lo, 0)
        below = np.repeat(np.arange(self.starts.size), counts)
        above = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(below.size)
        root = _union(self.starts.size, above, below)
        is_root = root == np.arange(root.size)
        self.component = (np.cumsum(is_root) - 1)[root]  # of each run, numbered 0 .. count - 1
        self.count = int(is_root.sum())
        self.areas = np.bincount(self.component, weights=end - first, minlength=self.count).astype(np.int64)
        edge = (row == 0) | (row == height - 1) | (first == 0) | (end == width)
        self.touches_border = np.bincount(self.component, weights=edge, minlength=self.count) > 0

    def pixels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every pixel of the mask as (its component, its row, its column): what per-component sums
        over the image need, at the cost of the mask's pixels rather than the whole image's."""
        stride = self.shape[1] + 1
        lengths = self.ends - self.starts
        first = np.repeat(self.starts - (np.cumsum(lengths) - lengths), lengths)
        flat = first + np.arange(first.size)  # each pixel's index in the padded flat layout
        return np.repeat(self.component, lengths), flat // stride, flat % stride

    def boxes(self) -> np.ndarray:
        """(count, 4) int64: each component's first row, last row + 1, first column, last column + 1."""
        stride = self.shape[1] + 1
        row = self.starts // stride
        first, end = self.starts - row * stride, self.ends - row * stride
        out = np.empty((self.count, 4), dtype=np.int64)
        out[:, 0], out[:, 2] = self.shape[0], self.shape[1]
        out[:, 1] = out[:, 3] = 0
        np.minimum.at(out[:, 0], self.component, row)
        np.maximum.at(out[:, 1], self.component, row + 1)
        np.minimum.at(out[:, 2], self.component, first)
        np.maximum.at(out[:, 3], self.component, end)
        return out

    def mask(self, wanted: np.ndarray) -> np.ndarray:
        height, width = self.shape
        keep = wanted[self.component]
        if keep.all():
            return self.source.astype(bool, copy=True)
        edges = np.zeros(height * (width + 1) + 1, dtype=np.int8)
        edges[self.starts[keep]] = 1
        edges[self.ends[keep]] = -1
        painted = np.cumsum(edges[:-1], dtype=np.int8).reshape(height, width + 1)[:, :width]
        out: np.ndarray = painted.astype(bool)
        return out


def _union(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The root of every node 0 .. n-1 of the graph with edges a[i] -- b[i]: each edge hooks the
    larger of its two roots under the smaller, then every node is pointed at its root, until the
    two ends of every edge share a root (a few rounds)."""
    parent = np.arange(n)
    while True:
        ra, rb = parent[a], parent[b]
        differ = ra != rb
        if not differ.any():
            return parent
        ra, rb = ra[differ], rb[differ]
        np.minimum.at(parent, np.maximum(ra, rb), np.minimum(ra, rb))
        while True:  # two jumps a check: each jump halves the longest path to a root
            up = parent[parent]
            up = up[up]
            if np.array_equal(up, parent):
                break
            parent = up
