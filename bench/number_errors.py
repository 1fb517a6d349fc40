"""Where handwritten numbers are lost: `python bench/number_errors.py [CHECKPOINT] [--numbers N]
[--seed S] [--data-dir D]`.

Draws N numbers of 2-6 MNIST test digits as `model.synth.realnumbers` draws its handwritten kind (number
k from seed S + k), reads each as `/predict/number` does, and sorts every number not read exactly
by the first reason: `count`, the digits were not found one for one (segmentation); `model`, a
misread digit the checkpoint misreads as the MNIST image too (what `bench/number_ceiling.py`
counts); `pen`, a misread digit whose pen stroke alone (`model.synth.realworld._stroke_mask`, dark on
white, through `/predict`'s preprocessing) is misread too: the drawing lost it (a faint loop under
the pen's threshold); `page`, a digit misread only in the number (photographed, cut out).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from model.checkpoint import DEFAULT_CHECKPOINT, LoadedModel, load_checkpoint
from model.data import load_split
from model.evaluate.digits import predict, probabilities
from model.evaluate.numbers import read_number
from model.imaging.errors import PreprocessError
from model.imaging.preprocess import preprocess
from model.synth import realnumbers
from model.synth.realnumbers import LENGTHS, make_handwritten
from model.synth.realworld import _png, _stroke_mask

PENS: list[np.ndarray] = []


def _recorded(digit: np.ndarray, height: int, rng: np.random.Generator) -> np.ndarray:
    mask = _stroke_mask(digit, height, rng)
    PENS.append(mask)
    return mask


def _pen_read(model: LoadedModel, mask: np.ndarray) -> int:
    """The digit read from a pen stroke alone, dark on white with a margin, as `/predict` reads it."""
    h, w = mask.shape
    page = np.ones((h * 2, max(w, h) * 2), dtype=np.float32)
    page[h // 2 : h // 2 + h, (page.shape[1] - w) // 2 : (page.shape[1] - w) // 2 + w] -= mask
    data, _ = _png(Image.fromarray((page * 255).astype(np.uint8), "L"))
    try:
        return int(probabilities(model, preprocess(data).image[None])[0].argmax())
    except PreprocessError:
        return -1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", type=Path, nargs="?", default=DEFAULT_CHECKPOINT)
    p.add_argument("--numbers", type=int, default=3000)
    p.add_argument("--seed", type=int, default=40_000)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--show", type=int, default=10, help="print this many of each reason")
    args = p.parse_args()
    torch.set_num_threads(2)
    model = load_checkpoint(args.checkpoint)
    test = load_split("test", args.data_dir)
    images, labels = test.images.numpy(), test.labels.numpy()
    right = predict(model, images.astype(np.float32) / 255) == labels
    reasons: Counter[str] = Counter()
    realnumbers._stroke_mask = _recorded  # type: ignore[attr-defined]  # each pen stroke, kept to be read alone
    for k in range(args.numbers):
        rng = np.random.default_rng(args.seed + k)
        at = rng.integers(len(images), size=int(rng.integers(LENGTHS[0], LENGTHS[1] + 1)))
        PENS.clear()
        data, _ = make_handwritten([images[i] for i in at], rng)
        want = "".join(str(int(labels[i])) for i in at)
        got = read_number(model, data, probabilities)
        if got == want:
            reason = "exact"
        elif got is None or len(got) != len(want):
            reason = "count"
        else:
            wrong = [(i, pen) for i, pen, a, b in zip(at, PENS, want, got, strict=True) if a != b]
            if not all(right[i] for i, _ in wrong):
                reason = "model"
            elif any(_pen_read(model, pen) != labels[i] for i, pen in wrong):
                reason = "pen"
            else:
                reason = "page"
        reasons[reason] += 1
        if reason != "exact" and reasons[reason] <= args.show:
            print(f"{reason:6} seed {args.seed + k}: {want} read {got}")
    n = args.numbers
    print(
        f"{n} numbers: "
        + ", ".join(f"{r} {reasons[r]} ({reasons[r] / n:.2%})" for r in ("exact", "count", "model", "pen", "page"))
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
