"""model.imaging.geometry: fitting and centring as MNIST does."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from model.contract import BOX, COM_TARGET
from model.imaging.errors import SeveralDigits
from model.imaging.geometry import MAX_PIECES, STRONG, WEAK, find_strokes, fit_and_centre, keep_digit


def test_centring_matches_scipys_center_of_mass() -> None:
    rng = np.random.default_rng(5)
    for shape in ((40, 13), (25, 25), (9, 60)):
        crop = rng.random(shape, dtype=np.float32) ** 4
        out = fit_and_centre(crop)
        cy, cx = ndimage.center_of_mass(out)
        assert abs(cy - COM_TARGET[0]) <= 0.5 + 1e-6
        assert abs(cx - COM_TARGET[1]) <= 0.5 + 1e-6
        assert out.max() == 1.0
        assert max(np.flatnonzero(out.any(0)).size, np.flatnonzero(out.any(1)).size) == BOX


def test_a_digit_filling_the_frame_is_not_border_clutter() -> None:
    """A coarse 2 reaching three edges and a loose piece inside: the 2 is the digit (it was dropped
    as clutter because something inside the frame existed)."""
    ink = np.zeros((64, 64), dtype=np.float32)
    ink[0:12, 4:60] = 1.0  # along the top, running off it
    ink[0:40, 48:60] = 1.0  # down the right side
    ink[40:64, 4:16] = 1.0  # and off the bottom
    ink[30:42, 4:60] = 1.0
    ink[16:28, 18:30] = 1.0  # a loose piece inside
    kept = keep_digit(ink)
    assert kept[5, 30] == 1.0
    assert kept[60, 10] == 1.0


def test_a_table_edge_along_the_border_is_clutter() -> None:
    ink = np.zeros((96, 128), dtype=np.float32)
    ink[:, :6] = 1.0  # a dark table edge along the left of a photo
    ink[20:76, 50:60] = 1.0  # the digit
    kept = keep_digit(ink)
    assert kept[:, :6].max() == 0.0
    assert kept[40, 55] == 1.0


def test_a_digit_written_up_to_the_table_edge_is_freed_from_it() -> None:
    """A 7 whose bar runs into the table beyond the sheet's left edge was one stroke with the
    table, and the model was given both (a Γ): the edge is cut away, the 7 kept whole."""
    ink = np.zeros((128, 96), dtype=np.float32)
    ink[:, :7] = 1.0  # the table beyond the sheet, down the whole left side
    ink[20:30, 7:70] = 1.0  # the 7's bar, touching it
    for y in range(30, 110):  # its stem
        x = 70 - (y - 30) * 40 // 80
        ink[y, x - 4 : x + 4] = 1.0
    kept = keep_digit(ink)
    assert kept[:, :5].max() == 0.0  # the table (the kept ink is grown by a pixel round the bar)
    assert kept[40:, :7].max() == 0.0
    assert kept[25, 12:70].min() == 1.0
    assert kept[100, 35] == 1.0


def test_a_digit_cropped_to_its_ink_keeps_its_strokes_along_the_border() -> None:
    """A 1 filling a tight crop top to bottom, at the left edge: shorter than a table edge (EDGE_RUN
    of the side), so it stays."""
    ink = np.zeros((64, 48), dtype=np.float32)
    ink[6:60, 0:8] = 1.0
    kept = keep_digit(ink)
    assert kept[30, 4] == 1.0


def test_a_lit_corner_of_the_table_beside_a_digit_is_not_a_second_digit() -> None:
    """A photo: a bright blob reaching in from a corner (the table under a lamp), larger than the
    digit inside: it was a second digit (several_digits); the digit inside is what is kept."""
    ink = np.zeros((82, 256), dtype=np.float32)
    ink[46:82, 170:256] = 1.0  # the lit corner, off the bottom and the right
    ink[23:60, 101:111] = 1.0  # the digit inside, a 1
    kept = keep_digit(ink)
    assert kept[40, 105] == 1.0
    assert kept[60:, 175:].max() == 0.0
    with pytest.raises(SeveralDigits):  # two digits inside are still two
        keep_digit(np.maximum(ink, np.pad(np.ones((37, 10), np.float32), ((23, 22), (60, 186)))))


def test_the_faint_side_of_a_stroke_stays_with_it() -> None:
    """Hysteresis on a clean background: a stroke's pixels above WEAK are kept whole when the
    stroke holds ink above STRONG (the lighter half of a 0 was cut at 0.5 and the 0 became a C)."""
    yy, xx = np.mgrid[-32:32, -32:32]
    ring = (np.abs(np.hypot(yy, xx) - 20) < 4).astype(np.float32)
    ink = ring * np.where(xx < 0, 1.0, 0.3).astype(np.float32)
    kept = keep_digit(ink, border_clutter=False)
    assert np.array_equal(kept, ink)
    assert WEAK < 0.3 < STRONG


def test_a_line_reaching_in_from_the_border_is_dropped_beside_a_digit_inside() -> None:
    """The slanted edge of a photographed sheet runs in from the border (not along it); with a
    digit of comparable size inside, the digit is what is kept."""
    ink = np.zeros((128, 128), dtype=np.float32)
    for x in range(128):  # a 2 px line from the top edge down to row 40
        ink[x * 40 // 128 : x * 40 // 128 + 2, x] = 1.0
    ink[60:110, 60:68] = 1.0  # the digit, a 1
    kept = keep_digit(ink)
    assert kept[80, 64] == 1.0
    assert kept[:44].max() == 0.0


def test_a_texture_of_specks_keeps_only_the_boldest_strokes() -> None:
    """Grouping costs time with the strokes' number: 22,500 one-pixel specks are cut to MAX_PIECES,
    the boldest (here a bar of ink, kept whole), before any grouping."""
    ink = np.zeros((300, 300), dtype=np.float32)
    ink[::2, ::2] = 1.0
    ink[100:110, 20:280] = 1.0  # the boldest stroke
    strokes = find_strokes(ink, border_clutter=False, specks=0.0)
    assert strokes.parts.count > 20_000
    assert int(strokes.kept.sum()) == MAX_PIECES
    assert strokes.ink[105, 100] == 1.0
