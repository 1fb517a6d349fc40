"""model.geometry: fitting and centring as MNIST does."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from model.contract import BOX, COM_TARGET
from model.geometry import fit_and_centre


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
