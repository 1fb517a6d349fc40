"""model.imaging.gray: grey levels from any mode Pillow decodes, transparency composited, large images lean."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from PIL import Image

from model.imaging.errors import UnsupportedImage
from model.imaging.gray import enlarge, to_gray, unblock
from tests.helpers import draw_seven


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_float_pixels_are_black(bad: float) -> None:
    arr = np.asarray(draw_seven(), dtype=np.float32)
    arr[3, 4] = bad
    gray = to_gray(Image.fromarray(arr, mode="F"), 256)
    assert np.isfinite(gray).all()
    assert gray[3, 4] == 0.0
    arr[3, 4] = 0.0
    assert np.array_equal(gray, to_gray(Image.fromarray(arr, mode="F"), 256))


def test_lab_is_read_by_its_lightness() -> None:
    seven = np.asarray(draw_seven(), dtype=np.uint8)
    lab = np.stack([seven, np.full_like(seven, 128), np.full_like(seven, 128)], axis=-1)
    gray = to_gray(Image.fromarray(lab, mode="LAB"), 256)
    assert np.array_equal(gray, to_gray(Image.fromarray(seven), 256))


def test_a_mode_pillow_cannot_convert_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    img = Image.new("RGB", (40, 40))

    def refuse(*args: object, **kwargs: object) -> Image.Image:
        raise ValueError("conversion not supported")

    monkeypatch.setattr(img, "convert", refuse)
    with pytest.raises(UnsupportedImage, match=r"^images in colour mode RGB are not supported$"):
        to_gray(img, 256)


def test_a_large_image_is_read_at_the_working_size_as_before_within_a_grey_level() -> None:
    """Above 4x the working side the resize is done in 8 bits (no float copy of the upload, 4 bytes
    a pixel of it); the result is the float resize's within a grey level."""
    img = draw_seven(size=(2400, 1800), offset=(300, 200), scale=10, width=9)
    lean = to_gray(img, 256)
    exact = np.asarray(img.convert("F").resize(lean.shape[::-1], Image.Resampling.BOX)) / 255
    assert lean.shape == (192, 256)
    assert np.abs(lean - exact).max() <= 1 / 255  # 8-bit resampling rounds its fixed-point sums


def test_a_pixel_enlarged_image_is_enlarged_again_smoothly() -> None:
    grid = np.random.default_rng(3).random((8, 8)).astype(np.float32)
    blocky = np.repeat(np.repeat(grid, 12, axis=0), 12, axis=1)
    smooth = unblock(blocky)
    expected = np.asarray(Image.fromarray(grid, mode="F").resize((96, 96), Image.Resampling.BILINEAR))
    assert np.array_equal(smooth, expected)


def test_other_images_are_not_unblocked() -> None:
    rng = np.random.default_rng(4)
    photo = rng.random((96, 96)).astype(np.float32)
    assert unblock(photo) is photo
    almost = np.repeat(np.repeat(rng.random((8, 8)).astype(np.float32), 12, axis=0), 12, axis=1)
    almost[50, 50] += 0.01  # one pixel off its block
    assert unblock(almost) is almost
    canvas = np.zeros((280, 280), dtype=np.float32)  # blank rows and columns at the border
    canvas[100:180, 120:140] = 1.0
    canvas[100, 121] = 0.5
    assert unblock(canvas) is canvas


def test_a_tiny_image_is_enlarged_by_a_whole_factor() -> None:
    tiny = np.random.default_rng(5).random((8, 6)).astype(np.float32)
    assert enlarge(tiny, 28, 64).shape == (64, 48)
    assert enlarge(np.zeros((28, 10), np.float32), 28, 64).shape == (28, 10)


@pytest.mark.parametrize("mode", ["F", "I", "I;16"])
def test_a_large_wide_image_is_read_without_a_float_copy_of_it(mode: str) -> None:
    """A 2000x2000 float, 32-bit or 16-bit image is read a strip at a time: numpy never holds a
    third of a float copy of it (the budget reserves the decoded pixels and little more), and it
    reads as the same picture in 8 bits does."""
    seven = draw_seven().resize((2000, 2000))
    eight = np.asarray(seven)
    scale, dtype = {"F": (1.0, np.float32), "I": (1.0, np.int32), "I;16": (257.0, np.uint16)}[mode]
    wide = Image.fromarray((eight * scale).astype(dtype))
    assert wide.mode == mode
    tracemalloc.start()
    try:
        got = to_gray(wide, 256)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.3 * 4 * 2000 * 2000
    assert got.shape == (256, 256)
    diff = np.abs(got - to_gray(seven, 256))
    assert diff.mean() < 0.5 / 255  # the same picture; along the strokes' edges, blocks of 3x3 first shift
    assert diff.max() < 0.2  # a boundary by a fraction of a pixel
