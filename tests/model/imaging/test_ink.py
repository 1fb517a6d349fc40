"""model.imaging.ink: the ink map, on clean backgrounds and on photos."""

from __future__ import annotations

import numpy as np
import pytest

from model.imaging import ink
from model.imaging.errors import NoInk
from model.imaging.ink import _otsu_split, border_level, clean_ink_map, ink_map
from tests.helpers import draw_seven


@pytest.mark.parametrize(("ink", "paper"), [(0, 255), (20, 200), (230, 40)])
def test_clean_background_shortcut_is_ink_map(ink: int, paper: int) -> None:
    gray = np.asarray(draw_seven(size=(120, 96), ink=ink, paper=paper), dtype=np.float32) / 255
    assert np.allclose(clean_ink_map(gray, paper / 255), ink_map(gray), rtol=0, atol=1e-6)


def test_clean_border_with_uneven_light_inside_goes_to_ink_map(monkeypatch: pytest.MonkeyPatch) -> None:
    seven = np.asarray(draw_seven(size=(120, 96)), dtype=np.float32) / 255
    rows, cols = np.indices(seven.shape)
    shade = 0.3 * np.exp(-((rows - 48) ** 2 + (cols - 60) ** 2) / 800)  # a shadow in the middle
    gray = (seven * (1 - shade)).astype(np.float32)
    paper = border_level(gray)
    assert paper is not None
    calls: list[np.ndarray] = []
    original = ink.ink_map

    def recording(g: np.ndarray) -> np.ndarray:
        calls.append(g)
        return original(g)

    monkeypatch.setattr(ink, "ink_map", recording)
    assert np.array_equal(clean_ink_map(gray, paper), original(gray))
    assert len(calls) == 1
    assert calls[0] is gray  # the image as given, not its negative
    calls.clear()
    clean_ink_map(seven, 1.0)  # evenly lit: no need
    assert calls == []


def test_otsu_fraction_is_the_share_below_the_threshold() -> None:
    rng = np.random.default_rng(3)
    for values in (
        rng.random((64, 64), dtype=np.float32),
        np.concatenate([rng.random(900) * 0.2, 0.8 + rng.random(100) * 0.2]).astype(np.float32),
        np.r_[np.zeros(500), np.ones(500), np.arange(64) / 64].astype(np.float32),  # bin edges, 0 and 1
    ):
        threshold, below = _otsu_split(values)
        assert below == float((values < threshold).mean())
        assert 0 < threshold <= 1


def test_grey_ink_stays_grey_where_it_is_a_large_share_of_the_image() -> None:
    """A coarse digit filling its frame: as much grey ink as paper below Otsu's threshold. The
    paper's noise, not the grey ink's spread, sets the floor (it was the 99th percentile of
    everything below the threshold, and the grey strokes came out black)."""
    gray = np.ones((64, 64), dtype=np.float32)
    gray[8:56, 8:20] = 0.0  # a black stroke
    gray[8:56, 30:44] = 0.7  # a grey one, as wide
    out = ink_map(gray)
    assert out[30, 12] == pytest.approx(1.0)
    assert out[30, 36] > 0.2
    assert out[30, 52] == 0.0


def test_uneven_light_is_taken_away() -> None:
    """Light falling off across a sheet of paper: the paper's level is read locally (from the
    darkest tenth of each window, ink bright) and taken away; the stroke stays."""
    xx = np.linspace(0, 1, 96, dtype=np.float32)[None, :].repeat(96, axis=0)
    paper = 0.95 - 0.3 * xx  # 0.95 at the left edge, 0.65 at the right
    gray = paper.copy()
    gray[10:86, 40:56] = paper[10:86, 40:56] - 0.45  # a stroke across the middle
    out = ink_map(gray)
    assert out[48, 48] > 0.8
    assert out[48, 5] < 0.05
    assert out[48, 90] < 0.05


def test_a_few_faint_strokes_on_grainy_paper_are_found() -> None:
    """Pencil on grainy paper, the stroke 0.3% of the image, is found; grain alone is not ink."""
    rng = np.random.default_rng(8)
    gray = (0.85 + rng.normal(0, 0.012, (256, 256))).astype(np.float32)
    gray[100:160, 120:123] = 0.68
    out = ink_map(gray)
    assert out[100:160, 121].min() > 0.8
    assert (out > 0.5).mean() < 0.01  # the grain stays paper
    with pytest.raises(NoInk):
        ink_map((0.85 + rng.normal(0, 0.05, (256, 256))).astype(np.float32))  # grain alone: no ink


def test_dark_ink_on_paper_lit_from_one_side_is_read_as_dark_ink() -> None:
    """Paper whose light falls off from one side to the other (0.90 to 0.72) under a table strip
    as dark as its dark end: Otsu parts the paper into halves, the border (table and dark end) says
    the background is dark, and the ink map looked for light ink: NoInk for a plain 3. A few pixels
    far darker than the rest of the levels are dark ink, whatever the border."""
    gray = np.tile(np.linspace(0.72, 0.90, 256, dtype=np.float32), (100, 1))
    gray[:4] = gray[-4:] = 0.73  # the table above and below the sheet
    gray[30:34, 200:222] = gray[34:70, 218:222] = gray[50:54, 206:222] = gray[66:70, 200:222] = 0.3  # a 3
    out = ink_map(gray)
    assert out[32, 210] == 1.0  # the 3's ink is the ink
    assert out[80, 100] == 0.0  # the paper is not
