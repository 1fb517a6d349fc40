"""Safe decoding: the header read and checked against the pixel cap before any pixel is decoded,
only formats Pillow decodes without external programs, every PNG chunk's CRC checked, plain PNGs
decoded by libspng, EXIF orientation applied. Anything broken raises a `model.imaging.errors` error.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
import pyspng
from PIL import (  # noqa: F401 - the plugins of the allowed formats, registered for Image.open(formats=...)
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    ImageOps,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    UnidentifiedImageError,
    WebPImagePlugin,
)

from model.imaging.errors import CorruptImage, EmptyImage, ImageTooLarge, NotAnImage, PreprocessError, TruncatedImage
from model.imaging.gray import row_side

#: Formats Pillow decodes without external programs; everything else is "not an image".
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")  # JPEG includes MPO (phone cameras)
DEFAULT_MAX_PIXELS = 25_000_000
#: Our own cap (checked once the header is parsed, before any pixel is decoded, with the size in the
#: message) replaces Pillow's process-wide one.
Image.MAX_IMAGE_PIXELS = None
EXIF_ORIENTATION = 0x0112
#: libspng holds the GIL while it decodes (Pillow's decoders release it): a larger plain PNG goes
#: to Pillow, so that a worker's other threads (its event loop, its forward passes) are not held up
#: for as long as the decode takes (bench/LOG.md, "How the last figures were reached").
SPNG_MAX_PIXELS = 512 * 512
#: Decoding work a JPEG may ask for: scans, and scans x pixels (a scan of a small image still
#: costs as if it had SCAN_PIXELS_FLOOR pixels). A 25-megapixel photo may have 20 scans.
MAX_JPEG_SCANS = 64
MAX_SCAN_PIXELS = 20 * DEFAULT_MAX_PIXELS
SCAN_PIXELS_FLOOR = 256 * 256


#: Bytes a decoded pixel may take, with the grey and alpha copies made from it: Pillow holds any
#: colour image in 4 bytes a pixel; the copies add 2.
BYTES_PER_PIXEL = 6


@dataclass
class Opened:
    """An upload whose header has been read and found within the pixel cap; no pixel decoded yet."""

    size: tuple[int, int]  # (width, height)
    image: Image.Image | None  # Pillow's; None for a PNG whose IHDR says libspng may decode it

    def close(self) -> None:
        if self.image is not None:
            self.image.close()

    def decoded_bytes(self, reduce_to: int) -> int:
        """At most how much memory decoding it to `load(..., reduce_to)` will hold (`jpeg_scale`)."""
        width, height = self.size
        scale = 1
        if self.image is not None and self.image.format in ("JPEG", "MPO"):
            scale = jpeg_scale(self.size, reduce_to)
        return -(-width // scale) * -(-height // scale) * BYTES_PER_PIXEL


def jpeg_scale(size: tuple[int, int], reduce_to: int) -> int:
    """1, 2, 4 or 8: the largest scale down a JPEG of `size` (width, height) is decoded at (libjpeg
    scales as it decodes, far cheaper than decoding all and reducing after) while its longer side
    stays longer than the side it is read at (`model.imaging.gray.row_side`: `reduce_to`, more
    for a long row of digits)."""
    need = row_side(size, reduce_to)
    return next((s for s in (8, 4, 2) if max(size) // s > need and min(size) >= s), 1)


def open_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Opened:
    """Read the header (format, size, pixel cap) and refuse what is unsafe; no pixel is decoded yet.

    A PNG that libspng may decode (`_plain_png_size`) is not opened by Pillow at all: Pillow's
    header parse is a noticeable share of a canvas upload's time (bench/LOG.md, round 5).
    Should it turn out to be anything but plain, `load` hands it to Pillow, with Pillow's errors.
    """
    if not data:
        raise EmptyImage("the upload is empty (0 bytes)")
    img = None
    size = _plain_png_size(data)
    if size is None or size[0] * size[1] > SPNG_MAX_PIXELS:
        img = _pillow_open(data)
        size = img.size
    width, height = size
    if width <= 0 or height <= 0:
        raise EmptyImage(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLarge(f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
    if img is not None and img.format in ("JPEG", "MPO"):
        _check_jpeg_scans(data, width * height)
    return Opened(size, img)


def _check_jpeg_scans(data: bytes, pixels: int) -> None:
    """Refuse a JPEG whose scans would cost more decoding than any real photo's.

    Each scan of a progressive JPEG is a pass over every coefficient of the image, and nothing in
    the format bounds their number: a few hundred empty scans in a 160 kB file cost seconds of CPU.
    A start-of-scan marker (FF DA) cannot occur inside entropy-coded data (an FF there is followed
    by 00 or a restart marker), so counting it counts the scans (an embedded EXIF thumbnail's too).
    Encoders write at most a dozen or so (bench/LOG.md, "JPEG scans")."""
    scans = data.count(b"\xff\xda")
    work = scans * max(pixels, SCAN_PIXELS_FLOOR)
    if scans > MAX_JPEG_SCANS or work > MAX_SCAN_PIXELS:
        raise ImageTooLarge(
            f"JPEG has {scans} scans over {pixels} pixels: more decoding work than allowed "
            f"(at most {MAX_JPEG_SCANS} scans and {MAX_SCAN_PIXELS} scan-pixels)"
        )


def _pillow_open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError as e:
        raise NotAnImage(f"not an image in a supported format ({', '.join(ALLOWED_FORMATS)})") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise _broken(e) from e


def load(opened: Opened, data: bytes, reduce_to: int) -> Image.Image:
    """Fully decode the first frame of an image from `open_image(data)`, refusing anything broken.

    A JPEG is decoded at 1/2, 1/4 or 1/8 scale (`jpeg_scale`), and a colour one as grey (its luma
    channel, `Image.draft("L")`): the path reads grey levels only, and libjpeg then skips the
    colour channels and their conversion."""
    if opened.image is None:
        try:
            chunks: set[bytes] | None = _check_png_crcs(data)
        except PreprocessError:
            chunks = None  # Pillow reads it as before, and says what is wrong (or not an image)
        plain = _decode_plain_png(data, chunks, opened.size) if chunks is not None else None
        if plain is not None:
            return plain
        opened.image = _pillow_open(data)
    img = opened.image
    if img.format in ("JPEG", "MPO"):
        scale = jpeg_scale(img.size, reduce_to)  # Pillow's draft picks it from the size asked for
        img.draft("L", (max(1, img.width // scale), max(1, img.height // scale)))
    if img.format == "PNG":
        _check_png_crcs(data)  # a PNG libspng does not decode: Pillow skips the pixel data's CRCs
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as e:
        raise _broken(e) from e
    try:
        if img.getexif().get(EXIF_ORIENTATION, 1) == 1:
            return img  # upright: exif_transpose would only copy it
        transposed = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a broken EXIF block only loses the orientation
        transposed = None
    return transposed if transposed is not None else img


def _broken(e: Exception) -> CorruptImage:
    if isinstance(e, EOFError) or "truncated" in str(e).lower():
        return TruncatedImage("image data is truncated")
    return CorruptImage("image data is corrupt")


def _check_png_crcs(data: bytes) -> set[bytes]:
    """Every chunk's CRC (Pillow skips those of pixel data, so a flipped bit would decode as another
    image), and nothing after IEND: a PNG that is also a ZIP or a script is refused. Returns the
    chunk types."""
    types = set()
    pos = 8
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        end = pos + 8 + length
        if end + 4 > len(data):
            raise TruncatedImage("image data is truncated")
        (crc,) = struct.unpack(">I", data[end : end + 4])
        if zlib.crc32(data[pos + 4 : end]) != crc:
            raise CorruptImage(f"PNG chunk {data[pos + 4 : pos + 8].decode('latin-1')!r} fails its CRC check")
        types.add(data[pos + 4 : pos + 8])
        if data[pos + 4 : pos + 8] == b"IEND":
            if len(data) > end + 4:
                raise CorruptImage(f"{len(data) - end - 4} bytes after the end of the PNG image (a polyglot file?)")
            return types
        pos = end + 4
    raise TruncatedImage("image data is truncated")


#: Chunks that change neither the pixels Pillow decodes nor anything preprocessing reads. Text
#: chunks are left out (one may hold EXIF, and so an orientation), as are tRNS, eXIf and APNG's.
_PLAIN_PNG_CHUNKS = {b"IHDR", b"IDAT", b"IEND", b"sRGB", b"gAMA", b"cHRM", b"iCCP", b"pHYs", b"tIME", b"bKGD"}
#: IHDR colour types decoded by libspng: grayscale, RGB, RGBA (its automatic format has no gray+alpha).
_PLAIN_PNG_COLOURS = {0, 2, 6}
_PNG_START = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"  # the signature, then a 13-byte IHDR


def _plain_png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG whose intact IHDR says 8 bits, gray, RGB or RGBA, not interlaced,
    with the standard compression and filters: what `_decode_plain_png` may decode. Else None."""
    if not data.startswith(_PNG_START) or len(data) < 33:
        return None
    if data[24] != 8 or data[25] not in _PLAIN_PNG_COLOURS or data[26:29] != b"\0\0\0":
        return None
    if zlib.crc32(data[12:29]) != int.from_bytes(data[29:33], "big"):
        return None
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return (width, height) if width > 0 and height > 0 else None


def _decode_plain_png(data: bytes, chunks: set[bytes], size: tuple[int, int]) -> Image.Image | None:
    """An 8-bit, non-interlaced grayscale, RGB or RGBA PNG with no chunk that matters to Pillow,
    decoded by libspng (pyspng), else None for Pillow to decode. The same pixels as Pillow's, in
    less time on large canvases (bench/LOG.md, round 4, "libspng"). Anything libspng refuses
    goes to Pillow, whose errors are the documented ones. (libspng is told to ignore CRCs:
    `_check_png_crcs` has checked them.)
    """
    if data[24] != 8 or data[25] not in _PLAIN_PNG_COLOURS or data[28] != 0 or not chunks <= _PLAIN_PNG_CHUNKS:
        return None
    try:
        pixels = pyspng.load(data)
    except RuntimeError:
        return None
    if pixels.dtype != np.uint8 or pixels.shape[1::-1] != size:
        return None
    return Image.fromarray(pixels)
