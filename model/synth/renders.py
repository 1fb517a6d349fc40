"""Upload-like renderings of MNIST *training* digits, for `model.train --renders N`: each digit
drawn as `model.synth.realworld` draws its kinds (pen on paper, a canvas, a phone photo, a coarse scan,
pencil, out of focus, hairlines and felt tips) and read back through the service's own
preprocessing, so that the network learns what uploads look like after it, and the temperature and
refusal thresholds are fitted where uploads sit. `model.synth.realworld` draws its evaluation images
from the *test* set; these come from the training split only (the validation split's digits make
the held-out renderings).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from model.imaging.errors import PreprocessError
from model.imaging.preprocess import preprocess
from model.synth.realworld import (
    make_blurry,
    make_canvas,
    make_faint,
    make_ink,
    make_lowres,
    make_photo,
    make_thin_thick,
)

log = logging.getLogger("model.synth.renders")

Maker = Callable[[np.ndarray, np.random.Generator], tuple[bytes, str]]
#: The kinds rendered: model.synth.realworld's, but for the typeset and the re-uploaded MNIST ones.
MAKERS: dict[str, Maker] = {
    "ink": make_ink,
    "canvas": make_canvas,
    "photo": make_photo,
    "lowres8": lambda d, rng: make_lowres(d, (8, 11), rng),
    "lowres16": lambda d, rng: make_lowres(d, (12, 16), rng),
    "faint": make_faint,
    "blurry": make_blurry,
    "thin-thick": make_thin_thick,
}


def renders(digits: torch.Tensor, labels: torch.Tensor, per_kind: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`per_kind` renderings of each kind, of digits drawn at random from `digits` ((N, 28, 28)
    uint8, MNIST's): (M, 28, 28) float in [0, 1] as the service's preprocessing makes them, and their
    labels. Those the preprocessing refuses (no ink, several digits) are left out."""
    rng = np.random.default_rng(seed)
    images, kept = [], []
    source = digits.numpy()
    for kind, make in MAKERS.items():
        for i in rng.integers(len(source), size=per_kind):
            data, _ = make(source[i], rng)
            try:
                images.append(preprocess(data).image)
            except PreprocessError:
                continue
            kept.append(int(labels[i]))
        log.info("renders: %s done, %d images so far", kind, len(images))
    return torch.from_numpy(np.stack(images)).float(), torch.tensor(kept)
