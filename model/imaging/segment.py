"""Which strokes make one digit, and the digits of a number, left to right.

The strokes are the components of ink `model.imaging.geometry.find_strokes` keeps. Two strokes belong to
one digit when their columns overlap by at least OVERLAP of the narrower one's width: a 4 or a 5
drawn in two strokes, a broken pen line, a 7's crossbar; grouped again until no two groups overlap
so; strokes one above the other (STACKED), a piece too short to be a digit beside a stroke
(BESIDE_GAP) and strokes that nearly touch (TOUCH_GAP) are one digit too. Digits sit side by side,
so a gap between their columns separates them, whatever their sizes and however the baseline
slopes. A group at least DIGIT_HEIGHT of the tallest group's
height is a digit, and so is a flat one as wide (FLAT_HEIGHT); a smaller one (a speck, a dot, an
underline, a minus sign) is dropped.

A number's faint pieces (strokes too small to be kept, groups too short to be digits) join the digit
they lie against, or together make a faint digit of their own (`attach_faint`).

Digits that touch are one group, wider than a digit: `cut_candidates` finds where such a group
may be cut (the columns holding least ink), and the model decides which pieces, if any, are read
(`model.imaging.number`; `/predict` counts groups and never cuts).
"""

from __future__ import annotations

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
#: So is a flat one (a 2 written wide) at least FLAT_HEIGHT of it high, DIGIT_HEIGHT of it wide and
#: at most FLAT_ASPECT times as wide as high: a minus sign, an underline or a blot is not.
FLAT_HEIGHT, FLAT_ASPECT = 0.25, 3.0
#: A group wider than CUTTABLE x its height may be digits that touch (printed ones side by side are
#: as narrow as that; many single digits are as wide too: the model decides,
#: `model.imaging.number.choose`); a cut lies at least EDGE x the height from either side, at most
#: CANDIDATES of them are tried besides the even split into DIGIT_ASPECT-wide digits, and a piece
#: is PIECE x the height wide at least and at most.
CUTTABLE, EDGE, CANDIDATES = 0.75, 0.12, 6
DIGIT_ASPECT = 0.7
PIECE = (0.2, 1.25)
#: A faint piece (a stroke too small to be kept on its own, or a group too short to be a digit)
#: whose box is at most NEAR_ROWS of a digit's height above or below its box and NEAR_COLUMNS of it
#: beside is part of that digit: the loop of a 9 in a fine pen, a photo's faded stroke.
NEAR_ROWS, NEAR_COLUMNS = 0.3, 0.15
#: A digit grows by its faint pieces to at most GROWN x the tallest digit's height, each way, in at
#: most ATTACH_PASSES passes over them (a chain of specks leads nowhere).
GROWN, ATTACH_PASSES = 1.2, 8
#: Faint pieces that join no digit but together stand as tall as one (DIGIT_HEIGHT of the tallest),
#: clear of every digit's columns and with at least FAINT_INK of the boldest digit's strong ink,
#: are a digit of their own: a fine pen's digit beside bold ones.
FAINT_INK = 0.03
#: Faint pieces at most FAINT_GAP of the tallest digit's height apart are one faint digit's.
FAINT_GAP = 0.15
#: More strokes than this are not handwriting but texture or noise: they are grouped in one pass
#: (overlapping columns), and if that leaves more groups than this, the other rules are skipped:
#: weighing every pair again after each merge costs n^3.
MAX_STROKES = 256

#: (first row, last row + 1, first column, last column + 1), as `model.imaging.geometry.Box`.
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
    found = np.asarray(boxes, dtype=np.int64)[order]
    members = [[int(ids[i])] for i in order]
    if len(found) > MAX_STROKES:  # texture, not writing: one sweep, each stroke joins the one before it
        found, members = _sweep(found, members)
    if len(found) <= MAX_STROKES:
        for rule in (_same_digit, _touch, _beside):  # the surest rules first: a piece joins its own digit
            found, members = _merge(found, members, rule)
    heights, widths = found[:, 1] - found[:, 0], found[:, 3] - found[:, 2]
    tallest = heights.max()
    flat = (heights >= FLAT_HEIGHT * tallest) & (widths >= DIGIT_HEIGHT * tallest) & (widths <= FLAT_ASPECT * heights)
    keep = (heights >= DIGIT_HEIGHT * tallest) | flat
    digits = [Group(_box(b), tuple(m)) for b, m, k in zip(found, members, keep, strict=True) if k]
    return sorted(digits, key=lambda g: (g.box[2] + g.box[3], g.box[0]))


def _sweep(boxes: np.ndarray, members: list[list[int]]) -> tuple[np.ndarray, list[list[int]]]:
    out, joined = [boxes[0]], [members[0]]
    for box, m in zip(boxes[1:], members[1:], strict=True):
        if _same_digit(out[-1], box):
            out[-1], joined[-1] = _union(out[-1], box), joined[-1] + m
        else:
            out.append(box)
            joined.append(m)
    return np.array(out), joined


def _box(row: np.ndarray) -> Box:
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])])


Rule = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _merge(boxes: np.ndarray, members: list[list[int]], rule: Rule) -> tuple[np.ndarray, list[list[int]]]:
    """Groups joined, the nearest pair first (a piece too short to be a digit joins its nearest
    neighbour), while `rule` says two are one digit. Every pair is weighed once, in numpy; after a
    join only the joined group's pairs are weighed again (the rules are symmetric, pairwise)."""
    boxes, members = boxes.copy(), list(members)
    n = len(boxes)
    if n < 2:
        return boxes, members
    never = np.iinfo(np.int64).max
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)  # each pair once, as (i, j) with i < j

    def gaps(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # the pair's gap where `rule` joins it, else never
        gap = np.maximum(a[..., 2], b[..., 2]) - np.minimum(a[..., 3], b[..., 3])
        return np.where(rule(a, b), gap, never)

    weighed = np.where(upper, gaps(boxes[:, None, :], boxes[None, :, :]), never)
    alive = np.ones(n, dtype=bool)
    while True:
        i, j = np.unravel_index(np.argmin(weighed), weighed.shape)  # the first of the nearest, as before
        if weighed[i, j] == never:
            break
        boxes[i] = _union(boxes[i], boxes[j])
        members[i] = members[i] + members[j]
        alive[j] = False
        weighed[j, :] = weighed[:, j] = never
        again = gaps(boxes[i][None, :], boxes)
        again[~alive] = never
        weighed[i, :] = np.where(upper[i], again, never)
        weighed[:, i] = np.where(upper[:, i], again, never)
    return boxes[alive], [m for m, a in zip(members, alive, strict=True) if a]


def _measures(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    """Of boxes a and b (broadcast): columns in common (negative: the gap between them), rows in
    common, the taller's and the shorter's height, the narrower's width."""
    ha, hb = a[..., 1] - a[..., 0], b[..., 1] - b[..., 0]
    shared = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 2], b[..., 2])
    rows = np.minimum(a[..., 1], b[..., 1]) - np.maximum(a[..., 0], b[..., 0])
    narrow = np.minimum(a[..., 3] - a[..., 2], b[..., 3] - b[..., 2])
    return shared, rows, np.maximum(ha, hb), np.minimum(ha, hb), narrow


def _same_digit(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Columns overlapping by OVERLAP of the narrower, or one above the other (STACKED)."""
    shared, rows, tall, short, narrow = _measures(a, b)
    overlapping = (shared > 0) & (shared >= OVERLAP * narrow)
    stacked = (rows <= STACKED * short) & (-shared <= STACKED_GAP * tall)
    return np.asarray(overlapping | stacked)


def _touch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    shared, _, tall, _, _ = _measures(a, b)
    return np.asarray(-shared <= TOUCH_GAP * tall)


def _beside(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    shared, _, tall, short, _ = _measures(a, b)
    return np.asarray((short < DIGIT_HEIGHT * tall) & (-shared <= BESIDE_GAP * tall))


def attach_faint(digits: list[Group], boxes: np.ndarray, ids: np.ndarray, areas: np.ndarray) -> list[Group]:
    """`digits` (from `group_strokes`) with the faint pieces near them: `boxes` (n, 4) and `ids`
    of every kept stroke, `areas` their strong ink. A stroke in no digit joins the digit whose box
    it lies nearest (NEAR_ROWS, NEAR_COLUMNS), as long as the digit's box then reaches into no
    other digit's columns, again until none joins (GROWN, ATTACH_PASSES); the rest, joined where
    they lie close together (FAINT_GAP), make digits of their own where they are faint digits
    (FAINT_INK). Left to right."""
    if not digits or len(ids) > MAX_STROKES:
        return digits
    found = np.array([g.box for g in digits], dtype=np.int64)
    members = [list(g.members) for g in digits]
    inside = {m for g in digits for m in g.members}
    pieces = [(np.asarray(b, dtype=np.int64), int(i)) for b, i in zip(boxes, ids, strict=True) if int(i) not in inside]
    heights = found[:, 1] - found[:, 0]  # the reach stays what the digits' own heights give
    most = GROWN * heights.max()
    for _ in range(ATTACH_PASSES):
        rest = []
        for box, i in pieces:
            k = _nearest(found, heights, box, most)
            if k is None:
                rest.append((box, i))
            else:
                found[k] = _union(found[k], box)
                members[k].append(i)
        done, pieces = len(rest) == len(pieces), rest
        if done or not pieces:
            break
    out = [Group(_box(b), tuple(m)) for b, m in zip(found, members, strict=True)]
    if pieces:
        strong = dict(zip((int(i) for i in ids), areas, strict=True))
        tallest = int(heights.max())
        boldest = max(sum(strong[m] for m in g.members) for g in out)
        for g in _chains(np.array([b for b, _ in pieces]), np.array([i for _, i in pieces]), FAINT_GAP * tallest):
            r0, r1, c0, c1 = g.box
            clear = ((found[:, 3] <= c0) | (found[:, 2] >= c1)).all()
            if clear and r1 - r0 >= DIGIT_HEIGHT * tallest and sum(strong[m] for m in g.members) >= FAINT_INK * boldest:
                out.append(g)
    return sorted(out, key=lambda g: (g.box[2] + g.box[3], g.box[0]))


def _chains(boxes: np.ndarray, ids: np.ndarray, reach: float) -> list[Group]:
    """Strokes grouped by `group_strokes`' rules, none dropped, and groups joined whenever their
    boxes are at most `reach` pixels apart: the dashes of a faint line, however they lie around a
    loop."""
    order = np.argsort(boxes[:, 2], kind="stable")
    boxes, members = boxes[order], [[int(ids[i])] for i in order]
    for rule in (_same_digit, _touch, _beside):
        boxes, members = _merge(boxes, members, rule)
    n = len(boxes)
    a, b = boxes[:, None, :], boxes[None, :, :]
    dy = np.maximum(a[..., 0], b[..., 0]) - np.minimum(a[..., 1], b[..., 1])
    dx = np.maximum(a[..., 2], b[..., 2]) - np.minimum(a[..., 3], b[..., 3])
    near = np.maximum(dx, dy) <= reach
    label = np.arange(n)
    for _ in range(n):  # each pass spreads the smallest label one step along the chains
        spread = np.where(near, label[None, :], n).min(axis=1)
        if (spread == label).all():
            break
        label = spread
    out = []
    for k in np.unique(label):
        at = np.flatnonzero(label == k)
        box = boxes[at]
        out.append(Group((int(box[:, 0].min()), int(box[:, 1].max()), int(box[:, 2].min()), int(box[:, 3].max())),
                         tuple(m for i in at for m in members[i])))  # fmt: skip
    return out


def _nearest(digits: np.ndarray, heights: np.ndarray, box: np.ndarray, most: float) -> int | None:
    """The digit `box` lies near enough to join (the nearest of them), or None. `heights`: the
    digits' own, before any piece joined; `most`: the tallest and widest a digit may grow."""
    dy = np.maximum(0, np.maximum(digits[:, 0], box[0]) - np.minimum(digits[:, 1], box[1]))
    dx = np.maximum(0, np.maximum(digits[:, 2], box[2]) - np.minimum(digits[:, 3], box[3]))
    near = (dy <= NEAR_ROWS * heights) & (dx <= NEAR_COLUMNS * heights)
    for k in np.argsort(dx + dy, kind="stable"):
        if not near[k]:
            continue
        c0, c1 = min(digits[k, 2], box[2]), max(digits[k, 3], box[3])
        if c1 - c0 > most or max(digits[k, 1], box[1]) - min(digits[k, 0], box[0]) > most:
            continue
        others = np.delete(digits, k, axis=0)
        if ((others[:, 3] <= c0) | (others[:, 2] >= c1)).all():
            return int(k)
    return None


def cut_candidates(ink: np.ndarray, box: Box) -> list[int]:
    """Where a group of strokes may be cut into digits that touch, as column offsets into its box,
    left to right (none when it is no wider than CUTTABLE x its height): the columns holding the
    least ink in their neighbourhood (a local minimum of the column sums, at least EDGE x the height
    from either side, at most CANDIDATES of them, the thinnest first), and the cuts an even split
    into DIGIT_ASPECT-wide digits would make, each moved to the thinnest column within a third of a
    digit's width. The model decides which cut, if any, is read (`model.imaging.number.choose`)."""
    r0, r1, c0, c1 = box
    height, width = r1 - r0, c1 - c0
    if width <= CUTTABLE * height:
        return []
    columns = ink[r0:r1, c0:c1].sum(axis=0)
    smooth = np.convolve(columns, np.ones(3) / 3, mode="same")
    edge = max(1, round(EDGE * height))
    inner = np.arange(edge, width - edge)
    if not len(inner):
        return []
    left, right = smooth[inner - 1], smooth[np.minimum(inner + 1, width - 1)]
    minima = inner[(smooth[inner] <= left) & (smooth[inner] <= right)]
    found: list[int] = []
    for c in minima[np.argsort(smooth[minima], kind="stable")]:
        if len(found) == CANDIDATES:
            break
        if all(abs(int(c) - f) >= edge for f in found):
            found.append(int(c))
    count = max(2, round(width / (DIGIT_ASPECT * height)))
    step = width / count
    for k in range(1, count):
        lo, hi = max(1, round(k * step - step / 3)), min(width - 1, round(k * step + step / 3))
        if hi > lo:
            found.append(lo + int(np.argmin(columns[lo:hi])))
    return sorted(set(found))
