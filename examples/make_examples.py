"""Writes the example uploads in this folder: `python examples/make_examples.py`.

digit.png  - MNIST test image 0 (a 7) as the 28x28 grayscale PNG MNIST itself is
photo.jpg  - MNIST test image 1 (a 2) as a 400x300 phone-photo-like JPEG: dark ink on uneven paper
canvas.png - MNIST test image 4 (a 4) drawn on a transparent 280x280 canvas (RGBA)
printed.png - a typeset 5 (DejaVu Sans Bold, or Pillow's own font) on white
number.png - the number 2026 drawn on the page's transparent 840x280 canvas (model.synth.realnumbers)
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from model.data import load_split
from model.synth.realnumbers import canvas_png

HERE = Path(__file__).resolve().parent


def main() -> None:
    test = load_split("test")
    images = test.images.numpy()
    Image.fromarray(images[0], "L").save(HERE / "digit.png")

    rng = np.random.default_rng(1)
    ink = np.asarray(Image.fromarray(images[1]).resize((210, 210), Image.Resampling.BICUBIC), np.float32) / 255
    paper = np.ones((300, 400), np.float32)
    paper[50:260, 120:330] -= np.clip((ink - 0.4) * 4, 0, 1)
    light = np.linspace(0.7, 0.95, 400, dtype=np.float32)[None, :]
    gray = np.clip(light * (0.12 + 0.88 * paper) + rng.normal(0, 0.02, paper.shape), 0, 1)
    rgb = (np.stack([gray, gray * 0.98, gray * 0.92], axis=-1) * 255).astype(np.uint8)
    photo = Image.fromarray(rgb, "RGB").rotate(4, Image.Resampling.BILINEAR, fillcolor=(170, 165, 150))
    photo.filter(ImageFilter.GaussianBlur(0.8)).save(HERE / "photo.jpg", quality=80)

    alpha = np.asarray(Image.fromarray(images[4]).resize((200, 200), Image.Resampling.BICUBIC))
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[30:230, 60:260, 3] = np.where(alpha > 100, 255, alpha)
    Image.fromarray(rgba, "RGBA").save(HERE / "canvas.png")

    font_path = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
    font = ImageFont.truetype(str(font_path), 120) if font_path.is_file() else ImageFont.load_default(120)
    printed = Image.new("L", (160, 200), 255)
    ImageDraw.Draw(printed).text((30, 20), "5", fill=0, font=font)
    buf = io.BytesIO()
    printed.save(buf, "PNG")
    (HERE / "printed.png").write_bytes(buf.getvalue())
    (HERE / "number.png").write_bytes(canvas_png("2026"))


if __name__ == "__main__":
    main()
