"""model.ink: the ink map, on clean backgrounds and on photos."""

from __future__ import annotations

import numpy as np
import pytest

from model import ink
from model.ink import _otsu_split, border_level, clean_ink_map, ink_map
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
