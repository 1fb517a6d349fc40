"""Which strokes make one digit, and the digits of a number, left to right.

The strokes are the components of ink `model.geometry.find_strokes` keeps. Two strokes belong to
one digit when their columns overlap by at least OVERLAP of the narrower one's width: a 4 or a 5
drawn in two strokes, a broken pen line, a 7's crossbar; grouped again until no two groups overlap
so; strokes one above the other (STACKED), a piece too short to be a digit beside a stroke
(BESIDE_GAP) and strokes that nearly touch (TOUCH_GAP) are one digit too. Digits sit side by side,
so a gap between their columns separates them, whatever their sizes and however the baseline
slopes. A group at least DIGIT_HEIGHT of the tallest group's
height is a digit; a smaller one (a speck, a dot, an underline, a minus sign) is dropped.

Digits that touch are one group, wider than a digit: `split_touching` cuts such a group where its
columns hold the least ink, and the model decides whether the cut or the whole is read
(`model.number`; `/predict` counts groups and never cuts).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Strokes whose columns overlap by this share of the narrower one's width are one digit.
OVERLAP = 0.5
#: Strokes sharing at most STACKED of the shorter one's rows, and at most STACKED_GAP of the taller
#: one's height apart in columns, lie one above the other: one digit (a slanted 1 or 7 in pieces).
STACKED, STACKED_GAP = 0.45, 0.3
#: A stroke too short to be a digit (DIGIT_HEIGHT), at most BESIDE_GAP of the taller one's height
#: beside a stroke, is part of it (a 5's flag drawn apart).
BESIDE_GAP = 0.15
#: Strokes at most TOUCH_GAP of the taller one's height apart are one digit, broken: digits written
#: side by side leave more room than that.
TOUCH_GAP = 0.025
#: A group at least this share of the tallest group's height is a digit; smaller ones are specks.
DIGIT_HEIGHT = 0.4
#: A group wider than TOUCHING x its height may be digits that touch (3.3% of MNIST's test digits
#: are wider than 1.2 x their height, 0.4% 1.5x, none 2x: the model decides, `model.number.choose`);
#: each is taken to be about DIGIT_ASPECT x the height wide when deciding how many.
TOUCHING = 1.2
DIGIT_ASPECT = 0.7
#: More strokes than this are not handwriting but texture or noise: grouped by columns alone is
#: still right, but the pairwise overlaps would cost n^2; beyond it strokes are grouped in one pass.
MAX_STROKES = 256

#: (first row, last row + 1, first column, last column + 1), as `model.geometry.Box`.
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Group:
    box: Box
    members: tuple[int, ...]  # the strokes (component numbers) it is made of


def group_strokes(boxes: np.ndarray, ids: np.ndarray) -> list[Group]:
    """Strokes' boxes, (n, 4) as `Box` rows, and their component numbers -> the digits they make,
    left to right, specks dropped."""
    if len(boxes) == 0:
        return []
    order = np.argsort(boxes[:, 2], kind="stable")
    groups = [Group(_box(boxes[i]), (int(ids[i]),)) for i in order]
    if len(groups) > MAX_STROKES:  # one sweep: each stroke joins the group before it if they overlap
        groups = _sweep(groups)
    for rule in (_same_digit, _touch, _beside):  # the surest rules first: a piece joins its own digit
        groups = _merge(groups, rule)
    tallest = max(g.box[1] - g.box[0] for g in groups)
    digits = [g for g in groups if g.box[1] - g.box[0] >= DIGIT_HEIGHT * tallest]
    return sorted(digits, key=lambda g: (g.box[2] + g.box[3], g.box[0]))


def _sweep(groups: list[Group]) -> list[Group]:
    out = [groups[0]]
    for g in groups[1:]:
        if _same_digit(out[-1].box, g.box):
            out[-1] = Group(_union(out[-1].box, g.box), out[-1].members + g.members)
        else:
            out.append(g)
    return out


def _box(row: np.ndarray) -> Box:
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def _union(a: Box, b: Box) -> Box:
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def _merge(groups: list[Group], rule: Callable[[Box, Box], bool]) -> list[Group]:
    """Groups joined, a pair at a time, while `rule` says two are one digit; for a group too short
    to be a digit, the nearest one it may join."""
    while True:
        best: tuple[int, int, int] | None = None  # (gap, i, j)
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                a, b = groups[i].box, groups[j].box
                if rule(a, b):
                    gap = max(a[2], b[2]) - min(a[3], b[3])
                    if best is None or gap < best[0]:
                        best = (gap, i, j)
        if best is None:
            return groups
        _, i, j = best
        groups[i] = Group(_union(groups[i].box, groups[j].box), groups[i].members + groups[j].members)
        del groups[j]


def _measures(a: Box, b: Box) -> tuple[int, int, int, int]:
    """(columns in common, negative for a gap; rows in common; the taller's and the shorter's height)"""
    ha, hb = a[1] - a[0], b[1] - b[0]
    return min(a[3], b[3]) - max(a[2], b[2]), min(a[1], b[1]) - max(a[0], b[0]), max(ha, hb), min(ha, hb)


def _same_digit(a: Box, b: Box) -> bool:
    """Columns overlapping by OVERLAP of the narrower, or one above the other (STACKED)."""
    shared, rows, tall, short = _measures(a, b)
    if shared > 0 and shared >= OVERLAP * min(a[3] - a[2], b[3] - b[2]):
        return True
    return rows <= STACKED * short and -shared <= STACKED_GAP * tall


def _touch(a: Box, b: Box) -> bool:
    shared, _, tall, _ = _measures(a, b)
    return -shared <= TOUCH_GAP * tall


def _beside(a: Box, b: Box) -> bool:
    shared, _, tall, short = _measures(a, b)
    return short < DIGIT_HEIGHT * tall and -shared <= BESIDE_GAP * tall


def split_touching(ink: np.ndarray, box: Box) -> list[Box]:
    """A digit group's box, cut into the digits that touch in it: as many as its width holds at
    DIGIT_ASPECT (one when it is no wider than TOUCHING x its height), each cut at the column of
    least ink within a third of a digit's width of where an even cut would fall."""
    r0, r1, c0, c1 = box
    height, width = r1 - r0, c1 - c0
    if width <= TOUCHING * height:
        return [box]
    count = max(2, round(width / (DIGIT_ASPECT * height)))
    columns = ink[r0:r1, c0:c1].sum(axis=0)
    step = width / count
    cuts = [0]
    for k in range(1, count):
        lo, hi = round(k * step - step / 3), round(k * step + step / 3)
        lo = max(lo, cuts[-1] + 1)
        if hi <= lo:
            continue
        cuts.append(lo + int(np.argmin(columns[lo:hi])))
    cuts.append(width)
    return [(r0, r1, c0 + a, c0 + b) for a, b in itertools.pairwise(cuts) if b > a]
