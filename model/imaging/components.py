"""Connected components of a mask, with what preprocessing asks of them: OpenCV's labelling
(`cv2.connectedComponentsWithStats`, 8-connected), each component's area and box from its
statistics, and the pixels of any chosen components painted back into a mask.

Also the two 3x3-cross morphology steps the image path uses, with scipy.ndimage's border
conventions (tests/model/imaging/test_components.py holds them to scipy's results).
"""

from __future__ import annotations

import cv2
import numpy as np

_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def _u8(mask: np.ndarray) -> np.ndarray:
    """A bool mask as the uint8 image OpenCV takes, without a copy where it is contiguous."""
    return np.ascontiguousarray(mask).view(np.uint8)


def dilate_cross(mask: np.ndarray) -> np.ndarray:
    """scipy's binary_dilation with its default structure (the 3x3 cross) and border (0)."""
    out: np.ndarray = cv2.dilate(_u8(mask), _CROSS).view(bool)
    return out


def erode_cross(mask: np.ndarray) -> np.ndarray:
    """scipy's binary_erosion with its default structure (the 3x3 cross) and border (0)."""
    out: np.ndarray = cv2.erode(_u8(mask), _CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=(0,)).view(bool)
    return out


class Components:
    """The 8-connected components of a binary mask (scipy's label with a 3x3 structure), numbered
    0 .. count - 1 (OpenCV's labels less one; its 0 is the background).

    `areas` and `touches_border` are per component; `mask(wanted)` paints the components with
    wanted[i] True back into a mask.
    """

    def __init__(self, mask: np.ndarray) -> None:
        height, width = mask.shape
        self.source = mask
        # 16-bit labels where they cannot run out (at most one 8-connected component in each 2x2
        # block): OpenCV's statistics are cheaper with them
        small = ((height + 1) // 2) * ((width + 1) // 2) < 65535
        ltype = cv2.CV_16U if small else cv2.CV_32S
        n, self.labels, stats, _ = cv2.connectedComponentsWithStats(_u8(mask), connectivity=8, ltype=ltype)
        self.count = n - 1
        x, y, w, h, area = stats[1:].astype(np.int64).T
        self.areas = area
        self._boxes = np.stack([y, y + h, x, x + w], axis=1)
        self.touches_border = (x == 0) | (y == 0) | (x + w == width) | (y + h == height)

    def count_in(self, where: np.ndarray) -> np.ndarray:
        """(count,) int64: how many of each component's pixels are True in `where` (of the mask's shape)."""
        counts: np.ndarray = np.bincount(self.labels[where].ravel(), minlength=self.count + 1)[1:]
        return counts

    def boxes(self) -> np.ndarray:
        """(count, 4) int64: each component's first row, last row + 1, first column, last column + 1."""
        return self._boxes

    def mask(self, wanted: np.ndarray) -> np.ndarray:
        if wanted.all():
            return self.source.astype(bool, copy=True)
        keep = np.zeros(self.count + 1, dtype=bool)
        keep[1:] = wanted
        out: np.ndarray = keep[self.labels]
        return out
