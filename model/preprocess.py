"""The one path from image bytes to the model's (1, 28, 28) input, as MNIST itself was made.

decode (safe formats, pixel cap) -> EXIF orientation -> grayscale with alpha composited ->
polarity (ink becomes white on black) -> contrast normalised against the background ->
specks and border clutter dropped -> ink cropped -> thin strokes thickened -> fitted into
20x20 keeping aspect ratio -> centred by centre of mass in 28x28 -> normalised tensor.

An image that is already MNIST-like (28x28, white ink centred on black) passes through as is.
Larger images are analysed at WORK_SIDE (photos) or at most ANALYSIS_SIDE (clean backgrounds: the
border's level is the background, `clean_ink_map`; a digit found small is looked at again, closer).
The neighbourhood operations are numpy's (`model.imageops`), not scipy's: 17 MB less a worker.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
import pyspng
import torch
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

from model import imageops

#: Stored in every checkpoint; a checkpoint trained with other constants is refused.
PREPROCESS_CONSTANTS: dict[str, float | int] = {
    "version": 1,
    "size": 28,  # model input side
    "box": 20,  # the digit is fitted into box x box, as in MNIST
    "mean": 0.1307,  # MNIST training-set pixel mean and std, for input normalisation
    "std": 0.3081,
}
SIZE = int(PREPROCESS_CONSTANTS["size"])
BOX = int(PREPROCESS_CONSTANTS["box"])
MEAN = float(PREPROCESS_CONSTANTS["mean"])
STD = float(PREPROCESS_CONSTANTS["std"])

#: Formats Pillow decodes without external programs; everything else is "not an image".
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")  # JPEG includes MPO (phone cameras)
DEFAULT_MAX_PIXELS = 25_000_000
#: Our own cap (checked once the header is parsed, before any pixel is decoded, with the size in the
#: message) replaces Pillow's process-wide one.
Image.MAX_IMAGE_PIXELS = None
EXIF_ORIENTATION = 0x0112
#: Working resolution: larger images are reduced to this longer side before analysis.
WORK_SIDE = 256
#: The digit is looked for at this longer side (at most this side, on the clean-background path:
#: see `to_gray`'s `blocks`); found spanning less than REFINE_BELOW / ANALYSIS_SIDE of the image
#: there, it is cut out of the working image and looked at again.
ANALYSIS_SIDE = 128
REFINE_BELOW = 64
#: Below this spread between darkest and lightest (on 0-1), the image is blank.
MIN_CONTRAST = 0.12
#: Stroke width / digit size in MNIST: 10th percentile 0.109, median 0.141 (measured on 5,000
#: training digits); strokes thinner than MIN are thickened to TARGET.
MIN_STROKE_RATIO = 0.10
TARGET_STROKE_RATIO = 0.13
#: Background spread (5th to 90th percentile, on 0-1) under which the light is taken as even.
FLAT_BACKGROUND = 0.05
#: Centre of mass of MNIST training digits, (row, col): measured 13.99, 14.00.
COM_TARGET = (14.0, 14.0)


class PreprocessError(Exception):
    """A bad input image; `code` is stable and machine-readable, the message is for people."""

    code = "invalid_image"


class EmptyImage(PreprocessError):
    code = "empty_image"


class NotAnImage(PreprocessError):
    code = "not_an_image"


class CorruptImage(PreprocessError):
    code = "corrupt_image"


class TruncatedImage(CorruptImage):
    code = "truncated_image"


class ImageTooLarge(PreprocessError):
    code = "image_too_large"


class NoInk(PreprocessError):
    code = "no_ink"


@dataclass(frozen=True)
class Preprocessed:
    image: np.ndarray  # (28, 28) float32 in [0, 1], white ink on black: what the model sees
    fast_path: bool  # True when the input was already MNIST-like and passed through

    @property
    def tensor(self) -> torch.Tensor:
        """(1, 28, 28) float32, normalised with MEAN and STD. (The service normalises whole batches.)"""
        return to_tensor(self.image)


@dataclass
class Opened:
    """An upload whose header has been read and found within the pixel cap; no pixel decoded yet."""

    size: tuple[int, int]  # (width, height)
    image: Image.Image | None  # Pillow's; None for a PNG whose IHDR says libspng may decode it

    def close(self) -> None:
        if self.image is not None:
            self.image.close()


def open_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Opened:
    """Read the header (format, size, pixel cap) and refuse what is unsafe; no pixel is decoded yet.

    A PNG that libspng may decode (`_plain_png_size`) is not opened by Pillow at all: its header
    parse cost a canvas upload 40-60 us, a twentieth of its preprocessing. Should it turn out to
    be anything but plain, `load` hands it to Pillow, with Pillow's errors.
    """
    if not data:
        raise EmptyImage("the upload is empty (0 bytes)")
    img = None
    size = _plain_png_size(data)
    if size is None:
        img = _pillow_open(data)
        size = img.size
    width, height = size
    if width <= 0 or height <= 0:
        raise EmptyImage(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLarge(f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
    return Opened(size, img)


def _pillow_open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError as e:
        raise NotAnImage(f"not an image in a supported format ({', '.join(ALLOWED_FORMATS)})") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise _broken(e) from e


def load(opened: Opened, data: bytes) -> Image.Image:
    """Fully decode the first frame of an image from `open_image(data)`, refusing anything broken."""
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
        img.draft(None, (WORK_SIDE, WORK_SIDE))  # decode at 1/2, 1/4 or 1/8 scale: much cheaper
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


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open and fully decode the first frame, refusing anything unsafe or broken."""
    return load(open_image(data, max_pixels), data)


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
    decoded by libspng (pyspng), else None for Pillow to decode. The same pixels (checked on 1,478
    PNGs); a 280x280 canvas in 379 us against Pillow's 617 (Pillow unfilters rows a byte at a
    time), no gain at 28x28. Anything libspng refuses goes to Pillow, whose errors are the
    documented ones. (libspng is told to ignore CRCs: `_check_png_crcs` has checked them.)
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


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info


def _shrink_to(img: Image.Image, side: int, blocks: bool = False) -> Image.Image:
    """`side` pixels on the longer side (box filter); or with `blocks`, at most `side`, each pixel
    the mean of a block of n x n (fewer at the right and bottom edges), n as small as fits: Pillow's
    reduce() costs a quarter of a resize (280x280 to 94x94: 18 against 88 us)."""
    longer = max(img.size)
    if longer <= side:
        return img
    if blocks:
        return img.reduce(-(-longer // side))
    scale = side / longer
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.BOX)


def to_gray(img: Image.Image, side: int = WORK_SIDE, blocks: bool = False) -> np.ndarray:
    """Luminance in [0, 1], at most `side` pixels on the longer side, with any transparency composited.

    Transparent pixels get the colour opposite to the strokes, so dark strokes on a transparent
    canvas land on white and light strokes on black; polarity is decided afterwards.
    """
    wide = img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
    if wide:
        arr = np.asarray(img.convert("I") if img.mode.startswith("I;16") else img, dtype=np.float32)
        peak = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 255.0)
        gray = Image.fromarray(np.clip(arr / peak, 0.0, 1.0).astype(np.float32), mode="F")
        alpha = None
    elif img.mode == "RGBA":  # a canvas: the same pixels as through LA below, in a third of the time
        gray, alpha = img.convert("L"), img.getchannel("A")
    elif _has_alpha(img):
        la = img.convert("RGBA").convert("LA")
        gray, alpha = la.getchannel("L"), la.getchannel("A")
    else:
        gray, alpha = img.convert("L"), None
    if not (wide or blocks):  # an exact resize, in floating point
        gray = gray.convert("F")
        alpha = alpha.convert("F") if alpha is not None else None
    gray = _shrink_to(gray, side, blocks)  # blocks: averaged in 8 bits, rounded, 30 us cheaper
    alpha = _shrink_to(alpha, side, blocks) if alpha is not None else None
    g = _unit(gray) if not wide else np.asarray(gray, dtype=np.float32)
    if alpha is None:
        return g
    a = _unit(alpha)
    if a.min() >= 0.99:
        return g
    if a.sum() < 1e-3:
        raise NoInk("the image is fully transparent: no ink found")
    stroke = float((g * a).sum() / a.sum())
    background = 1.0 if stroke < 0.5 else 0.0
    result: np.ndarray = g * a + background * (1.0 - a)
    return result


_UNIT = np.arange(256, dtype=np.float32) / np.float32(255)


def _unit(img: Image.Image) -> np.ndarray:
    """An 8-bit ("L") or floating-point ("F", 0-255) image on [0, 1] as float32."""
    if img.mode == "L":
        return _UNIT.take(np.asarray(img))
    unit: np.ndarray = np.asarray(img, dtype=np.float32) / np.float32(255)
    return unit


def _quantiles(values: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """np.percentile(values, q) for each q (numpy's default linear method), from one np.partition:
    np.percentile and np.median cost tens of microseconds each in overhead, several times a request."""
    flat = values.ravel()
    last = flat.size - 1
    positions = [q / 100 * last for q in qs]
    lows = [int(p) for p in positions]
    part = np.partition(flat, sorted({i for lo in lows for i in (lo, min(lo + 1, last))}))
    out = []
    for p, lo in zip(positions, lows, strict=True):
        a, b, t = float(part[lo]), float(part[min(lo + 1, last)]), p - lo
        out.append(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)  # numpy's _lerp
    return out


def _median(values: np.ndarray) -> float:
    return _quantiles(values, (50,))[0]


_OTSU_BINS = 64
_OTSU_CENTRES = (np.arange(_OTSU_BINS) + 0.5) / _OTSU_BINS


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold over 64 bins of [0, 1] for values in [0, 1]."""
    return _otsu_split(values)[0]


def _otsu_split(values: np.ndarray) -> tuple[float, float]:
    """Otsu's threshold over 64 bins of [0, 1], and the fraction of `values` below it.

    The values must lie in [0, 1]. Multiplying by 64 is exact in binary floating point, so
    v < k / 64 exactly when v's bin is below k: the fraction comes from the histogram, not from
    another pass over the pixels. (bincount: several times faster than np.histogram.)
    """
    bins = (values.ravel() * _OTSU_BINS).astype(np.intp)
    hist = np.bincount(bins, minlength=_OTSU_BINS + 1).astype(np.float64)
    hist[_OTSU_BINS - 1] += hist[_OTSU_BINS]  # 1.0 goes in the top bin
    hist = hist[:_OTSU_BINS]
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * _OTSU_CENTRES)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    k = int(between.argmax()) + 1
    return k / _OTSU_BINS, float(w0[k - 1] / w0[-1])


def _background(ink: np.ndarray, threshold: float) -> np.ndarray:
    """The background level under every pixel (ink bright), for uneven light on photos.

    A median over a third of the image at 48 px: strokes are a minority in most windows, so the
    median is the paper. Windows where ink is the majority (a large bold digit) take the value of
    the nearest window that is not.
    """
    h, w = ink.shape
    small = _shrink(ink, 48)
    paper = small[small < threshold]
    if paper.size:
        p5, p50, p90 = _quantiles(paper, (5, 50, 90))
        if p90 - p5 < FLAT_BACKGROUND:
            return np.full_like(ink, p50)  # evenly lit: no need for the local median
    window = max(3, max(small.shape) // 3)
    level = imageops.median_filter(small, window)
    inked = level >= threshold
    if inked.all():
        return np.full_like(ink, _quantiles(ink, (5,))[0])
    if inked.any():
        level = level[imageops.nearest_outside(inked)]
    background: np.ndarray = np.asarray(
        Image.fromarray(level.astype(np.float32), mode="F").resize((w, h), Image.Resampling.BILINEAR)
    )
    return background


def _light_background(gray: np.ndarray, smooth: np.ndarray) -> bool:
    """Ink is the minority of pixels; when it is not clearly so (a big bold digit), the border decides.

    The minority rule reads a sheet of paper photographed on a dark table right, where the
    border alone (mostly table) would not.
    """
    t, dark = _otsu_split(smooth)
    if dark < 0.35 or dark > 0.65:
        return dark < 0.5
    band = max(1, round(0.02 * min(gray.shape)))
    border = np.concatenate(
        [gray[:band].ravel(), gray[-band:].ravel(), gray[:, :band].ravel(), gray[:, -band:].ravel()]
    )
    return _median(border) > t


def ink_map(gray: np.ndarray) -> np.ndarray:
    """White ink on black in [0, 1]: polarity from which pixels are the minority (or the border),
    background and uneven light taken away, contrast stretched so the ink is 1."""
    smooth = imageops.mean3(gray) if min(gray.shape) >= 3 else gray
    if float(smooth.max() - smooth.min()) < MIN_CONTRAST:
        raise NoInk("the image is blank: no ink found")
    if _light_background(gray, smooth):  # dark ink on paper: make it white on black
        gray = 1.0 - gray
        smooth = 1.0 - smooth
    flat = smooth - _background(smooth, _otsu(smooth))
    t = _otsu(np.clip(flat, 0.0, 1.0))
    background = flat[flat < t]
    ink = flat[flat >= t]
    if ink.size == 0 or background.size == 0:
        raise NoInk("the image is blank: no ink found")
    floor = _quantiles(background, (99,))[0]
    level = _median(ink)
    if level - floor < MIN_CONTRAST / 2:
        raise NoInk("no ink stands out from the background")
    sharp = gray - (smooth - flat)  # the unsmoothed image, background taken away
    out: np.ndarray = np.clip((sharp - floor) / (level - floor), 0.0, 1.0).astype(np.float32)
    return out


def clean_ink_map(gray: np.ndarray, paper: float) -> np.ndarray:
    """`ink_map` for an image whose border is all one level, `paper` (a canvas, a scan): the
    background is taken as that level everywhere, and the ink as whatever lies towards the far end
    of the range from it. Half of ink_map's work (no local background estimate, one Otsu threshold
    instead of three); should the background still spread (uneven light inside a clean border),
    ink_map decides.
    """
    given = gray
    smooth = imageops.mean3(gray) if min(gray.shape) >= 3 else gray
    low, high = float(smooth.min()), float(smooth.max())
    if high - low < MIN_CONTRAST:
        raise NoInk("the image is blank: no ink found")
    if paper - low > high - paper:  # dark ink on light paper: make it white on black
        gray, smooth, paper = 1.0 - gray, 1.0 - smooth, 1.0 - paper
    flat = smooth - paper
    t = _otsu(np.clip(flat, 0.0, 1.0))
    background = flat[flat < t]
    ink = flat[flat >= t]
    if ink.size == 0 or background.size == 0:
        raise NoInk("the image is blank: no ink found")
    spread_low, spread_high, floor = _quantiles(background, (5, 90, 99))
    if spread_high - spread_low >= FLAT_BACKGROUND:
        return ink_map(given)
    level = _median(ink)
    if level - floor < MIN_CONTRAST / 2:
        raise NoInk("no ink stands out from the background")
    out: np.ndarray = np.clip((gray - paper - floor) / (level - floor), 0.0, 1.0).astype(np.float32)
    return out


def keep_digit(ink: np.ndarray, border_clutter: bool = True) -> np.ndarray:
    """Zero what is not the digit: specks, and clutter touching the border (table edges, frames).

    Without `border_clutter` (an image whose border is clean: what touches it is a stroke that
    runs to the edge, not a table edge), only specks.
    """
    mask = ink > 0.5
    parts = imageops.Components(mask)
    if parts.count == 0:
        raise NoInk("no ink found")
    if parts.count > 1:  # (one, the usual drawing, leaves nothing to choose)
        areas = parts.areas
        interior = ~parts.touches_border
        if border_clutter and interior.any() and areas[interior].max() >= max(0.05 * areas.max(), 0.001 * ink.size):
            candidates = interior
        else:
            candidates = np.ones(parts.count, dtype=bool)
        mask = parts.mask(candidates & (areas >= 0.1 * areas[candidates].max()))
    kept: np.ndarray = ink * imageops.dilate_cross(imageops.dilate_cross(mask))
    return kept


def _bbox(ink: np.ndarray, threshold: float = 0.05) -> tuple[int, int, int, int]:
    inked = ink > threshold
    rows = np.flatnonzero(inked.any(axis=1))
    cols = np.flatnonzero(inked.any(axis=0))
    if rows.size == 0:
        raise NoInk("no ink found")
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _crop(ink: np.ndarray, threshold: float = 0.05, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    r0, r1, c0, c1 = box or _bbox(ink, threshold)
    return ink[r0:r1, c0:c1]


def _thicken(crop: np.ndarray) -> np.ndarray:
    """Dilate strokes that are much thinner, relative to the digit's size, than MNIST's."""
    binary = crop > 0.5
    area = int(binary.sum())
    if area == 0:
        return crop
    boundary = area - int(imageops.erode_cross(binary).sum())  # the erosion lies inside
    width = area / max(boundary / 2, 1)
    side = max(crop.shape)
    if width / side >= MIN_STROKE_RATIO:
        return crop
    grow = round(TARGET_STROKE_RATIO * side - width)
    if grow < 1:
        return crop
    pad = grow // 2 + 1
    padded = np.pad(crop, pad)
    grown = imageops.dilate_disk(padded, _disk(grow))
    return _crop(grown)


def _disk(diameter: int) -> np.ndarray:
    r = (diameter + 1) / 2
    y, x = np.mgrid[: diameter + 1, : diameter + 1] - diameter / 2
    disk: np.ndarray = (x * x + y * y) <= r * r
    return disk


def fit_and_centre(crop: np.ndarray) -> np.ndarray:
    """Fit into BOX x BOX keeping aspect ratio, then centre by centre of mass in SIZE x SIZE."""
    h, w = crop.shape
    scale = BOX / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    method = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    small = np.asarray(Image.fromarray(np.asarray(crop, dtype=np.float32), mode="F").resize((nw, nh), method))
    small = np.clip(small, 0.0, 1.0)
    peak = float(small.max())
    if peak <= 0:
        raise NoInk("no ink found")
    small = small / peak
    total = small.sum()  # scipy's center_of_mass, the same sums without its overhead
    cy = float((small * np.arange(nh, dtype=np.float64)[:, None]).sum() / total)
    cx = float((small * np.arange(nw, dtype=np.float64)[None, :]).sum() / total)
    top = min(max(round(COM_TARGET[0] - cy), 0), SIZE - nh)
    left = min(max(round(COM_TARGET[1] - cx), 0), SIZE - nw)
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    out[top : top + nh, left : left + nw] = small
    return out


_ROWS = np.arange(SIZE, dtype=np.float64)


def is_mnist_like(ink: np.ndarray) -> bool:
    """28x28, digit about 20 pixels tall or wide, centre of mass where MNIST puts it.

    Plain numpy sums rather than scipy's center_of_mass: this runs on every 28x28 upload, and
    this way it costs a few microseconds instead of tens."""
    if ink.shape != (SIZE, SIZE):
        return False
    row_peaks = ink.max(axis=1)
    if float(row_peaks.max()) < 0.5:
        return False
    rows = ink.sum(axis=1, dtype=np.float64)
    cols = ink.sum(axis=0, dtype=np.float64)
    inked_rows = np.flatnonzero(row_peaks > 0.05)
    inked_cols = np.flatnonzero(ink.max(axis=0) > 0.05)
    side = max(inked_rows[-1] - inked_rows[0], inked_cols[-1] - inked_cols[0]) + 1
    total = float(rows.sum())
    cy, cx = float(rows @ _ROWS) / total, float(cols @ _ROWS) / total
    return bool(BOX - 2 <= side <= BOX + 1 and abs(cy - COM_TARGET[0]) <= 1 and abs(cx - COM_TARGET[1]) <= 1)


def to_tensor(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(..., 28, 28) in [0, 1] -> normalised float tensor with a channel axis: (..., 1, 28, 28)."""
    t = torch.as_tensor(image, dtype=torch.float32)
    return ((t - MEAN) / STD).unsqueeze(-3)


_HALF = SIZE * SIZE // 2


def _passes_through(gray: np.ndarray) -> np.ndarray | None:
    """An MNIST-like 28x28 image, made white on black if it was not, or None."""
    if gray.shape != (SIZE, SIZE):
        return None
    part = np.partition(gray.ravel(), (_HALF - 1, _HALF))
    median = (part[_HALF - 1] + part[_HALF]) / part.dtype.type(2)  # np.median's arithmetic, without its overhead
    raw = gray if float(median) < 0.5 else 1.0 - gray
    return raw.astype(np.float32) if is_mnist_like(raw) else None


def _shrink(gray: np.ndarray, side: int) -> np.ndarray:
    if max(gray.shape) <= side:
        return gray
    small: np.ndarray = np.asarray(_shrink_to(Image.fromarray(gray, mode="F"), side))
    return small


def _border_level(gray: np.ndarray) -> float | None:
    """The background's level where it is clean all round (a canvas, a scan, a drawing): the
    border's median when its pixels barely vary, else None."""
    band = max(1, round(0.03 * min(gray.shape)))
    border = np.concatenate(
        [gray[:band].ravel(), gray[-band:].ravel(), gray[:, :band].ravel(), gray[:, -band:].ravel()]
    )
    low, median, high = _quantiles(border, (10, 50, 90))
    return median if high - low < FLAT_BACKGROUND else None


def mnistify(gray: np.ndarray) -> tuple[np.ndarray, bool]:
    """Grayscale in [0, 1] (any size, any polarity) -> 28x28 white-on-black, and whether it passed through.

    The digit is found at ANALYSIS_SIDE pixels; when it is small there (a digit far away on a large
    photo), it is cut out of the working image and analysed again at full detail.
    """
    same = _passes_through(gray)
    if same is not None:
        return same, True
    coarse = _shrink(gray, ANALYSIS_SIDE)
    paper = _border_level(coarse)
    if paper is None:  # a photo: uneven light, noise, a table; it needs the detail
        return _model_input(keep_digit(ink_map(gray))), False
    ink, box = _clean_digit(coarse, paper)
    if coarse.shape != gray.shape and not _big_enough(box, ink.shape):  # small: look again, closer
        r0, r1, c0, c1 = box
        sy, sx = gray.shape[0] / coarse.shape[0], gray.shape[1] / coarse.shape[1]
        margin = max(r1 - r0, c1 - c0) // 4 + 2
        y0, y1 = max(0, int((r0 - margin) * sy)), min(gray.shape[0], int((r1 + margin) * sy) + 1)
        x0, x1 = max(0, int((c0 - margin) * sx)), min(gray.shape[1], int((c1 + margin) * sx) + 1)
        ink = keep_digit(ink_map(_shrink(gray[y0:y1, x0:x1], ANALYSIS_SIDE)))
        box = _bbox(ink)
    return _model_input(ink, box), False


def _clean_digit(gray: np.ndarray, paper: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The digit's ink map on a clean background (`_border_level` gave `paper`), and its `_bbox`."""
    ink = keep_digit(clean_ink_map(gray, paper), border_clutter=False)
    return ink, _bbox(ink)


def _model_input(ink: np.ndarray, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """The digit's ink map (and its `_bbox`, if known) -> 28x28: cropped, thin strokes thickened,
    fitted and centred."""
    return fit_and_centre(_thicken(_crop(ink, box=box)))


def _big_enough(box: tuple[int, int, int, int], shape: tuple[int, ...]) -> bool:
    """The digit (its `_bbox`) spans REFINE_BELOW / ANALYSIS_SIDE of the image or more: no closer
    look needed."""
    r0, r1, c0, c1 = box
    return bool(max(r1 - r0, c1 - c0) * ANALYSIS_SIDE >= REFINE_BELOW * max(shape))


def preprocess(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Preprocessed:
    """Image bytes -> the model's input. Raises a `PreprocessError` subclass for bad input."""
    return preprocess_opened(open_image(data, max_pixels), data)


def preprocess_opened(opened: Opened, data: bytes) -> Preprocessed:
    """`preprocess` for an image `open_image(data)` has already opened (so its size is known).

    The decoded pixels are released when it returns (Image.close), not whenever the last reference
    goes: Pillow's image files can sit in reference cycles, and a service that collects cycles
    rarely would otherwise hold every decoded upload for a while (measured: +150 MB a worker in a
    60 s soak).
    """
    img = None
    try:
        img = load(opened, data)
        return _preprocess_loaded(img)
    finally:
        if img is not None:
            img.close()
        opened.close()


def _preprocess_loaded(img: Image.Image) -> Preprocessed:
    if img.size == (SIZE, SIZE) and img.mode == "L":  # the common MNIST upload: no conversion needed
        same = _passes_through(np.asarray(img).astype(np.float32) / np.float32(255))
        if same is not None:
            return Preprocessed(image=same, fast_path=True)
    if max(img.size) > ANALYSIS_SIDE:
        # mnistify's clean-background path, from an image made straight at ANALYSIS_SIDE: a canvas
        # or a scan never needs the working-resolution copy, whose making cost it 10% of its time
        coarse = to_gray(img, ANALYSIS_SIDE, blocks=True)
        paper = _border_level(coarse)
        if paper is not None:
            ink, box = _clean_digit(coarse, paper)
            if _big_enough(box, ink.shape):
                return Preprocessed(image=_model_input(ink, box), fast_path=False)
    image, fast = mnistify(to_gray(img))
    return Preprocessed(image=image, fast_path=fast)
