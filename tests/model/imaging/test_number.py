"""Reading numbers: model.imaging.segment's grouping, POST /predict/number on each number kind, order and
boxes, its 422s, and /predict answering several_digits through the fast path, the route and a batch."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw, ImageFont

from model.checkpoint import LoadedModel
from model.data import MnistSplit
from model.evaluate.digits import probabilities
from model.evaluate.numbers import read_number
from model.imaging import segment
from model.imaging.errors import SeveralDigits
from model.imaging.number import MAX_DIGITS, preprocess_number
from model.imaging.preprocess import preprocess
from model.imaging.segment import Group, attach_faint, cut_candidates, group_strokes
from model.synth.fonts import fonts
from model.synth.realnumbers import generate, make_handwritten
from tests.helpers import ROOT, draw_seven, encode
from tests.hostile import digit_row

FONT = fonts()[0]


def typed(text: str, size: int = 80, gap: int = 0, rotate: float = 0.0) -> Image.Image:
    font = ImageFont.truetype(str(FONT), size) if FONT else ImageFont.load_default(size)
    img = Image.new("L", (int(size * 0.8 + gap) * len(text) + 2 * size, 2 * size), 255)
    draw = ImageDraw.Draw(img)
    x = size
    for c in text:
        draw.text((x, size // 2), c, fill=0, font=font)
        x += int(font.getlength(c)) + gap
    return img.rotate(rotate, fillcolor=255, expand=True) if rotate else img


# --- model.imaging.segment -------------------------------------------------------------------------------


def boxes(*rows: tuple[int, int, int, int]) -> np.ndarray:
    return np.array(rows, dtype=np.int64)


def test_strokes_side_by_side_are_digits_left_to_right() -> None:
    found = group_strokes(boxes((10, 60, 80, 110), (12, 58, 10, 40), (8, 62, 150, 170)), np.array([5, 6, 7]))
    assert [g.members for g in found] == [(6,), (5,), (7,)]


def test_a_digit_in_two_strokes_is_one_digit() -> None:
    # a 4: the open angle and the long down-stroke through its bar
    found = group_strokes(boxes((10, 45, 10, 50), (5, 60, 35, 42)), np.arange(2))
    assert len(found) == 1
    assert sorted(found[0].members) == [0, 1]


def test_a_broken_slanted_stroke_is_one_digit() -> None:
    # three pieces of a slanted 1, one above the other, each offset a little to the left
    found = group_strokes(boxes((0, 18, 30, 38), (20, 38, 25, 33), (40, 60, 20, 28)), np.arange(3))
    assert len(found) == 1


def test_a_speck_beside_a_digit_is_not_a_digit() -> None:
    found = group_strokes(boxes((10, 60, 10, 40), (50, 56, 90, 96)), np.arange(2))
    assert [g.members for g in found] == [(0,)]


def test_a_flat_digit_is_a_digit_but_a_minus_sign_or_a_blot_is_not() -> None:
    # a 1 100 px tall; a 2 written wide and flat (32 high, 60 wide); a minus sign; a round blot
    found = group_strokes(
        boxes((0, 100, 100, 115), (65, 97, 10, 70), (50, 58, 150, 200), (60, 90, 240, 270)), np.arange(4)
    )
    assert [g.members for g in found] == [(1,), (0,)]


def test_a_faint_piece_near_a_digit_joins_it_unless_it_would_reach_into_a_neighbour() -> None:
    # two digits 60 px tall; the faint top of the first one's loop just above it; a piece between
    # the two, close to both, that would take either into the other's columns; a speck far below
    digits = [Group((40, 100, 10, 40), (0,)), Group((40, 100, 50, 80), (1,))]
    strokes = boxes((40, 100, 10, 40), (40, 100, 50, 80), (30, 38, 20, 35), (60, 70, 38, 52), (160, 165, 20, 25))
    found = attach_faint(digits, strokes, np.arange(5), np.array([900.0, 900, 30, 30, 30]))
    assert [g.box for g in found] == [(30, 100, 10, 40), (40, 100, 50, 80)]
    assert found[0].members == (0, 2)


def test_faint_pieces_clear_of_the_digits_make_a_faint_digit_when_they_hold_enough_ink() -> None:
    # a bold digit, and the dashes of a fine pen's 0 beside it: each a speck, together a digit
    digits = [Group((40, 100, 10, 40), (0,))]
    strokes = boxes((40, 100, 10, 40), (45, 60, 100, 110), (62, 80, 100, 108), (85, 98, 104, 120), (45, 52, 112, 140))
    found = attach_faint(digits, strokes, np.arange(5), np.array([1000.0, 20, 20, 20, 20]))
    assert [g.box for g in found] == [(40, 100, 10, 40), (45, 98, 100, 140)]
    assert sorted(found[1].members) == [1, 2, 3, 4]
    # as little ink as noise (under FAINT_INK of the bold digit's): not a digit
    found = attach_faint(digits, strokes, np.arange(5), np.array([1000.0, 5, 5, 5, 5]))
    assert [g.box for g in found] == [(40, 100, 10, 40)]


def test_a_wide_group_is_cut_at_its_thinnest_columns() -> None:
    ink = np.zeros((40, 60), dtype=np.float32)
    ink[5:35, 5:25] = 1
    ink[5:35, 35:55] = 1
    ink[18:20, 25:35] = 1  # a thin bridge where the two touch
    cuts = cut_candidates(ink, (5, 35, 5, 55))
    assert any(20 <= c <= 30 for c in cuts)  # the bridge, in the box's own columns
    assert cut_candidates(ink, (5, 35, 5, 25)) == []  # no wider than a digit: never cut


# --- the number path -----------------------------------------------------------------------------


def test_single_digit_uploads_still_read_as_one_digit(mnist_png: tuple[bytes, int]) -> None:
    png, _ = mnist_png
    assert len(preprocess_number(png)) == 1
    assert len(preprocess_number(encode(draw_seven()))) == 1


def test_a_fine_pens_broken_digit_is_read_with_the_faint_ink_between_its_pieces(
    mnist_test: MnistSplit, shipped_model: LoadedModel
) -> None:
    """A 3 written with a fine pen that broke into pieces (model.synth.realnumbers' handwritten kind,
    seed 55): read from its strokes alone it was a 5; with all the ink in its box (but its
    neighbours' strokes), the faint ink between the pieces included, it is a 3."""
    rng = np.random.default_rng(55)
    at = rng.integers(len(mnist_test.labels), size=4)
    data, _ = make_handwritten([mnist_test.images.numpy()[i] for i in at], rng)
    assert "".join(str(int(mnist_test.labels[i])) for i in at) == "3973"
    assert read_number(shipped_model, data, probabilities) == "3973"


@pytest.mark.parametrize(
    ("seed", "number"),
    [
        (21783, "0609"),  # a fine pen's 0, photographed: only dashes of it are dark enough for a stroke
        (20865, "86"),  # a fine pen's 8 broken into specks beside a bold 6
    ],
)
def test_a_faint_digit_beside_bold_ones_is_read(
    mnist_test: MnistSplit, shipped_model: LoadedModel, seed: int, number: str
) -> None:
    """model.synth.realnumbers' handwritten kind, drawn as bench/number_errors.py draws it: the faint
    digit's pieces, each a speck beside the bold digits, make a digit."""
    rng = np.random.default_rng(seed)
    at = rng.integers(len(mnist_test.labels), size=int(rng.integers(2, 7)))
    data, _ = make_handwritten([mnist_test.images.numpy()[i] for i in at], rng)
    assert "".join(str(int(mnist_test.labels[i])) for i in at) == number
    assert read_number(shipped_model, data, probabilities) == number


@pytest.mark.parametrize("degrees", [20, -25, 30])
def test_a_long_number_at_a_steep_slope_is_levelled_and_read(shipped_model: LoadedModel, degrees: int) -> None:
    """Typed "31415" turned 20-30 degrees, where each digit's columns reach under the next one's:
    levelled (model.imaging.level), its digits are told apart, their boxes in the upload's pixels."""
    img = typed("31415", size=90, gap=6).rotate(degrees, fillcolor=255, expand=True)
    data = encode(img)
    assert read_number(shipped_model, data, probabilities) == "31415"
    boxes = [slot.whole.box for slot in preprocess_number(data)]
    ink = np.asarray(img) < 128
    for x0, y0, x1, y1 in boxes:  # each box, in the upload's pixels, holds a digit's ink
        assert 0 <= x0 < x1 <= img.width
        assert 0 <= y0 < y1 <= img.height
        assert ink[y0:y1, x0:x1].sum() > 100
    centres = [((x0 + x1) / 2, (y0 + y1) / 2) for x0, y0, x1, y1 in boxes]
    assert [c[0] for c in centres] == sorted(c[0] for c in centres)  # left to right
    rise = (centres[0][1] - centres[-1][1]) / (centres[-1][0] - centres[0][0])  # y runs down
    assert abs(rise - np.tan(np.radians(degrees))) < 0.1  # along the slope


def test_boxes_are_in_the_uploads_own_pixels_after_exif_orientation() -> None:
    img = typed("42", gap=30)
    plain = [s.whole.box for s in preprocess_number(encode(img))]
    assert len(plain) == 2
    assert plain[0][2] <= plain[1][0]
    x0, y0, x1, y1 = plain[0]
    assert 0 <= x0 < x1 <= img.width
    assert 0 <= y0 < y1 <= img.height
    ink = np.asarray(img) < 128  # each box holds that digit's ink, snugly
    assert ink[y0:y1, x0:x1].sum() > 0.95 * ink[:, : plain[1][0]].sum()
    # stored sideways with EXIF orientation 6 (rotate 90 clockwise to display): boxes as displayed
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.transpose(Image.Transpose.ROTATE_90).save(buf, "JPEG", quality=95, exif=exif)
    turned = [s.whole.box for s in preprocess_number(buf.getvalue())]
    assert len(turned) == 2
    for a, b in zip(plain, turned, strict=True):
        assert max(abs(u - v) for u, v in zip(a, b, strict=True)) <= 3


def test_predict_says_several_digits() -> None:
    with pytest.raises(SeveralDigits, match=r"holds 4 digits side by side.*/predict/number"):
        preprocess(encode(typed("2026", gap=10)))
    # a digit with a speck is one digit
    img = draw_seven()
    ImageDraw.Draw(img).ellipse((5, 5, 9, 9), fill=0)
    assert preprocess(encode(img)).image.shape == (28, 28)


@pytest.fixture(scope="module")
def numbers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("numbers")
    generate(out, per_kind=12, seed=5, data_dir=ROOT / "data" / "mnist")
    return out


# --- the endpoint ----------------------------------------------------------------------------------


def post_number(client: TestClient, data: bytes, query: str = "") -> dict[str, Any]:
    r = client.post(f"/predict/number{query}", files={"file": ("n.png", data, "image/png")})
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.mark.parametrize("kind", ["printed", "drawn", "handwritten"])
def test_each_number_kind_is_read_through_the_endpoint(real_client: TestClient, numbers: Path, kind: str) -> None:
    files = sorted(numbers.glob(f"*_{kind}_*"))
    read = [post_number(real_client, p.read_bytes())["number"] == p.name.split("_")[0] for p in files]
    assert sum(read) >= len(files) - (0 if kind != "handwritten" else 2), [
        p.name for p, ok in zip(files, read, strict=False) if not ok
    ]
    several = [real_client.post("/predict", content=p.read_bytes(), headers={"content-type": "image/png"})
               for p in files]  # fmt: skip
    assert (
        sum(r.status_code == 422 and r.json()["error"]["code"] == "several_digits" for r in several) >= len(files) - 1
    )


def test_the_answer_shape(real_client: TestClient) -> None:
    body = post_number(real_client, encode(typed("907", gap=25)))
    assert body["number"] == "907"
    assert [d["digit"] for d in body["digits"]] == [9, 0, 7]
    assert body["confidence"] == pytest.approx(np.prod([d["confidence"] for d in body["digits"]]))
    assert all(len(d["probabilities"]) == 10 and len(d["box"]) == 4 for d in body["digits"])
    assert [d["box"][0] for d in body["digits"]] == sorted(d["box"][0] for d in body["digits"])
    assert len(body["model_version"]) == 12
    assert "refusal" not in body["digits"][0]
    refusal = post_number(real_client, encode(typed("907", gap=25)), "?refuse=false")["digits"][0]["refusal"]
    assert refusal["refused"] is False
    assert refusal["score"] >= refusal["threshold"]  # the digit gate's score, over the clean lane's threshold
    metrics = real_client.get("/metrics").text
    assert 'digits_number_digits_bucket{le="3.0"}' in metrics


def test_a_number_starting_with_zero_keeps_it(real_client: TestClient) -> None:
    assert post_number(real_client, encode(typed("0042", gap=25)))["number"] == "0042"


def test_one_digit_is_a_number(real_client: TestClient) -> None:
    body = post_number(real_client, encode(draw_seven()))
    assert body["number"] == "7"
    assert len(body["digits"]) == 1


def test_raw_body_and_sloping_baseline(real_client: TestClient) -> None:
    r = real_client.post("/predict/number", content=encode(typed("3581", gap=30, rotate=7)),
                         headers={"content-type": "image/png"})  # fmt: skip
    assert r.status_code == 200
    assert r.json()["number"] == "3581"


def test_too_many_digits_is_its_own_422(real_client: TestClient) -> None:
    r = real_client.post(
        "/predict/number",
        files={"file": ("n.png", encode(typed("1" * (MAX_DIGITS + 2), size=40, gap=20)), "image/png")},
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "too_many_digits"
    assert f"at most {MAX_DIGITS}" in r.json()["error"]["message"]
    ok = real_client.post(
        "/predict/number", files={"file": ("n.png", encode(typed("12345678901234", size=40, gap=20)), "image/png")}
    )
    assert ok.status_code == 200
    assert ok.json()["number"] == "12345678901234"


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"files": {"file": ("a.txt", b"hello", "text/plain")}}, 400, "not_an_image"),
        ({"content": b"", "headers": {"content-type": "image/png"}}, 400, "empty_image"),
        ({"content": encode(Image.new("L", (64, 64), 255)), "headers": {"content-type": "image/png"}}, 422, "no_ink"),
        ({"content": b"x", "headers": {"content-type": "text/plain"}}, 415, "unsupported_media_type"),
        ({"files": {"other": ("a.png", b"x", "image/png")}}, 422, "missing_file"),
    ],
)
def test_the_same_errors_as_predict(real_client: TestClient, kwargs: dict[str, Any], status: int, code: str) -> None:
    r = real_client.post("/predict/number", **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_several_digits_through_both_predict_paths_and_batch(real_client: TestClient) -> None:
    number = encode(typed("2026", gap=10))
    fast = real_client.post("/predict", content=number, headers={"content-type": "image/png"})
    route = real_client.post("/predict?refuse=true", content=number, headers={"content-type": "image/png"})
    for r in (fast, route):
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "several_digits"
        assert "4 digits" in r.json()["error"]["message"]
        assert "/predict/number" in r.json()["error"]["message"]
    parts = [("files", ("n.png", number, "image/png")), ("files", ("7.png", encode(draw_seven()), "image/png"))]
    batch = real_client.post("/predict/batch", files=parts)
    results = batch.json()["results"]
    assert results[0]["error"]["code"] == "several_digits"
    assert results[1]["prediction"]["digit"] == 7


def test_openapi_documents_the_endpoint(real_client: TestClient) -> None:
    spec = real_client.get("/openapi.json").json()
    op = spec["paths"]["/predict/number"]["post"]
    assert op["responses"]["200"]["content"]["application/json"]["example"]["number"] == "42"
    assert "too_many_digits" in op["responses"]["422"]["content"]["application/json"]["examples"]
    assert (
        "several_digits"
        in spec["paths"]["/predict"]["post"]["responses"]["422"]["content"]["application/json"]["examples"]
    )


@pytest.mark.parametrize("count", [40, 150, 400])
def test_a_long_printed_row_is_too_many_digits_at_number_and_several_at_predict(
    real_client: TestClient, count: int
) -> None:
    """A row of 150 digits read at 512 pixels across is a band a few pixels high: it is read high
    enough for its digits to stay apart, so they are counted, not read as one."""
    row = digit_row(count)
    r = real_client.post("/predict/number", content=row, headers={"content-type": "image/png"})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "too_many_digits")
    found = int(r.json()["error"]["message"].split()[0])
    assert found > MAX_DIGITS
    r = real_client.post("/predict", content=row, headers={"content-type": "image/png"})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "several_digits")


def test_a_long_dash_is_not_taken_for_a_row_of_digits() -> None:
    img = Image.new("L", (2000, 60), 255)
    ImageDraw.Draw(img).line([(10, 30), (1990, 30)], fill=0, width=6)
    assert len(preprocess_number(encode(img))) == 1


def _merge_all_pairs(boxes: np.ndarray, members: list[list[int]], rule: Any) -> tuple[np.ndarray, list[list[int]]]:
    """The plain form of `model.imaging.segment._merge`: every pair weighed again after each join."""
    boxes, members = boxes.copy(), list(members)
    while len(boxes) > 1:
        a, b = boxes[:, None, :], boxes[None, :, :]
        joins = np.triu(rule(a, b), k=1)
        if not joins.any():
            break
        gap = np.maximum(a[..., 2], b[..., 2]) - np.minimum(a[..., 3], b[..., 3])
        i, j = np.unravel_index(np.argmin(np.where(joins, gap, np.iinfo(np.int64).max)), joins.shape)
        boxes[i] = segment._union(boxes[i], boxes[j])
        members[i] = members[i] + members[j]
        boxes = np.delete(boxes, j, axis=0)
        del members[j]
    return boxes, members


def test_groups_merge_as_when_every_pair_is_weighed_after_each_join() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(2, 60))
        r0, c0 = rng.integers(0, 100, n), rng.integers(0, 400, n)
        boxes = np.stack([r0, r0 + rng.integers(1, 60, n), c0, c0 + rng.integers(1, 40, n)], axis=1)
        for rule in (segment._same_digit, segment._touch, segment._beside):
            got, members = segment._merge(boxes, [[i] for i in range(n)], rule)
            want, want_members = _merge_all_pairs(boxes, [[i] for i in range(n)], rule)
            assert np.array_equal(got, want)
            assert members == want_members
