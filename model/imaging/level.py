"""A number written or photographed at a slope, levelled before its digits are told apart.

Digits are told apart by the gaps between their columns (`model.imaging.segment`); on a line that climbs
steeply, each digit's columns reach under the next one's and the number is one group. The line's
direction is the main axis of its strong ink (the eigenvector of the pixels' covariance with the
larger spread); when the ink is a line (LINE: much longer than it is high) sloping more than
LEVEL_FROM degrees (what the grouping copes with) and at most LEVEL_TO (beyond that, a column
of digits or a digit on its side, not a sloping line), the ink map is turned to level it. Boxes
found on the levelled map are taken back to the image's own pixels (`Levelled.back`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

#: Levelled when sloping more than LEVEL_FROM degrees and at most LEVEL_TO.
LEVEL_FROM, LEVEL_TO = 12.0, 40.0
#: A line: its strong ink spreads at least LINE times as far along its main axis as across it
#: (standard deviations).
LINE = 3.0
#: Ink above this is strong, as `model.imaging.geometry.STRONG`.
STRONG = 0.5


def slope(ink: np.ndarray) -> float:
    """The line of writing's slope in degrees (the angle from the image's x axis to it, y down),
    or 0.0 where it needs no levelling or is no line."""
    rows, cols = np.nonzero(ink > STRONG)
    if rows.size < 50:
        return 0.0
    spread, axes = np.linalg.eigh(np.cov(np.stack([cols, rows]).astype(np.float64)))
    if spread[1] < LINE**2 * max(spread[0], 1e-9):
        return 0.0
    dx, dy = axes[:, 1]
    angle = math.degrees(math.atan2(dy, dx))
    angle = (angle + 90.0) % 180.0 - 90.0  # a direction, not a vector: (-90, 90]
    return angle if LEVEL_FROM < abs(angle) <= LEVEL_TO else 0.0


@dataclass(frozen=True)
class Levelled:
    """An ink map turned by `angle` degrees so that its line of writing is level."""

    ink: np.ndarray
    matrix: tuple[float, float, float, float, float, float]  # levelled (x, y) -> original (x, y)

    def back(self, box: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
        """A box (first row, last row + 1, first column, last column + 1) of the levelled map ->
        the (x0, y0, x1, y1) around it in the original map's pixels."""
        r0, r1, c0, c1 = box
        a, b, c, d, e, f = self.matrix
        xs = [a * x + b * y + c for x in (c0, c1) for y in (r0, r1)]
        ys = [d * x + e * y + f for x in (c0, c1) for y in (r0, r1)]
        return min(xs), min(ys), max(xs), max(ys)


def level(ink: np.ndarray, angle: float) -> Levelled:
    """`ink` turned by -`angle` degrees about its centre (bilinear, the canvas grown to hold it)."""
    h, w = ink.shape
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    out_w = math.ceil(abs(w * cos) + abs(h * sin))
    out_h = math.ceil(abs(w * sin) + abs(h * cos))
    # levelled point p' -> original p = R(angle) (p' - centre') + centre
    a, b, d, e = cos, -sin, sin, cos
    c = w / 2 - a * out_w / 2 - b * out_h / 2
    f = h / 2 - d * out_w / 2 - e * out_h / 2
    matrix = (a, b, c, d, e, f)
    # `matrix` takes pixel edges to pixel edges; OpenCV's pixel (x, y) is centred on x + 0.5, y + 0.5
    centred = np.array([[a, b, c + (a + b - 1) / 2], [d, e, f + (d + e - 1) / 2]])
    turned = cv2.warpAffine(
        ink.astype(np.float32),
        centred,
        (out_w, out_h),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderValue=(0.0,),
    )
    return Levelled(turned, matrix)
