"""model.imaging.decode: the header first, the pixel cap, typed errors, CRCs, plain PNGs by libspng."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from model.imaging.decode import _check_png_crcs, _decode_plain_png, load, open_image
from model.imaging.errors import CorruptImage, EmptyImage, ImageTooLarge, NoInk, NotAnImage, TruncatedImage
from model.imaging.preprocess import preprocess
from tests.helpers import draw_seven, encode, png_with_size
from tests.hostile import jpeg_scan_bomb


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


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
@pytest.mark.parametrize("level", [0, 6, 9])
def test_plain_png_decodes_to_pillows_pixels(mode: str, level: int) -> None:
    pixels = np.random.default_rng(level).integers(0, 256, (37, 53, len(mode)), dtype=np.uint8).squeeze()
    data = encode(Image.fromarray(pixels), compress_level=level)
    plain = _decode_plain_png(data, _check_png_crcs(data), (53, 37))
    assert plain is not None
    assert plain.mode == mode
    assert np.array_equal(np.asarray(plain), np.asarray(Image.open(io.BytesIO(data))))


def test_png_pillow_must_read_goes_to_pillow() -> None:
    seven = draw_seven()
    exif = Image.Exif()
    exif[0x0112] = 6
    others = {
        "gray+alpha": encode(seven.convert("LA")),
        "16-bit": encode(Image.fromarray(np.asarray(seven).astype(np.uint16) * 257)),
        "palette": encode(seven.convert("P")),
        "transparency": encode(seven, transparency=255),
        "exif": encode(seven, exif=exif),
        "text": encode(seven, pnginfo=_text_chunk()),
    }
    for name, data in others.items():
        assert _decode_plain_png(data, _check_png_crcs(data), seven.size) is None, name


def test_a_plain_png_is_opened_without_pillow_and_others_with_it() -> None:
    seven = draw_seven()
    assert open_image(encode(seven)).image is None
    assert open_image(encode(seven.convert("RGBA"))).size == seven.size
    for data in (encode(seven.convert("P")), encode(seven.convert("LA")), encode(seven, "JPEG")):
        assert open_image(data).image is not None


def _with_chunk(png: bytes, kind: bytes, payload: bytes, crc_flip: int = 0) -> bytes:
    """`png` with one more chunk right after IHDR."""
    chunk = kind + payload
    crc = zlib.crc32(chunk) ^ crc_flip
    return png[:33] + struct.pack(">I", len(payload)) + chunk + struct.pack(">I", crc) + png[33:]


def test_a_png_opened_without_pillow_fails_as_pillow_says() -> None:
    """A header that looks plain but a broken chunk before the pixels: Pillow's refusal, as before."""
    data = encode(draw_seven())
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


def test_plain_png_with_broken_pixel_data_gets_pillows_error() -> None:
    from tests.hostile import png_claiming

    cut = zlib.compress(bytes(64 * 65))[:-8]  # rows of a 64x64 gray image, the stream cut short
    with pytest.raises(TruncatedImage):
        preprocess(png_claiming(64, 64, cut))
    with pytest.raises(CorruptImage):
        preprocess(png_claiming(64, 64, b"not a zlib stream at all"))


def test_a_progressive_jpeg_of_ordinary_scans_is_read() -> None:
    data = encode(draw_seven().convert("RGB"), "JPEG", progressive=True)
    assert 3 <= data.count(b"\xff\xda") <= 12
    assert open_image(data).size == (200, 160)


def test_a_jpeg_with_too_many_scans_is_refused_before_decoding() -> None:
    bomb = jpeg_scan_bomb(300, 100)  # 100 scans: more than any encoder writes
    with pytest.raises(ImageTooLarge, match=r"^JPEG has 106 scans over 90000 pixels: more decoding work than allowed"):
        open_image(bomb)


def test_scans_are_priced_by_the_pixels_they_cover() -> None:
    assert open_image(jpeg_scan_bomb(1000, 40)).size == (1000, 1000)  # 46 scans x 1 MP: allowed
    with pytest.raises(ImageTooLarge):
        open_image(jpeg_scan_bomb(4000, 30))  # 36 scans x 16 MP: over 20 scans of the largest image


def test_decoded_bytes_count_a_jpegs_reduced_scale() -> None:
    png = open_image(encode(Image.new("RGB", (1200, 900))))
    jpeg = open_image(encode(Image.new("RGB", (1200, 900)), "JPEG"))
    assert png.decoded_bytes(256) == 1200 * 900 * 6
    assert jpeg.decoded_bytes(256) == 300 * 225 * 6  # 1200 // 4 = 300 > 256: decoded at 1/4
    data = encode(Image.new("RGB", (1200, 900)), "JPEG")
    assert load(open_image(data), data, 256).size == (300, 225)  # what was reserved is what is decoded


def test_a_long_row_is_decoded_large_enough_to_tell_its_digits_apart() -> None:
    data = encode(Image.new("RGB", (4000, 200)), "JPEG")  # read at row_side's 960 px: 1/4 is 1000
    assert load(open_image(data), data, 256).size == (1000, 50)
