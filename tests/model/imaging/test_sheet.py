"""model.imaging.sheet: a sheet of paper on a darker table, in a photo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from model.checkpoint import LoadedModel
from model.evaluate.digits import probabilities
from model.imaging.preprocess import preprocess
from model.imaging.sheet import convex_fill, sheet
from tests.helpers import draw_seven, encode


def corners(cx: float, cy: float, w: float, h: float, degrees: float) -> list[tuple[float, float]]:
    a = math.radians(degrees)
    return [(cx + dx * math.cos(a) - dy * math.sin(a), cy + dx * math.sin(a) + dy * math.cos(a))
            for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2))]  # fmt: skip


def polygon(size: tuple[int, int], points: list[tuple[float, float]]) -> np.ndarray:
    img = Image.new("L", size, 0)
    ImageDraw.Draw(img).polygon(points, fill=255)
    return np.asarray(img) > 0


def table_photo(grain: bool, seven_at: tuple[int, int] = (300, 170), angle: float = 12.0) -> Image.Image:
    """A light sheet lying askew on a dark table (wood grain, or even-toned), a 7 written on it."""
    w, h = 640, 480
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    table = 0.3 + (0.05 * np.sin(xx / 6 + np.sin(yy / 40) * 3) if grain else 0.0)
    on = polygon((w, h), corners(330, 240, 360, 260, angle))
    gray = np.where(on, np.float32(0.88), table)
    seven = np.asarray(draw_seven(size=(120, 130), width=8), dtype=np.float32) / 255  # dark on white
    x, y = seven_at
    gray[y : y + 130, x : x + 120] = np.minimum(gray[y : y + 130, x : x + 120], 0.1 + 0.78 * seven)
    img = Image.fromarray((gray * 255).astype(np.uint8), "L").filter(ImageFilter.GaussianBlur(1.0))
    return img.convert("RGB")


def test_the_convex_fill_of_a_rotated_rectangle_is_the_rectangle() -> None:
    want = polygon((200, 150), corners(100, 75, 120, 70, 20))
    got = convex_fill(want)
    assert (got != want).sum() < 0.02 * want.sum()  # pixel rounding along the edges only


def test_a_sheet_on_a_table_is_found_and_its_writing_is_on_it() -> None:
    gray = np.asarray(table_photo(grain=True).convert("L"), dtype=np.float32) / 255
    found = sheet(gray, 0.6)
    assert found is not None
    want = polygon((640, 480), corners(330, 240, 360, 260, 12))
    assert (found & want).sum() / (found | want).sum() > 0.95
    assert found[200:280, 320:400].all()  # the 7 lies on the sheet


def test_no_sheet_where_paper_is_all_round() -> None:
    gray = np.asarray(draw_seven(size=(320, 240), width=12), dtype=np.float32) / 255
    assert sheet(gray, 0.5) is None


def test_a_bold_light_digit_on_a_dark_ground_is_no_sheet() -> None:
    ring = Image.new("L", (300, 300), 0)
    ImageDraw.Draw(ring).ellipse((60, 40, 240, 260), fill=255)
    ImageDraw.Draw(ring).ellipse((135, 125, 165, 175), fill=0)  # a bold 0: a light ring, a small hole
    bar = polygon((300, 300), corners(150, 150, 60, 240, 10))  # a bold 1
    bar[140:150, 140:150] = False  # a speck of dark on it
    for light in (np.asarray(ring, dtype=np.float32) / 255, bar.astype(np.float32)):
        assert sheet(light, 0.5) is None


@pytest.mark.parametrize("grain", [True, False], ids=["wood grain (photo lane)", "even-toned (clean border)"])
def test_a_seven_on_a_sheet_on_a_table_is_read(shipped_model: LoadedModel, grain: bool) -> None:
    """The table is neither the paper (the sheet read as ink) nor one stroke with a 7 near the
    sheet's edge."""
    for seven_at in [(300, 170), (160, 175)]:  # on the sheet; near its left edge
        data = encode(table_photo(grain, seven_at), "JPEG", quality=90)
        p = probabilities(shipped_model, preprocess(data).image[None])[0]
        assert int(p.argmax()) == 7, (seven_at, p.round(3))
