"""model.synth.glyphs: 1s and 7s drawn from their parts keep to their own sides of the line between
the two forms, are seeded, and lean as asked."""

from __future__ import annotations

import numpy as np
import pytest

from model.synth.glyphs import glyph_ink


def _top_reach(ink: np.ndarray) -> float:
    """How far across the top fifth of the glyph its ink reaches, as a share of the glyph's height."""
    top = ink[: max(1, ink.shape[0] // 5)]
    cols = np.flatnonzero(top.max(0) > 0.5)
    return float((cols[-1] - cols[0] + 1) / ink.shape[0])


def test_a_seven_reaches_further_across_its_top_than_a_one() -> None:
    """Upright: the widest 1's flag and stem together stay under the narrowest 7's bar."""
    rng = np.random.default_rng(0)
    ones = [_top_reach(glyph_ink(1, 80, rng)) for _ in range(200)]
    sevens = [_top_reach(glyph_ink(7, 80, rng)) for _ in range(200)]
    assert max(ones) < min(sevens)


def test_glyphs_are_seeded_and_their_height_as_asked() -> None:
    a = glyph_ink(7, 50, np.random.default_rng(3))
    assert np.array_equal(a, glyph_ink(7, 50, np.random.default_rng(3)))
    assert a.dtype == np.float32
    assert a.min() >= 0
    assert a.max() <= 1
    assert 48 <= a.shape[0] <= 62  # the height, and a stroke's width over it at most


def test_a_slant_moves_the_top_right() -> None:
    """The stem of an upright 1 has its top above its bottom; slanted by 0.3, the top moves right
    by about 0.3 x the height."""

    def centres(ink: np.ndarray) -> tuple[float, float]:
        rows = [ink[r] for r in (int(ink.shape[0] * 0.3), int(ink.shape[0] * 0.9))]
        return tuple(float(np.average(np.arange(len(r)), weights=r)) for r in rows)  # type: ignore[return-value]

    upper, lower = centres(glyph_ink(1, 100, np.random.default_rng(5), slant=0.3))
    assert upper - lower == pytest.approx(0.3 * 60, abs=6)


def test_only_ones_and_sevens() -> None:
    with pytest.raises(ValueError, match="1s and 7s"):
        glyph_ink(4, 40, np.random.default_rng(0))
