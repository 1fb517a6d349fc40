"""Reading a number: the path from image bytes to each digit's model input, and the choice, once
the model has answered, between reading a wide group of strokes as one digit or as the digits
that touch in it.

The image is read as `model.imaging.preprocess` reads a single digit (decoded safely, grey levels, the ink
map of the clean lane or the photo lane), at NUMBER_SIDE rather than ANALYSIS_SIDE, so a dozen
digits in a row keep 30-odd pixels each. Its strokes are grouped into digits left to right
(`model.imaging.segment`), and the faint pieces a fine pen or a photo's light leaves beside them are given
to the digit they lie against, or make a faint digit of their own (`model.imaging.segment.attach_faint`);
all the ink in each digit's box but its neighbours' strokes (the faint ink
between the pieces of a fine pen's line included, which the stroke thresholds leave out) becomes a
28x28 input as a single digit's does (`model.imaging.geometry.model_input`). A group much wider than a
digit may also be cut where its columns hold the least ink (`model.imaging.segment.cut_candidates`):
the model reads the whole and every piece between two candidate cuts, and the pieces that cover the
group win when the least confident of them is read with more confidence than the whole (`choose`).
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
from PIL import Image

from model.contract import SIZE
from model.imaging.decode import DEFAULT_MAX_PIXELS, Opened, open_image
from model.imaging.errors import NoInk, TooManyDigits
from model.imaging.geometry import Strokes, bbox, find_strokes, model_input, passes_through
from model.imaging.gray import enlarge, row_side, to_gray, transparent, unblock
from model.imaging.ink import border_level, clean_ink_map, ink_map, on_table
from model.imaging.level import level, slope
from model.imaging.preprocess import ENLARGE_TO, WORK_SIDE, decoded
from model.imaging.segment import PIECE, Box, attach_faint, cut_candidates

#: A number is looked for at this longer side: a dozen digits in a row still 30-odd pixels each.
NUMBER_SIDE = 512
#: A number's strokes with less than this share of the largest one's strong ink are specks (a
#: single digit's: `model.imaging.geometry.SPECKS`); the rest too small to be digits are dropped by size.
NUMBER_SPECKS = 0.02
#: A group the model reads as one digit with at least this confidence is one digit, however it
#: might be cut: a handwritten digit's halves can each look like a digit, while digits that touch,
#: read whole, look like none (the network is trained to spread its answer on them).
DOUBT = 0.5
#: The most digits read in one number; more is TooManyDigits.
MAX_DIGITS = 16


@dataclass(frozen=True)
class NumberDigit:
    image: np.ndarray  # (28, 28), as `Preprocessed.image`
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) in the upload's pixels, after EXIF orientation


@dataclass(frozen=True)
class Slot:
    """One group of strokes: read whole, or (a group wide enough to be digits that touch) as pieces
    between its candidate cuts: bounds 0 (its left side) to `ends` (its right side), a piece from
    bound a to bound b."""

    whole: NumberDigit
    pieces: tuple[tuple[int, int, NumberDigit], ...] = ()
    ends: int = 1
    lane: str = "clean"  # the upload's input lane (`model.imaging.preprocess.LANES`)

    @property
    def images(self) -> list[np.ndarray]:
        return [self.whole.image, *(d.image for _, _, d in self.pieces)]


def preprocess_number(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Slot]:
    """Image bytes -> the groups of strokes of the number in it, left to right. Raises a
    `model.imaging.errors.PreprocessError` for bad input, TooManyDigits past MAX_DIGITS groups."""
    return preprocess_number_opened(open_image(data, max_pixels), data)


def preprocess_number_opened(opened: Opened, data: bytes) -> list[Slot]:
    """`preprocess_number` for an image `open_image(data)` has already opened."""
    return decoded(opened, data, NUMBER_SIDE, _slots)


def _slots(img: Image.Image) -> list[Slot]:
    width, height = img.size
    side = row_side(img.size, NUMBER_SIDE)  # a long row: its digits kept apart (and counted)
    gray = to_gray(img, side)
    if max(img.size) <= side:
        gray = unblock(gray)
    if img.size == (SIZE, SIZE):
        same = passes_through(gray)
        if same is not None:  # an MNIST digit: one digit, the whole image
            return [Slot(NumberDigit(same, (0, 0, SIZE, SIZE)))]
    short, long = min(gray.shape), max(gray.shape)
    photo = max(img.size) > WORK_SIDE  # as `model.imaging.preprocess.mnistify` takes it
    if short < ENLARGE_TO and long < side:  # a few pixels a digit: analysed as the smooth shape they stand for
        gray = enlarge(gray, long + 1, min(long * -(-ENLARGE_TO // short), NUMBER_SIDE))
    paper = border_level(gray)
    if paper is not None and photo and on_table(gray, paper):  # an even-toned table round the sheet
        paper = None
    ink = ink_map(gray, photo) if paper is None else clean_ink_map(gray, paper)
    # a drawing of one glyph on a canvas is held to the canvas lane's strict threshold (people draw
    # letters there); the digits of a drawn number, each smaller and cut from its neighbours, to the clean one's
    canvas = transparent(img)
    every = find_strokes(ink, border_clutter=paper is None, specks=0.0)
    back = _upright
    angle = slope(every.ink)
    if angle:  # a steep line: levelled, what lies far from its strokes (clutter) left out
        r0, r1, c0, c1 = bbox(every.ink)
        margin = (r1 - r0) // 4
        near = np.zeros_like(ink)
        near[max(0, r0 - margin) : r1 + margin, max(0, c0 - margin) : c1 + margin] = 1
        levelled = level(ink * near, angle)
        ink, back = levelled.ink, levelled.back
        every = find_strokes(ink, border_clutter=False, specks=0.0)
    bold = every.kept & (every.areas >= NUMBER_SPECKS * every.areas[every.kept].max())
    strokes = Strokes(every.ink, every.parts, bold, every.areas)
    kept = np.flatnonzero(every.kept)  # the faint pieces too: attach_faint weighs them
    groups = attach_faint(strokes.digits, every.parts.boxes()[kept], kept, every.areas[kept])
    if len(groups) > MAX_DIGITS:
        raise TooManyDigits(f"{len(groups)} digits found; at most {MAX_DIGITS} are read in one image")
    sy, sx = height / gray.shape[0], width / gray.shape[1]
    lane = "photo" if paper is None else "canvas" if canvas and len(groups) == 1 else "clean"

    def digit(own: np.ndarray, box: Box) -> NumberDigit:
        r0, r1, c0, c1 = box
        x0, y0, x1, y1 = back(box)
        upload = (
            max(0, int(x0 * sx)),
            max(0, int(y0 * sy)),
            min(width, math.ceil(x1 * sx)),
            min(height, math.ceil(y1 * sy)),
        )
        return NumberDigit(model_input(own[r0:r1, c0:c1]), upload)

    owner = np.full(ink.shape, -1, dtype=np.int32)  # the group whose strokes a pixel is, or -1
    for k, group in enumerate(groups):
        owner[strokes.mask(group)] = k
    slots = []
    for k, group in enumerate(groups):
        # all the ink in its box but its neighbours' strokes: the faint ink between a fine pen's
        # dashes, under the stroke thresholds, too
        r0, r1, c0, c1 = group.box
        own = np.zeros_like(ink)
        mine = owner[r0:r1, c0:c1]
        own[r0:r1, c0:c1] = np.where((mine == -1) | (mine == k), ink[r0:r1, c0:c1], 0)
        bounds = [0, *cut_candidates(own, group.box), c1 - c0]
        pieces = []
        for a, b in itertools.combinations(range(len(bounds)), 2):
            if (a, b) != (0, len(bounds) - 1) and PIECE[0] <= (bounds[b] - bounds[a]) / (r1 - r0) <= PIECE[1]:
                with contextlib.suppress(NoInk):  # a piece with no ink of its own is no piece
                    pieces.append((a, b, digit(own, (r0, r1, c0 + bounds[a], c0 + bounds[b]))))
        slots.append(Slot(digit(own, group.box), tuple(pieces), len(bounds) - 1, lane))
    if not slots:
        raise NoInk("no digit found")
    return slots


def _upright(box: Box) -> tuple[float, float, float, float]:
    r0, r1, c0, c1 = box
    return c0, r0, c1, r1


class Read(Protocol):
    @property
    def confidence(self) -> float: ...


A = TypeVar("A", bound=Read)


def choose(slots: Sequence[Slot], answers: Sequence[A]) -> list[tuple[NumberDigit, A]]:
    """The digits of the number: each slot's whole group, or, when the whole is read with less than
    DOUBT, the pieces that cover it side to side whose least confident is read with the most
    confidence, if that is more than the whole's (fewer pieces at a tie). `answers` are the model's
    for the slots' `images`, in order. TooManyDigits past MAX_DIGITS."""
    out: list[tuple[NumberDigit, A]] = []
    at = 0
    for slot in slots:
        whole, read = answers[at], answers[at + 1 : at + 1 + len(slot.pieces)]
        at += 1 + len(slot.pieces)
        # best[b]: the reading from bound 0 to bound b whose least confident piece is most confident
        best: dict[int, tuple[float, list[int]]] = {0: (math.inf, [])}
        for k, (a, b, _) in sorted(enumerate(slot.pieces), key=lambda e: e[1][1]):
            if a in best:
                least, path = min(best[a][0], read[k].confidence), [*best[a][1], k]
                if b not in best or (least, -len(path)) > (best[b][0], -len(best[b][1])):
                    best[b] = (least, path)
        least, path = best.get(slot.ends, (0.0, []))
        if len(path) > 1 and least > whole.confidence and whole.confidence < DOUBT:
            out.extend((slot.pieces[k][2], read[k]) for k in path)
        else:
            out.append((slot.whole, whole))
    if len(out) > MAX_DIGITS:
        raise TooManyDigits(f"{len(out)} digits found; at most {MAX_DIGITS} are read in one image")
    return out
