"""Refusing what is not a digit: the rule a checkpoint carries, and how its thresholds are fitted.

The network is the tutorial CNN, trained to spread its probability evenly over the ten digits
when an image holds none (outlier exposure: images made by `model.synth.negatives`). The refusal score
is the answer's stated confidence, its temperature-scaled softmax probability: below the threshold
the service answers `not_a_digit`. The checkpoint holds a threshold for each of several operating
points, each the share of held-out real digits the threshold turns away (`RATES`); the service picks
one with `DIGITS_REFUSAL_RATE` (between two stored points the threshold is interpolated).

A checkpoint without refusal data refuses nothing but images with no ink: its answers are the
best digit, as before refusal existed, and `/model` says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The operating points a checkpoint stores: shares of held-out real digits refused.
RATES = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.05)
#: The operating point served unless DIGITS_REFUSAL_RATE says otherwise.
DEFAULT_RATE = 0.002
SCORE = "max_softmax"


class RefusalDataError(ValueError):
    """The checkpoint's refusal data is malformed."""


@dataclass(frozen=True)
class Refusal:
    thresholds: dict[float, float]  # share of held-out digits refused -> threshold on the score
    fitted_on: str  # which held-out digits the thresholds were fitted on
    method: str  # how the network learned to tell digits from the rest
    score: str = SCORE

    def threshold(self, rate: float) -> float:
        """The score below which an image is refused, at the operating point `rate` (interpolated
        between the stored points; ValueError outside them)."""
        rates = sorted(self.thresholds)
        if not rates[0] <= rate <= rates[-1]:
            raise ValueError(f"{rate} is outside the operating points the checkpoint holds ({rates[0]}..{rates[-1]})")
        return float(np.interp(rate, rates, [self.thresholds[r] for r in rates]))

    def to_meta(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "thresholds": {str(r): t for r, t in sorted(self.thresholds.items())},
            "fitted_on": self.fitted_on,
            "method": self.method,
        }

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> Refusal | None:
        """The refusal data of a checkpoint's metadata; None when it has none; RefusalDataError when
        it is malformed."""
        data = meta.get("refusal")
        if data is None:
            return None
        try:
            if data["score"] != SCORE:
                raise RefusalDataError(f"refusal score {data['score']!r}; this code computes {SCORE!r}")
            thresholds = {float(r): float(t) for r, t in data["thresholds"].items()}
            refusal = cls(thresholds, str(data["fitted_on"]), str(data["method"]))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            if isinstance(e, RefusalDataError):
                raise
            raise RefusalDataError(f"malformed refusal data ({e.__class__.__name__}: {e})") from None
        values = [refusal.thresholds[r] for r in sorted(refusal.thresholds)]
        if not values or any(not 0 <= v <= 1 for v in values) or values != sorted(values):
            raise RefusalDataError("refusal thresholds must be probabilities, rising with the share refused")
        return refusal


def fit_thresholds(digit_scores: np.ndarray, rates: tuple[float, ...] = RATES) -> dict[float, float]:
    """For each rate, the score below which that share of these (held-out, real) digits falls."""
    scores = np.sort(np.asarray(digit_scores, dtype=np.float64))
    return {rate: float(np.quantile(scores, rate)) for rate in rates}
