"""How far stated confidence is from the truth: the expected calibration error and the share of
confident wrong answers, as `model.evaluate` reports them for each kind of image."""

from __future__ import annotations

import numpy as np

#: Equal-width confidence bins of the expected calibration error (the common choice, Guo et al. 2017).
ECE_BINS = 15
#: "Confident": an answer stated at more than this probability.
CONFIDENT = 0.9


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Sum over equal-width confidence bins of (share of answers in the bin) x |accuracy - mean
    confidence| in it; 0 for no answers."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    if confidence.size == 0:
        return 0.0
    # bin k holds (k/bins, (k+1)/bins]; a confidence of 0 joins the first
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    total = 0.0
    for k in range(bins):
        inside = which == k
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)


def confident_wrong_share(confidence: np.ndarray, correct: np.ndarray, threshold: float = CONFIDENT) -> float:
    """The share of all answers that are wrong and stated above `threshold`."""
    confidence = np.asarray(confidence, dtype=np.float64)
    if confidence.size == 0:
        return 0.0
    return float(((confidence > threshold) & ~np.asarray(correct, dtype=bool)).mean())
