import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw, PngImagePlugin
from scipy import ndimage

from model.data import MnistSplit
from model.preprocess import (
    CorruptImage,
    EmptyImage,
    ImageTooLarge,
    NoInk,
    NotAnImage,
    Preprocessed,
    TruncatedImage,
    preprocess,
    to_tensor,
)
from tests.conftest import draw_seven, encode, ink_bbox


def assert_mnist_style(p: Preprocessed) -> None:
    """White ink on black, fitted into 20x20, centred by mass at (14, 14)."""
    img = p.image
    assert img.shape == (28, 28)
    assert img.dtype == np.float32
    assert img.max() == pytest.approx(1.0, abs=1e-6)
    assert img.min() == 0.0
    top, bottom, left, right = ink_bbox(img)
    assert max(bottom - top, right - left) + 1 in (20, 21)
    cy, cx = ndimage.center_of_mass(img)
    assert abs(cy - 14) <= 0.5
    assert abs(cx - 14) <= 0.5
    assert p.tensor.shape == (1, 28, 28)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference, allowing the one-pixel shifts that rounding the centre of mass can make."""
    padded = np.pad(b, 1)
    return min(
        float(np.abs(a - padded[1 + dy : 29 + dy, 1 + dx : 29 + dx]).mean()) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
    )


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return preprocess(encode(draw_seven())).image


def test_offcentre_black_on_white_lands_centred_white_on_black() -> None:
    p = preprocess(encode(draw_seven(size=(300, 240), offset=(170, 110))))
    assert_mnist_style(p)
    assert not p.fast_path
    # the 7's bar is at the top: the top rows hold more ink than the bottom rows
    assert p.image[:10].sum() > p.image[18:].sum()


def test_size_and_position_do_not_matter(reference: np.ndarray) -> None:
    small = preprocess(encode(draw_seven(size=(60, 50), offset=(2, 2), scale=0.4))).image
    large = preprocess(encode(draw_seven(size=(1600, 1200), offset=(900, 700), scale=5))).image
    assert distance(small, reference) < 0.05
    assert distance(large, reference) < 0.03


def test_tensor_is_normalised_like_training(reference: np.ndarray) -> None:
    t = to_tensor(reference)
    assert t.shape == (1, 28, 28)
    assert float(t.min()) == pytest.approx((0 - 0.1307) / 0.3081)
    assert float(t.max()) == pytest.approx((1 - 0.1307) / 0.3081)


def test_mnist_digits_pass_through_unharmed(mnist_test: MnistSplit) -> None:
    images = mnist_test.images[:300].numpy()
    fast = 0
    for digit in images:
        p = preprocess(encode(Image.fromarray(digit, "L")))
        if p.fast_path:
            fast += 1
            assert np.array_equal(p.image, digit.astype(np.float32) / 255)
    assert fast >= 290  # measured 300 of 300; the rest go through the full path


def test_inverted_mnist_digit_is_read_back(mnist_test: MnistSplit) -> None:
    digit = mnist_test.images[0].numpy()
    p = preprocess(encode(Image.fromarray(255 - digit, "L")))
    assert p.fast_path
    np.testing.assert_allclose(p.image, digit.astype(np.float32) / 255, atol=1e-6)


def convert(img: Image.Image, mode: str) -> Image.Image:
    if mode == "I;16":
        return Image.fromarray(np.asarray(img).astype(np.uint16) * 257)
    if mode == "LA":
        return Image.merge("LA", (img, Image.new("L", img.size, 255)))
    if mode == "1":
        return img.point(lambda v: 255 if v > 127 else 0).convert("1")
    return img.convert(mode)


CASES = [
    ("PNG", "L"),
    ("PNG", "LA"),
    ("PNG", "RGB"),
    ("PNG", "RGBA"),
    ("PNG", "P"),
    ("PNG", "1"),
    ("PNG", "I;16"),
    ("JPEG", "L"),
    ("JPEG", "RGB"),
    ("JPEG", "CMYK"),
    ("GIF", "P"),
    ("GIF", "L"),
    ("BMP", "L"),
    ("BMP", "RGB"),
    ("BMP", "P"),
    ("BMP", "1"),
    ("WEBP", "RGB"),
    ("WEBP", "RGBA"),
    ("TIFF", "L"),
    ("TIFF", "RGB"),
    ("TIFF", "RGBA"),
    ("TIFF", "CMYK"),
    ("TIFF", "I;16"),
    ("TIFF", "1"),
]


@pytest.mark.parametrize(("fmt", "mode"), CASES, ids=[f"{f}-{m}" for f, m in CASES])
def test_every_format_and_mode(fmt: str, mode: str, reference: np.ndarray) -> None:
    img = convert(draw_seven(), mode)
    data = encode(img, fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP") else {}))
    stored = {("GIF", "L"): "P", ("BMP", "P"): "L", ("WEBP", "RGBA"): "RGB"}.get((fmt, mode), mode)
    assert Image.open(io.BytesIO(data)).mode == stored
    p = preprocess(data)
    assert_mnist_style(p)
    lossy = fmt in ("JPEG", "WEBP") or mode == "1"
    assert distance(p.image, reference) < (0.03 if lossy else 0.005)


def canvas(stroke: tuple[int, int, int]) -> bytes:
    """A 7 on a transparent canvas, as a browser exports it: colour where drawn, alpha 0 elsewhere."""
    alpha = 255 - np.asarray(draw_seven(size=(280, 280), offset=(100, 80), scale=1.6))
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)
    rgba[..., :3] = stroke
    rgba[..., 3] = alpha
    return encode(Image.fromarray(rgba, "RGBA"))


@pytest.mark.parametrize("stroke", [(0, 0, 0), (255, 255, 255), (30, 90, 200)], ids=["black", "white", "blue"])
def test_transparent_canvas(stroke: tuple[int, int, int], reference: np.ndarray) -> None:
    p = preprocess(canvas(stroke))
    assert_mnist_style(p)
    assert distance(p.image, reference) < 0.03


def test_exif_orientation_is_applied(reference: np.ndarray) -> None:
    stored = draw_seven().transpose(Image.Transpose.ROTATE_90)  # as the camera stored it
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    p = preprocess(encode(stored.convert("RGB"), "JPEG", quality=95, exif=exif))
    assert distance(p.image, reference) < 0.03
    assert distance(preprocess(encode(stored)).image, reference) > 0.05  # without the tag: sideways


def test_light_ink_on_dark_board(reference: np.ndarray) -> None:
    p = preprocess(encode(draw_seven(ink=230, paper=40)))
    assert distance(p.image, reference) < 0.01


def test_photo_with_uneven_light_and_noise(reference: np.ndarray) -> None:
    h, w = 480, 640
    paper = np.asarray(draw_seven(size=(w, h), offset=(300, 200), scale=2.5), dtype=np.float32) / 255
    light = np.linspace(0.55, 1.0, w, dtype=np.float32)[None, :]
    rng = np.random.default_rng(0)
    gray = np.clip(light * (0.15 + 0.85 * paper) + rng.normal(0, 0.03, (h, w)), 0, 1)
    p = preprocess(encode(Image.fromarray((gray * 255).astype(np.uint8)).convert("RGB"), "JPEG", quality=80))
    assert_mnist_style(p)
    assert distance(p.image, reference) < 0.04


@pytest.mark.parametrize(("ink", "paper"), [(0, 255), (20, 200), (230, 40)])
def test_clean_background_shortcut_is_ink_map(ink: int, paper: int) -> None:
    from model.preprocess import clean_ink_map, ink_map

    gray = np.asarray(draw_seven(size=(120, 96), ink=ink, paper=paper), dtype=np.float32) / 255
    assert np.allclose(clean_ink_map(gray, paper / 255), ink_map(gray), rtol=0, atol=1e-6)


def test_clean_border_with_uneven_light_inside_goes_to_ink_map(monkeypatch: pytest.MonkeyPatch) -> None:
    from model import preprocess as pre

    seven = np.asarray(draw_seven(size=(120, 96)), dtype=np.float32) / 255
    rows, cols = np.indices(seven.shape)
    shade = 0.3 * np.exp(-((rows - 48) ** 2 + (cols - 60) ** 2) / 800)  # a shadow in the middle
    gray = (seven * (1 - shade)).astype(np.float32)
    paper = pre._border_level(gray)
    assert paper is not None
    calls = []
    ink_map = pre.ink_map
    monkeypatch.setattr(pre, "ink_map", lambda g: calls.append(g) or ink_map(g))
    assert np.array_equal(pre.clean_ink_map(gray, paper), ink_map(gray))
    assert len(calls) == 1
    assert calls[0] is gray  # the image as given, not its negative
    calls.clear()
    pre.clean_ink_map(seven, 1.0)  # evenly lit: no need
    assert calls == []


def test_a_stroke_to_the_edge_of_a_clean_canvas_is_kept() -> None:
    """On a clean background what touches the border is the digit running off it, not a table edge."""

    def four(shift: int) -> bytes:
        img = Image.new("L", (280, 280), 255)
        draw = ImageDraw.Draw(img)
        draw.line([(shift, 120), (40 + shift, 200), (240 + shift, 200)], fill=0, width=24)  # runs to the edge
        draw.line([(150 + shift, 50), (150 + shift, 160)], fill=0, width=24)  # apart from it
        return encode(img)

    at_edge, inside = preprocess(four(0)).image, preprocess(four(30)).image
    assert distance(at_edge, inside) < 0.05


def test_thin_pen_is_thickened() -> None:
    p = preprocess(encode(draw_seven(size=(800, 800), offset=(100, 100), scale=5, width=2)))
    assert_mnist_style(p)
    assert (p.image > 0.5).sum() >= 40  # a 1-pixel line shrunk 25x would leave almost nothing


def test_specks_do_not_move_the_digit(reference: np.ndarray) -> None:
    img = draw_seven(size=(400, 400), offset=(150, 150), scale=1.5)
    for x, y in [(10, 10), (380, 30), (20, 370), (390, 390)]:
        img.putpixel((x, y), 0)
    assert distance(preprocess(encode(img)).image, reference) < 0.03


def png_with_size(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header claims another size (CRC fixed): a decompression bomb's header."""
    data = bytearray(encode(Image.new("L", (1, 1))))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"", EmptyImage, "the upload is empty"),
        (b"\x00\x01garbage" * 50, NotAnImage, "not an image in a supported format"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><text>7</text></svg>', NotAnImage, "not an image"),
        (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", NotAnImage, "not an image"),
        (encode(draw_seven())[:300], TruncatedImage, "image data is truncated"),
        (encode(draw_seven().convert("RGB"), "JPEG")[:400], TruncatedImage, "image data is truncated"),
        (png_with_size(100_000, 100_000), ImageTooLarge, "100000x100000 = 10000000000 pixels"),
        (encode(Image.new("L", (50, 50), 255)), NoInk, "blank"),
        (encode(Image.new("RGB", (50, 50), (0, 0, 0))), NoInk, "blank"),
        (encode(Image.new("RGBA", (50, 50), (0, 0, 0, 0))), NoInk, "fully transparent"),
    ],
    ids=[
        "empty",
        "random",
        "svg",
        "pdf",
        "truncated-png",
        "truncated-jpeg",
        "bomb-header",
        "white",
        "black",
        "transparent",
    ],
)
def test_bad_input_raises_typed_errors(data: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        preprocess(data)


def test_bad_crc_in_the_header_is_not_an_image() -> None:
    data = bytearray(encode(draw_seven()))
    data[29] ^= 0xFF  # IHDR's CRC
    with pytest.raises(NotAnImage):
        preprocess(bytes(data))


def test_bad_crc_in_the_pixels_is_corrupt() -> None:
    data = bytearray(encode(draw_seven()))
    idat = data.index(b"IDAT")
    data[idat + 10] ^= 0x01  # one bit of the compressed pixels; Pillow alone would decode it
    with pytest.raises(CorruptImage, match="PNG chunk 'IDAT' fails its CRC check"):
        preprocess(bytes(data))


def test_pixel_cap_is_configurable() -> None:
    data = encode(draw_seven(size=(200, 160)))
    assert preprocess(data, max_pixels=200 * 160).image.shape == (28, 28)
    with pytest.raises(ImageTooLarge, match="200x160 = 32000 pixels; the limit is 31999"):
        preprocess(data, max_pixels=31999)


def test_sixteen_bit_uses_the_full_range() -> None:
    seven = np.asarray(draw_seven()).astype(np.uint16)
    dim = Image.fromarray(seven * 40)  # 0..10200 of 65535: low contrast
    assert_mnist_style(preprocess(encode(dim)))


def test_otsu_fraction_is_the_share_below_the_threshold() -> None:
    from model.preprocess import _otsu_split

    rng = np.random.default_rng(3)
    for values in (
        rng.random((64, 64), dtype=np.float32),
        np.concatenate([rng.random(900) * 0.2, 0.8 + rng.random(100) * 0.2]).astype(np.float32),
        np.r_[np.zeros(500), np.ones(500), np.arange(64) / 64].astype(np.float32),  # bin edges, 0 and 1
    ):
        threshold, below = _otsu_split(values)
        assert below == float((values < threshold).mean())
        assert 0 < threshold <= 1


def test_centring_matches_scipys_center_of_mass() -> None:
    from model.preprocess import BOX, COM_TARGET, fit_and_centre

    rng = np.random.default_rng(5)
    for shape in ((40, 13), (25, 25), (9, 60)):
        crop = rng.random(shape, dtype=np.float32) ** 4
        out = fit_and_centre(crop)
        cy, cx = ndimage.center_of_mass(out)
        assert abs(cy - COM_TARGET[0]) <= 0.5 + 1e-6
        assert abs(cx - COM_TARGET[1]) <= 0.5 + 1e-6
        assert out.max() == 1.0
        assert max(np.flatnonzero(out.any(0)).size, np.flatnonzero(out.any(1)).size) == BOX


def _png(img: Image.Image, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **params)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
@pytest.mark.parametrize("level", [0, 6, 9])
def test_plain_png_decodes_to_pillows_pixels(mode: str, level: int) -> None:
    from model.preprocess import _check_png_crcs, _decode_plain_png

    pixels = np.random.default_rng(level).integers(0, 256, (37, 53, len(mode)), dtype=np.uint8).squeeze()
    data = _png(Image.fromarray(pixels), compress_level=level)
    plain = _decode_plain_png(data, _check_png_crcs(data), (53, 37))
    assert plain is not None
    assert plain.mode == mode
    assert np.array_equal(np.asarray(plain), np.asarray(Image.open(io.BytesIO(data))))


def test_png_pillow_must_read_goes_to_pillow() -> None:
    from model.preprocess import _check_png_crcs, _decode_plain_png

    seven = draw_seven()
    exif = Image.Exif()
    exif[0x0112] = 6
    others = {
        "gray+alpha": _png(seven.convert("LA")),
        "16-bit": _png(Image.fromarray(np.asarray(seven).astype(np.uint16) * 257)),
        "palette": _png(seven.convert("P")),
        "transparency": _png(seven, transparency=255),
        "exif": _png(seven, exif=exif),
        "text": _png(seven, pnginfo=_text_chunk()),
    }
    for name, data in others.items():
        assert _decode_plain_png(data, _check_png_crcs(data), seven.size) is None, name


def test_a_plain_png_is_opened_without_pillow_and_others_with_it() -> None:
    from model.preprocess import open_image

    seven = draw_seven()
    assert open_image(_png(seven)).image is None
    assert open_image(_png(seven.convert("RGBA"))).size == seven.size
    for data in (_png(seven.convert("P")), _png(seven.convert("LA")), encode(seven, "JPEG")):
        assert open_image(data).image is not None


def _with_chunk(png: bytes, kind: bytes, payload: bytes, crc_flip: int = 0) -> bytes:
    """`png` with one more chunk right after IHDR."""
    chunk = kind + payload
    crc = zlib.crc32(chunk) ^ crc_flip
    return png[:33] + struct.pack(">I", len(payload)) + chunk + struct.pack(">I", crc) + png[33:]


def test_a_png_opened_without_pillow_fails_as_pillow_says() -> None:
    """A header that looks plain but a broken chunk before the pixels: Pillow's refusal, as before."""
    data = _png(draw_seven())
    gamma = struct.pack(">I", 45455)
    assert preprocess(_with_chunk(data, b"gAMA", gamma)).image.shape == (28, 28)
    with pytest.raises(NotAnImage):
        preprocess(_with_chunk(data, b"gAMA", gamma, crc_flip=1))
    pixels_flipped = bytearray(data)
    pixels_flipped[-20] ^= 4  # in IDAT
    with pytest.raises(CorruptImage, match="IDAT"):
        preprocess(bytes(pixels_flipped))


def _text_chunk() -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "hello")
    return info


def test_exif_orientation_in_a_png_is_applied(reference: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    stored = draw_seven().transpose(Image.Transpose.ROTATE_90)
    assert distance(preprocess(_png(stored, exif=exif)).image, reference) < 0.005


def test_plain_png_with_broken_pixel_data_gets_pillows_error() -> None:
    from tests.hostile import png_claiming

    cut = zlib.compress(bytes(64 * 65))[:-8]  # rows of a 64x64 gray image, the stream cut short
    with pytest.raises(TruncatedImage):
        preprocess(png_claiming(64, 64, cut))
    with pytest.raises(CorruptImage):
        preprocess(png_claiming(64, 64, b"not a zlib stream at all"))
