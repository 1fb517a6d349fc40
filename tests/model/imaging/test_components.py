"""The image path's OpenCV calls give what scipy.ndimage gives, border conventions included (the
service does not import scipy): components, cross morphology, the 3x3 mean; and its own rank
filter, nearest-outside fill and quantiles."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from model.imaging.components import Components, dilate_cross, erode_cross
from model.imaging.ink import _from_nearest_outside, _rank_filter, _smoothed
from model.imaging.quantiles import median, quantiles

SHAPES = [(2, 2), (3, 7), (30, 41), (128, 128), (97, 64)]


def _masks(shape: tuple[int, int]) -> list[np.ndarray]:
    rng = np.random.default_rng(sum(shape))
    return [rng.random(shape) < density for density in (0.05, 0.3, 0.5, 0.7, 0.95)]


@pytest.mark.parametrize("shape", [s for s in SHAPES if min(s) >= 3])  # narrower: left as it is
def test_the_3x3_mean_is_uniform_filter(shape: tuple[int, int]) -> None:
    image = np.random.default_rng(1).random(shape, dtype=np.float32)
    expected = ndimage.uniform_filter(image, size=3)
    assert np.allclose(_smoothed(image), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("size", [3, 4, 11, 16])
@pytest.mark.parametrize("shape", [(5, 9), (48, 48), (36, 48)])
def test_rank_filter_at_the_median_is_scipys_median_filter(shape: tuple[int, int], size: int) -> None:
    image = np.random.default_rng(size).random(shape, dtype=np.float32)
    expected = ndimage.median_filter(image, size=size, mode="nearest")
    assert np.array_equal(_rank_filter(image, size, size * size // 2), expected)


@pytest.mark.parametrize("shape", [(1, 5), (7, 7), (48, 36)])
def test_nearest_outside_is_about_as_near_as_scipys(shape: tuple[int, int]) -> None:
    for inside in _masks(shape)[:-1]:
        inside[0, 0] = False  # at least one pixel outside
        index = np.arange(inside.size, dtype=np.float32).reshape(shape)
        taken = _from_nearest_outside(index, inside).astype(np.intp)  # each pixel's source, as a flat index
        rows, cols = np.divmod(taken, shape[1])
        grid_r, grid_c = np.indices(shape)
        assert not inside.ravel()[taken].any()
        assert np.array_equal(taken.reshape(shape)[~inside], index[~inside].astype(np.intp))
        ours = np.hypot(rows.reshape(shape) - grid_r, cols.reshape(shape) - grid_c)
        nearest = ndimage.distance_transform_edt(inside)
        assert (ours <= 1.03 * nearest + 1e-6).all()  # OpenCV's 5x5 mask: distances within 2%


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (2, 2), (30, 41), (128, 128)])
def test_cross_morphology_is_scipys(shape: tuple[int, int]) -> None:
    for mask in _masks(shape):
        assert np.array_equal(dilate_cross(mask), ndimage.binary_dilation(mask))
        assert np.array_equal(dilate_cross(dilate_cross(mask)), ndimage.binary_dilation(mask, iterations=2))
        assert np.array_equal(erode_cross(mask), ndimage.binary_erosion(mask))


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), *SHAPES])
def test_components_are_scipys_labels(shape: tuple[int, int]) -> None:
    masks = _masks(shape)
    spiral = np.zeros((21, 21), dtype=bool)  # one component that needs many rounds of union
    for i in range(0, 10, 2):
        spiral[i, i : 21 - i] = spiral[20 - i, i : 21 - i] = spiral[i : 21 - i, i] = True
        spiral[i + 2 : 21 - i, 20 - i] = True
    for mask in [*masks, np.zeros(shape, dtype=bool), np.ones(shape, dtype=bool), spiral]:
        labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
        found = Components(mask)
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
    assert np.array_equal(_rank_filter(image, 5, rank), expected)


@pytest.mark.parametrize("shape", [*SHAPES, (600, 500)])  # the last: more labels than 16 bits hold, possibly
def test_component_counts_and_boxes_are_scipys(shape: tuple[int, int]) -> None:
    where = np.random.default_rng(7).random(shape) < 0.5
    for mask in _masks(shape):
        parts = Components(mask)
        labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
        assert parts.count == count
        expected = ndimage.sum(where, labels, range(1, count + 1))
        assert sorted(parts.count_in(where).tolist()) == sorted(expected.astype(int).tolist())
        boxes = [(s[0].start, s[0].stop, s[1].start, s[1].stop) for s in ndimage.find_objects(labels)]
        assert sorted(map(tuple, parts.boxes().tolist())) == sorted(boxes)


@pytest.mark.parametrize("size", [1, 2, 7, 1000, 65_536])
def test_quantiles_are_numpys_percentiles(size: int) -> None:
    values = np.random.default_rng(size).random(size, dtype=np.float32) - np.float32(0.25)
    for qs in [(50,), (5,), (99,), (1, 10, 90, 99), (16, 50), (5, 30, 50, 90, 99), (0, 100)]:
        expected = np.percentile(values, qs)
        assert np.allclose(quantiles(values, qs), expected, rtol=0, atol=1e-7)
    assert median(values) == pytest.approx(float(np.median(values)), abs=1e-7)
