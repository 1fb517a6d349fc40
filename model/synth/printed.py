"""Printed digits and numbers in many typefaces, as people photograph or scan them.

Faces come from Debian's font packages in families: those the network is trained and tuned on
(`TRAIN_FAMILIES`: DejaVu, Liberation, FreeFont, Noto; `fonts-dejavu*`, `fonts-liberation`,
`fonts-freefont-ttf`, `fonts-noto-core`) and those kept for checking only (`HELD_OUT_FAMILIES`: URW
base35, `fonts-urw-base35`), whole families apart, so that a figure on the held-out ones says what a
face never seen does. Each family brings its regular, bold, italic, narrow or condensed and light
faces where it has them.

A rendering is one digit or a number of several, 12-200 px high, in dark ink (black, grey, blue)
on paper of a light tint, with the glyph forms the faces give (a 1 with a flag, with or without a
foot; open and closed 4s; 6 and 9 with straight or curved tails) and a 7 with a bar added by
hand now and then; letter spacing from loose to touching (`tracking`, a share of the digit's
height added to each advance); a slight rotation, sometimes blur and noise; PNG or JPEG. Digits to
train on (`training_print`) are sometimes 1s and 7s drawn from their parts (`model.synth.glyphs`)
instead: forms between the two that no training face has.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from model.imaging.errors import PreprocessError
from model.imaging.preprocess import preprocess
from model.synth.glyphs import glyph_ink

log = logging.getLogger("model.synth.printed")

FONT_ROOT = Path("/usr/share/fonts")
#: Family -> file name patterns; trained and tuned on.
TRAIN_FAMILIES: dict[str, tuple[str, ...]] = {
    "DejaVu Sans": ("DejaVuSans.ttf", "DejaVuSans-*.ttf", "DejaVuSansCondensed*.ttf"),
    "DejaVu Sans Mono": ("DejaVuSansMono*.ttf",),
    "DejaVu Serif": ("DejaVuSerif*.ttf",),
    "Liberation Sans": ("LiberationSans-*.ttf",),
    "Liberation Sans Narrow": ("LiberationSansNarrow-*.ttf",),
    "Liberation Serif": ("LiberationSerif-*.ttf",),
    "Liberation Mono": ("LiberationMono-*.ttf",),
    "FreeSans": ("FreeSans*.ttf",),
    "FreeSerif": ("FreeSerif*.ttf",),
    "FreeMono": ("FreeMono*.ttf",),
    "Noto Sans": ("NotoSans-*.ttf",),
    "Noto Serif": ("NotoSerif-*.ttf",),
}
#: Families never trained or tuned on: the evaluation's.
HELD_OUT_FAMILIES: dict[str, tuple[str, ...]] = {
    "Nimbus Sans": ("NimbusSans-*.otf",),
    "Nimbus Sans Narrow": ("NimbusSansNarrow-*.otf",),
    "Nimbus Roman": ("NimbusRoman-*.otf",),
    "Nimbus Mono PS": ("NimbusMonoPS-*.otf",),
    "URW Gothic": ("URWGothic-*.otf",),
    "URW Bookman": ("URWBookman-*.otf",),
    "C059": ("C059-*.otf",),
    "P052": ("P052-*.otf",),
}
#: The Debian packages that hold them.
PACKAGES = ("fonts-dejavu-core", "fonts-dejavu-extra", "fonts-liberation", "fonts-freefont-ttf", "fonts-noto-core",
            "fonts-urw-base35")  # fmt: skip
#: Letter spacing: a share of the digit's height added to each glyph's advance.
LOOSE, TIGHT, TOUCHING = (0.05, 0.45), (-0.08, 0.05), (-0.22, -0.1)


@cache
def faces(held_out: bool) -> tuple[Path, ...]:
    """The font files of the training or the held-out families found on this machine."""
    families = HELD_OUT_FAMILIES if held_out else TRAIN_FAMILIES
    found = {p for patterns in families.values() for pattern in patterns for p in FONT_ROOT.rglob(pattern)}
    return tuple(sorted(found))


def missing(held_out: bool) -> list[str]:
    """The families of which no face is installed."""
    families = HELD_OUT_FAMILIES if held_out else TRAIN_FAMILIES
    names = {p.name for p in faces(held_out)}
    return [f for f, pats in families.items() if not any(Path(n).match(p) for n in names for p in pats)]


@cache
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


def typeset(text: str, face: Path, height: int, tracking: float, rng: np.random.Generator,
            slant: float = 0.0) -> np.ndarray:  # fmt: skip
    """`text` in `face`, its digits `height` px high, as ink coverage in [0, 1] (H, W) with a
    margin; each glyph placed by its advance plus `tracking` x height; a 7 may get a bar; leaning
    right by `slant` (a shear: the top moves `slant` x the height)."""
    size = max(6, round(height / 0.72))  # digits are about 0.72 em high in most faces
    font = _font(face, size)
    advances = [font.getlength(c) for c in text]
    width = int(sum(advances) + tracking * height * (len(text) - 1) + 2 * size)
    canvas = Image.new("L", (max(width, size), 2 * size), 0)
    draw = ImageDraw.Draw(canvas)
    x = float(size)
    for c, advance in zip(text, advances, strict=True):
        draw.text((x, size * 0.4), c, fill=255, font=font)
        if c == "7" and rng.random() < 0.15:  # the continental bar, drawn as a pen would
            left, top, right, bottom = draw.textbbox((x, size * 0.4), c, font=font)
            y = top + (bottom - top) * rng.uniform(0.45, 0.6)
            stroke = max(1, round(height * rng.uniform(0.07, 0.12)))
            draw.line([(left + (right - left) * 0.25, y), (left + (right - left) * 0.85, y)], fill=255, width=stroke)
        x += advance + tracking * height
    if slant:
        w, h = canvas.size
        canvas = canvas.transform((w + h, h), Image.Transform.AFFINE, (1, slant, -slant * h, 0, 1, 0),
                                  Image.Resampling.BILINEAR)  # fmt: skip
    ink = np.asarray(canvas, np.float32) / 255
    rows, cols = np.flatnonzero(ink.max(1) > 0), np.flatnonzero(ink.max(0) > 0)
    if not len(rows):
        raise ValueError(f"{face.name} draws nothing for {text!r}")
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def page(ink: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    """Ink coverage laid on paper as an upload: a margin, a paper tint and an ink colour, a slight
    rotation, sometimes blur and noise; PNG or JPEG."""
    h, w = ink.shape
    margin = [int(rng.uniform(0.15, 1.2) * h) + 2 for _ in range(4)]
    cover = np.zeros((h + margin[0] + margin[1], w + margin[2] + margin[3]), np.float32)
    cover[margin[0] : margin[0] + h, margin[2] : margin[2] + w] = ink
    paper = np.array([rng.uniform(215, 255), rng.uniform(210, 255), rng.uniform(195, 255)], np.float32)
    colour = rng.choice([[20, 20, 20], [60, 60, 60], [25, 35, 110], [0, 0, 0]]).astype(np.float32)
    colour += rng.uniform(0, 40)
    rgb = paper * (1 - cover[..., None]) + colour * cover[..., None]
    img = Image.fromarray(rgb.clip(0, 255).astype(np.uint8), "RGB")
    if rng.random() < 0.8:
        fill = tuple(int(v) for v in paper)
        img = img.rotate(rng.uniform(-4, 4), Image.Resampling.BICUBIC, expand=True, fillcolor=fill)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.6) * max(1.0, h / 40)))
    if rng.random() < 0.3:
        noisy = np.asarray(img, np.float32) + rng.normal(0, rng.uniform(2, 8), (img.height, img.width, 1))
        img = Image.fromarray(noisy.clip(0, 255).astype(np.uint8), "RGB")
    buf = io.BytesIO()
    if rng.random() < 0.5:
        img.save(buf, "JPEG", quality=int(rng.integers(50, 95)))
        return buf.getvalue(), "jpg"
    (img.convert("L") if rng.random() < 0.5 else img).save(buf, "PNG")
    return buf.getvalue(), "png"


def height(rng: np.random.Generator, low: int = 12, high: int = 200) -> int:
    """A digit height, as many small as large (log-uniform)."""
    return round(float(np.exp(rng.uniform(np.log(low), np.log(high)))))


def face(rng: np.random.Generator, held_out: bool) -> Path:
    """A face of the training or the held-out families, at random."""
    found = faces(held_out)
    if not found:
        raise FileNotFoundError(f"no font of {'held-out' if held_out else 'training'} families under {FONT_ROOT}")
    return found[int(rng.integers(len(found)))]


def printed(text: str, rng: np.random.Generator, held_out: bool, spacing: tuple[float, float] = LOOSE,
            low: int = 12, slant: float = 0.0) -> tuple[bytes, str]:  # fmt: skip
    """`text` printed in a face of the training or the held-out families, as an upload."""
    chosen = face(rng, held_out)
    return page(typeset(text, chosen, height(rng, low), rng.uniform(*spacing), rng, slant), rng)


def digits(n: int, seed: int, held_out: bool = False, only: Path | None = None) -> Iterable[tuple[int, bytes, str]]:
    """`n` single printed digits, the ten alike: (label, bytes, extension); with `only`, all in
    that face."""
    rng = np.random.default_rng(seed)
    for k in range(n):
        label = k % 10
        if only is None:
            yield (label, *printed(str(label), rng, held_out))
        else:
            yield (label, *page(typeset(str(label), only, height(rng), rng.uniform(*LOOSE), rng), rng))


#: The share of each digit among printed training digits: the 1 with a flag and the 7 it resembles
#: (which MNIST's 1s and 7s do not teach apart) more often than the rest.
LABEL_SHARES = (0.075, 0.25, 0.075, 0.075, 0.075, 0.075, 0.075, 0.15, 0.075, 0.075)


#: The share of training 1s and 7s drawn from their parts (`model.synth.glyphs`) instead of in a face.
GLYPH_SHARE = 0.3


def training_print(label: int, rng: np.random.Generator) -> bytes:
    """One printed digit to train on, as an upload: in a face of the training families, or for a 1
    or a 7 now and then drawn from its parts; 40% of them slanted as an oblique face leans (any
    face made oblique)."""
    slant = rng.uniform(-0.1, 0.3) if rng.random() < 0.4 else 0.0
    if label in (1, 7) and rng.random() < GLYPH_SHARE:
        return page(glyph_ink(label, height(rng), rng, slant), rng)[0]
    return printed(str(label), rng, False, slant=slant)[0]


def training_digits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` printed digits to train on (`training_print`, LABEL_SHARES of each), read back through
    the service's preprocessing: (M, 28, 28) float in [0, 1] and their labels (those it refuses are
    left out)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in rng.choice(10, size=n, p=LABEL_SHARES):
        with contextlib.suppress(PreprocessError):
            images.append(preprocess(training_print(int(label), rng)).image)
            labels.append(int(label))
    log.info("printed digits: %d of %d read", len(images), n)
    return torch.from_numpy(np.stack(images)).float(), torch.tensor(labels)


#: Digits whose pieces look like no digit (a 1's stem, a 7's or a 4's stroke, is a 1).
FRAGMENTED = "0235689"


def training_negatives(n: int, seed: int) -> torch.Tensor:
    """`n` printed images of what a number's cutting may give that is no digit, read through the
    service's preprocessing: half a piece of a digit (30-65% of its width, a FRAGMENTED one), half
    two or three digits set touching, whole. Trained towards an even spread (outlier exposure), so
    that `model.imaging.number.choose` prefers the cut into whole digits."""
    rng = np.random.default_rng(seed)
    images = []
    for k in range(n):
        chosen = face(rng, False)
        if k % 2:
            text = "".join(str(d) for d in rng.integers(10, size=int(rng.integers(2, 4))))
            ink = typeset(text, chosen, height(rng, 16), rng.uniform(*TOUCHING), rng)
        else:
            ink = typeset(str(rng.choice(list(FRAGMENTED))), chosen, height(rng, 16), 0.0, rng)
            cut = max(1, round(ink.shape[1] * rng.uniform(0.3, 0.65)))
            ink = ink[:, :cut] if rng.random() < 0.5 else ink[:, -cut:]
        with contextlib.suppress(PreprocessError):
            images.append(preprocess(page(ink, rng)[0]).image)
    log.info("printed negatives: %d of %d read", len(images), n)
    return torch.from_numpy(np.stack(images)).float()


def write_held_out(out: Path, per_kind: int, seed: int, only: Path | None = None) -> int:
    """`per_kind` printed digits of each of the ten in the held-out families, or all in the face
    `only` (`digits`), as `<label>_heldfonts_<n>.<ext>` files in `out`; how many."""
    out.mkdir(parents=True, exist_ok=True)
    for k, (label, data, ext) in enumerate(digits(10 * per_kind, seed, held_out=True, only=only)):
        (out / f"{label}_heldfonts_{k:05d}.{ext}").write_bytes(data)
    return 10 * per_kind


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m model.synth.printed", description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--per-kind", type=int, default=100, help="digits of each of the ten")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--face", default=None, help="one held-out face's file name (e.g. URWGothic-Book.otf): only it")
    args = p.parse_args(argv)
    only = None
    if args.face is not None:
        only = next((f for f in faces(True) if f.name == args.face), None)
        if only is None:
            p.error(f"{args.face} is no held-out face here: {', '.join(f.name for f in faces(True))}")
    print(f"wrote {write_held_out(args.out, args.per_kind, args.seed, only)} images to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
