"""Outlier exposure (Hendrycks et al. 2019) for `model.train --negatives N`: images with no digit,
made by `model.synth.negatives` and read by the service's own preprocessing, trained towards an even
spread over the ten digits, so that the stated confidence (the refusal score, `model.refusal`) is
low where there is no digit. Also the degradation that keeps coarse scans and soft photos of
digits from looking like outliers.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from model.imaging.errors import PreprocessError, SeveralDigits
from model.imaging.number import preprocess_number
from model.imaging.preprocess import preprocess
from model.synth.negatives import generate

log = logging.getLogger("model.train.outliers")

#: How often a kind of negative is drawn, against 1 for the rest: composed scenes are the kind the
#: network learns last.
KIND_WEIGHTS = {"scene": 3.0}


def negative_images(per_kind: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`per_kind` images of each kind of `model.synth.negatives` (a seed of its own), as the service's
    preprocessing makes them: (N, 28, 28) in [0, 1], and the sampling weight of each. One that
    /predict answers several_digits gives each of its groups, as /predict/number would read them;
    those the preprocessing refuses (no ink) are left out: the service never shows them to the
    network."""
    images, weights = [], []
    with tempfile.TemporaryDirectory(prefix="digits-negatives-") as folder:
        generate(Path(folder), per_kind, seed)
        for path in sorted(Path(folder).iterdir()):
            data = path.read_bytes()
            try:
                try:
                    found = [preprocess(data).image]
                except SeveralDigits:
                    found = [image for slot in preprocess_number(data) for image in slot.images]
            except PreprocessError:  # no ink, or too many groups to read
                continue
            images += found
            weights += [KIND_WEIGHTS.get(path.name.split("_")[1], 1.0)] * len(found)
    log.info("outlier exposure: %d images from %d negatives", len(images), per_kind * 7)
    return torch.from_numpy(np.stack(images)).float(), torch.tensor(weights)


def uniform_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against the even spread over the classes: lowest when nothing stands out."""
    return -F.log_softmax(logits, dim=1).mean(dim=1).mean()


def degrade(x: torch.Tensor, gen: torch.Generator, share: float) -> torch.Tensor:
    """`share` of a (B, 1, 28, 28) batch of digits made coarse (down to 8-16 px and back) or soft
    (a 3x3 blur), then stretched back to full ink: what a coarse scan or an out-of-focus photo
    looks like after preprocessing."""
    b = x.shape[0]
    pick = torch.rand(b, generator=gen) < share
    if share <= 0 or not bool(pick.any()):
        return x
    side = int(torch.randint(8, 17, (1,), generator=gen))
    coarse = F.interpolate(F.interpolate(x, size=(side, side), mode="area"), size=x.shape[-2:], mode="bilinear")
    soft = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)
    which = torch.rand(b, generator=gen) < 0.5
    y = torch.where(which.view(b, 1, 1, 1), coarse, soft)
    y = y / y.amax(dim=(2, 3), keepdim=True).clamp_min(1e-6)
    return torch.where(pick.view(b, 1, 1, 1), y, x)
