"""model.imaging.imageops gives what scipy.ndimage gives (the service no longer imports scipy)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from model.imaging import imageops
from model.imaging.geometry import disk as _disk

SHAPES = [(2, 2), (3, 7), (30, 41), (128, 128), (97, 64)]


def _masks(shape: tuple[int, int]) -> list[np.ndarray]:
    rng = np.random.default_rng(sum(shape))
    return [rng.random(shape) < density for density in (0.05, 0.3, 0.5, 0.7, 0.95)]


@pytest.mark.parametrize("shape", SHAPES)
def test_mean3_is_uniform_filter(shape: tuple[int, int]) -> None:
    image = np.random.default_rng(1).random(shape, dtype=np.float32)
    expected = ndimage.uniform_filter(image, size=3)
    assert np.allclose(imageops.mean3(image), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("size", [3, 4, 11, 16])
@pytest.mark.parametrize("shape", [(5, 9), (48, 48), (36, 48)])
def test_rank_filter_at_the_median_is_scipys_median_filter(shape: tuple[int, int], size: int) -> None:
    image = np.random.default_rng(size).random(shape, dtype=np.float32)
    expected = ndimage.median_filter(image, size=size, mode="nearest")
    assert np.array_equal(imageops.rank_filter(image, size, size * size // 2), expected)


@pytest.mark.parametrize("shape", [(1, 5), (7, 7), (48, 36)])
def test_nearest_outside_is_as_near_as_scipys(shape: tuple[int, int]) -> None:
    for inside in _masks(shape)[:-1]:
        inside[0, 0] = False  # at least one pixel outside
        rows, cols = imageops.nearest_outside(inside)
        want_r, want_c = ndimage.distance_transform_edt(inside, return_distances=False, return_indices=True)
        grid_r, grid_c = np.indices(shape)
        assert not inside[rows, cols].any()
        ours = (rows - grid_r) ** 2 + (cols - grid_c) ** 2
        assert np.array_equal(ours, (want_r - grid_r) ** 2 + (want_c - grid_c) ** 2)


def _crop(image: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    return image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


@pytest.mark.parametrize("diameter", [1, 2, 3, 6, 9, 16, 25])
def test_dilate_disk_is_grey_dilation_up_to_the_crop(diameter: int) -> None:
    rng = np.random.default_rng(diameter)
    ink = (rng.random((40, 31), dtype=np.float32) ** 8) * (rng.random((40, 31)) < 0.1)
    ink[20, 15] = 1.0
    padded = np.pad(ink, diameter // 2 + 1)
    footprint = _disk(diameter)
    expected = ndimage.grey_dilation(padded, footprint=footprint)
    assert np.array_equal(_crop(imageops.dilate_disk(padded, footprint)), _crop(expected))


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (2, 2), (30, 41), (128, 128)])
def test_cross_morphology_is_scipys(shape: tuple[int, int]) -> None:
    for mask in _masks(shape):
        assert np.array_equal(imageops.dilate_cross(mask), ndimage.binary_dilation(mask))
        assert np.array_equal(
            imageops.dilate_cross(imageops.dilate_cross(mask)), ndimage.binary_dilation(mask, iterations=2)
        )
        assert np.array_equal(imageops.erode_cross(mask), ndimage.binary_erosion(mask))


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), *SHAPES])
def test_components_are_scipys_labels(shape: tuple[int, int]) -> None:
    masks = _masks(shape)
    spiral = np.zeros((21, 21), dtype=bool)  # one component that needs many rounds of union
    for i in range(0, 10, 2):
        spiral[i, i : 21 - i] = spiral[20 - i, i : 21 - i] = spiral[i : 21 - i, i] = True
        spiral[i + 2 : 21 - i, 20 - i] = True
    for mask in [*masks, np.zeros(shape, dtype=bool), np.ones(shape, dtype=bool), spiral]:
        labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
        found = imageops.Components(mask)
        assert found.count == n
        # The same partition: each of our components is exactly one of scipy's.
        areas = np.bincount(labels.ravel())[1:]
        assert sorted(found.areas.tolist()) == sorted(areas.tolist())
        touches = np.zeros(n + 1, dtype=bool)
        for side in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
            touches[side] = True
        for i in range(found.count):
            wanted = np.arange(found.count) == i
            painted = found.mask(wanted)
            ids = np.unique(labels[painted])
            assert ids.size == 1
            assert ids[0] > 0
            assert np.array_equal(painted, labels == ids[0])
            assert found.touches_border[i] == touches[ids[0]]
        assert np.array_equal(found.mask(np.ones(found.count, dtype=bool)), mask)


def test_the_service_does_not_import_scipy() -> None:
    """17 MB a worker (bench/LOG.md, round 5): keep it out of the service's imports."""
    import subprocess
    import sys

    code = "import sys, app.main; print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("rank", [0, 3, 12])
def test_rank_filter_is_scipys(rank: int) -> None:
    image = np.random.default_rng(rank).random((36, 48), dtype=np.float32)
    expected = ndimage.rank_filter(image, rank, size=5, mode="nearest")
    assert np.array_equal(imageops.rank_filter(image, 5, rank), expected)


@pytest.mark.parametrize("shape", SHAPES)
def test_component_pixels_are_scipys_labels(shape: tuple[int, int]) -> None:
    values = np.random.default_rng(7).random(shape)
    for mask in _masks(shape):
        parts = imageops.Components(mask)
        labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
        expected = ndimage.sum(values, labels, range(1, count + 1))
        component, rows, cols = parts.pixels()
        assert parts.count == count
        assert np.array_equal(np.sort(rows * shape[1] + cols), np.flatnonzero(mask))
        sums = np.bincount(component, weights=values[rows, cols], minlength=parts.count)
        assert np.allclose(sorted(sums), sorted(expected))
