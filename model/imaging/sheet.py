"""The sheet of paper in a photo: where a darker table shows around it, only what lies on the sheet
can be the digit.

A phone photo of a note often shows the table along an edge, in wedges where the sheet lies askew,
or all round a small sheet. In the ink map the table is as dark as ink: a digit written near the
sheet's edge would be one stroke with it, and where the table is most of the picture the sheet
itself would look like the ink (light on a dark ground). The sheet is the largest light region (lighter than
Otsu's threshold) and, a sheet being convex, everything inside its convex hull: the writing on it
too, even where it reaches the edge. The hull counts only when it covers at least MIN_SHEET of the
image, is mostly light with some writing (SOLID, WRITING: not a light digit's strokes on a dark
ground), leaves at least MIN_TABLE of the image outside, and the outside is dark (TABLE_CONTRAST,
LIGHT_OUTSIDE): a table, not the rest of a sheet in uneven light or paper a bold digit cuts in
parts. Only for uploads larger than the working size (`model.imaging.preprocess.mnistify`): an enlarged
coarse scan's bold digit, light on dark, is as solid and convex as a sheet.
"""

from __future__ import annotations

import cv2
import numpy as np

from model.imaging.components import Components, erode_cross
from model.imaging.quantiles import median

#: The sheet covers at least this share of the image, at least SOLID of its hull light (paper,
#: with writing on it: not a light digit's strokes on a dark ground) ...
MIN_SHEET, SOLID = 0.15, 0.85
#: ... and is a sheet's shape: its hull fills at least RECTANGULAR of the smallest rectangle around
#: it (an ellipse, a bold 0, fills 0.79), which is at least WIDE of the image's shorter side across
#: (a bold 1 is a bar) ...
RECTANGULAR, WIDE = 0.82, 0.3
#: ... with dark inside it (the writing) on at least WRITING of it ...
WRITING = 0.001
#: ... and leaves at least this share outside it (seen first as at least TABLE_EDGE of the
#: image's border not in the light region), ...
MIN_TABLE, TABLE_EDGE = 0.01, 0.05
#: ... whose median level lies at least this far below the sheet's, and at most LIGHT_OUTSIDE of
#: it as light as the sheet (else the light region is paper cut in parts by a digit filling the
#: frame, a coarse scan enlarged, not a sheet on a table).
TABLE_CONTRAST = 0.2
LIGHT_OUTSIDE = 0.1


def sheet(gray: np.ndarray, threshold: float) -> np.ndarray | None:
    """A mask of the sheet in `gray` (light paper, in [0, 1]; `threshold` parts it from ink and
    table), or None where no darker table shows around a sheet."""
    light = gray > threshold
    if _border(light).mean() > 1 - TABLE_EDGE:  # light all round the border: no table shows
        return None
    parts = Components(light)
    if parts.count == 0:
        return None
    biggest = np.zeros(parts.count, dtype=bool)
    biggest[int(np.argmax(parts.areas))] = True
    region = parts.mask(biggest)
    if _border(region).mean() > 1 - TABLE_EDGE:  # the sheet all round the border: no table shows
        return None
    corners = hull_of(region)
    if len(corners) < 3:
        return None
    fill, width = _rectangle(corners)
    if fill < RECTANGULAR or width < WIDE * min(gray.shape):  # a blob or a bar: a bold digit, not a sheet
        return None
    hull = convex_fill(region, corners)
    inside = hull.mean()
    if inside < MIN_SHEET or inside > 1 - MIN_TABLE:
        return None
    area = hull.sum()
    written = area - region.sum()  # the dark inside the hull: the writing
    if written > (1 - SOLID) * area or written < WRITING * area:  # light strokes on a dark ground; nothing on it
        return None
    outside = ~hull
    if light[outside].mean() > LIGHT_OUTSIDE:  # paper beyond the hull: the writing cut the sheet in parts
        return None
    if median(gray[outside]) > median(gray[hull & light]) - TABLE_CONTRAST:
        return None
    return erode_cross(hull)


def _border(mask: np.ndarray) -> np.ndarray:
    return np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])


def hull_of(mask: np.ndarray) -> np.ndarray:
    """The corners of the convex hull of `mask`'s pixels, (k, 2) int32 as (x, y), in order
    (`cv2.convexHull` of the first and last pixel of each row: the hull's only candidates)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return np.zeros((0, 2), dtype=np.int32)
    first = mask[rows].argmax(axis=1)
    last = mask.shape[1] - 1 - mask[rows][:, ::-1].argmax(axis=1)
    ends = np.concatenate([np.stack([first, rows], 1), np.stack([last, rows], 1)]).astype(np.int32)
    corners: np.ndarray = cv2.convexHull(ends)[:, 0]
    return corners


def _rectangle(corners: np.ndarray) -> tuple[float, float]:
    """How much of the smallest rectangle around a convex polygon it fills (1 for a rectangle, 0.79
    for an ellipse), and that rectangle's shorter side (`cv2.minAreaRect`)."""
    _, sides, _ = cv2.minAreaRect(corners)
    return cv2.contourArea(corners) / max(sides[0] * sides[1], 1e-9), float(min(sides))


def convex_fill(mask: np.ndarray, corners: np.ndarray | None = None) -> np.ndarray:
    """The convex hull of `mask`'s pixels (or the polygon `corners`, `hull_of`'s), filled."""
    hull = hull_of(mask) if corners is None else corners
    out = np.zeros(mask.shape, dtype=np.uint8)
    if len(hull):
        cv2.fillConvexPoly(out, hull, (1,))
    filled: np.ndarray = out.view(bool)
    return filled
