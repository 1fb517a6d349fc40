"""The one path from image bytes to the model's (28, 28) input, as MNIST itself was made.

The recipe, each step in its own module:

1. decode safely (`model.imaging.decode`): header and pixel cap first, then the first frame, upright;
2. an image that is already MNIST-like (28x28, white ink centred on black) passes through;
3. otherwise grey levels at a working size (`model.imaging.gray`; an image smaller than MNIST's 28
   pixels enlarged first), and the ink map (`model.imaging.ink`), a continuous intensity: the paper's
   level taken away and the contrast stretched, grey ink kept grey. On a clean background (a
   canvas, a scan: the border is one even level) straight from an image reduced to
   ANALYSIS_SIDE; on anything else (a photo) from the WORK_SIDE image, with the paper's uneven
   light taken away;
4. the digit kept (`model.imaging.geometry`: thresholds and components decide which strokes are kept,
   never a kept pixel's level), cropped, thin strokes thickened, fitted into 20x20 and centred by
   mass; a digit found small (under REFINE_BELOW / ANALYSIS_SIDE of the image) is cut out of the
   working image and looked at again, closer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
from PIL import Image

from model.contract import SIZE, to_tensor
from model.imaging.decode import DEFAULT_MAX_PIXELS, Opened, load, open_image
from model.imaging.errors import NoInk
from model.imaging.geometry import bbox, keep_digit, model_input, passes_through
from model.imaging.gray import enlarge, row_side, shrink, to_gray, transparent, unblock
from model.imaging.ink import border_level, clean_ink_map, ink_map, on_table
from model.imaging.segment import Box

T = TypeVar("T")

#: Working resolution: larger images are reduced to this longer side before analysis.
WORK_SIDE = 256
#: The digit is looked for at this longer side (at most this side, on the clean-background path:
#: see `to_gray`'s `blocks`); found spanning less than REFINE_BELOW / ANALYSIS_SIDE of the image
#: there, it is cut out of the working image and looked at again.
ANALYSIS_SIDE = 128
REFINE_BELOW = 64
#: Images smaller than MNIST's own 28 pixels (a coarse scan, 8x8 digits) are enlarged to at least
#: ENLARGE_TO before analysis.
ENLARGE_TO = 64
#: A digit wider than WIDE x its height may be digits that touch, printed side by side: whether it
#: is one digit is for the model to say (`app.predictor.Predictor.one_digit`): a few handwritten
#: digits are that wide too.
WIDE = 1.05


#: The input lanes, each with refusal thresholds of its own (`model.refusal`): strokes on a
#: transparent canvas (the drawing page's), a photo (uneven light, a table round the sheet: the
#: photo path below), anything else (a scan, a print, a drawing on paper, an MNIST digit).
LANES = ("canvas", "photo", "clean")


@dataclass(frozen=True)
class Preprocessed:
    image: np.ndarray  # (28, 28) float32 in [0, 1], white ink on black: what the model sees
    fast_path: bool  # True when the input was already MNIST-like and passed through
    lane: str = "clean"  # which of LANES the upload came by

    @property
    def wide(self) -> bool:
        """The digit's ink is wider than WIDE x its height (in the model's input, which keeps it)."""
        rows, cols = np.flatnonzero(self.image.max(1) > 0.1), np.flatnonzero(self.image.max(0) > 0.1)
        return len(rows) > 0 and cols[-1] - cols[0] + 1 > WIDE * (rows[-1] - rows[0] + 1)

    @property
    def tensor(self) -> torch.Tensor:
        """(1, 28, 28) float32, normalised with MEAN and STD. (The service normalises whole batches.)"""
        return to_tensor(self.image)


def preprocess(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Preprocessed:
    """Image bytes -> the model's input. Raises a `model.imaging.errors.PreprocessError` for bad input."""
    return preprocess_opened(open_image(data, max_pixels), data)


def preprocess_opened(opened: Opened, data: bytes) -> Preprocessed:
    """`preprocess` for an image `open_image(data)` has already opened (so its size is known)."""
    return decoded(opened, data, WORK_SIDE, _from_image)


def decoded(opened: Opened, data: bytes, side: int, read: Callable[[Image.Image], T]) -> T:
    """`read` of the image `open_image(data)` opened, decoded for `side` (`model.imaging.decode.load`).

    The decoded pixels are released when it returns (Image.close), not whenever the last reference
    goes: Pillow's image files can sit in reference cycles, which a service that collects cycles
    rarely would hold on to (bench/LOG.md, "Pillow images closed").
    """
    img = None
    try:
        img = load(opened, data, side)
        return read(img)
    finally:
        if img is not None:
            img.close()
        opened.close()


def _from_image(img: Image.Image) -> Preprocessed:
    if img.size == (SIZE, SIZE) and img.mode == "L":  # the common MNIST upload: no conversion needed
        same = passes_through(np.asarray(img).astype(np.float32) / np.float32(255))
        if same is not None:
            return Preprocessed(image=same, fast_path=True)
    side = row_side(img.size, WORK_SIDE)
    if side > WORK_SIDE:  # a long row: several digits side by side are told apart at a height they show
        _one_digit_in_row(to_gray(img, side))
    # an image up to the working size may be a few pixels enlarged by repeating them (`unblock`)
    small = max(img.size) <= WORK_SIDE
    if max(img.size) > ANALYSIS_SIDE:
        # the clean lane straight from an image made at ANALYSIS_SIDE: a canvas or a scan never
        # needs the working-resolution copy
        coarse = to_gray(img, ANALYSIS_SIDE, blocks=True)
        coarse = unblock(coarse) if small else coarse
        paper = border_level(coarse)
        if paper is not None and (small or not on_table(coarse, paper)):
            ink, box = _clean_digit(coarse, paper)
            if not _big_enough(box, ink.shape):  # found small: a closer look at the working size
                ink, box = _closer(to_gray(img, WORK_SIDE), coarse.shape, box)
            return Preprocessed(model_input(ink, box), False, "canvas" if transparent(img) else "clean")
    gray = to_gray(img, WORK_SIDE)
    image, fast, photo = _mnistify(unblock(gray) if small else gray, photo=not small)
    return Preprocessed(image, fast, "photo" if photo else "canvas" if transparent(img) else "clean")


def _one_digit_in_row(row: np.ndarray) -> None:
    """SeveralDigits when a long, low image read ROW_HEIGHT pixels high (`model.imaging.gray.row_side`) holds
    digits side by side; else nothing: one stroke (a dash) or none is read as any image is."""
    paper = border_level(row)
    with contextlib.suppress(NoInk):
        keep_digit(ink_map(row, True) if paper is None else clean_ink_map(row, paper), border_clutter=paper is None)


def mnistify(gray: np.ndarray, photo: bool = False) -> tuple[np.ndarray, bool]:
    """Grayscale in [0, 1] (any size, any polarity) -> 28x28 white-on-black, and whether it passed
    through. `photo`: the upload is larger than the working size, so a sheet of paper on a table
    may be in it (`model.imaging.ink.ink_map`); a scan or crop of a few hundred pixels is not taken for one."""
    return _mnistify(gray, photo)[:2]


def _mnistify(gray: np.ndarray, photo: bool) -> tuple[np.ndarray, bool, bool]:
    """`mnistify`, and whether the image was read as a photo (the photo lane)."""
    same = passes_through(gray)
    if same is not None:
        return same, True, False
    gray = enlarge(gray, SIZE, ENLARGE_TO)
    coarse = shrink(gray, ANALYSIS_SIDE)
    paper = border_level(coarse)
    # a photo (uneven light, noise, a table: a sheet on an even-toned one has a clean border too)
    if paper is None or (photo and on_table(coarse, paper)):
        return model_input(keep_digit(ink_map(gray, photo))), False, True
    ink, box = _clean_digit(coarse, paper)
    if coarse.shape != gray.shape and not _big_enough(box, ink.shape):
        ink, box = _closer(gray, coarse.shape, box)
    return model_input(ink, box), False, False


def _clean_digit(gray: np.ndarray, paper: float) -> tuple[np.ndarray, Box]:
    """The digit's ink map on a clean background (`border_level` gave `paper`), and its `bbox`."""
    ink = keep_digit(clean_ink_map(gray, paper), border_clutter=False)
    return ink, bbox(ink)


def _closer(gray: np.ndarray, coarse: tuple[int, ...], box: Box) -> tuple[np.ndarray, Box]:
    """The digit found at `box` in a `coarse`-sized copy of `gray`, cut out of `gray` with a margin
    and analysed again at ANALYSIS_SIDE: its ink map and `bbox`."""
    r0, r1, c0, c1 = box
    sy, sx = gray.shape[0] / coarse[0], gray.shape[1] / coarse[1]
    margin = max(r1 - r0, c1 - c0) // 4 + 2
    y0, y1 = max(0, int((r0 - margin) * sy)), min(gray.shape[0], int((r1 + margin) * sy) + 1)
    x0, x1 = max(0, int((c0 - margin) * sx)), min(gray.shape[1], int((c1 + margin) * sx) + 1)
    ink = keep_digit(ink_map(shrink(gray[y0:y1, x0:x1], ANALYSIS_SIDE)))
    return ink, bbox(ink)


def _big_enough(box: Box, shape: tuple[int, ...]) -> bool:
    """The digit (its `bbox`) spans REFINE_BELOW / ANALYSIS_SIDE of the image or more: no closer
    look needed."""
    r0, r1, c0, c1 = box
    return bool(max(r1 - r0, c1 - c0) * ANALYSIS_SIDE >= REFINE_BELOW * max(shape))
