"""Refusing what is not a digit: the rule a checkpoint carries, and how its thresholds are fitted.

A checkpoint's refusal score is one of two (`SCORES`):

- `digit_gate`: the probability of "a digit" from the digit gate, a small network stored beside
  the tutorial CNN and trained for this alone (`model.gate`, `python -m model.train.gate`); the
  shipped checkpoint's;
- `max_softmax`: the answer's stated confidence, its temperature-scaled softmax probability, for a
  CNN trained to spread its probability evenly over the ten digits when an image holds none
  (outlier exposure: `python -m model.train --negatives N`).

Below the threshold the service answers `not_a_digit`. The checkpoint holds a threshold for each
of several operating points, each the share of held-out real digits the threshold turns away
(`RATES`); the service picks one with `DIGITS_REFUSAL_RATE` (between two stored points the
threshold is interpolated).

A checkpoint without refusal data refuses nothing but images with no ink: its answers are the
best digit, as before refusal existed, and `/model` says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The operating points a checkpoint stores: shares of held-out real digits refused.
RATES = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.05)
#: The operating point served in a lane the checkpoint names none for, unless DIGITS_REFUSAL_RATE says otherwise.
DEFAULT_RATE = 0.002
SCORE = "max_softmax"
GATE_SCORE = "digit_gate"
SCORES = (SCORE, GATE_SCORE)


class RefusalDataError(ValueError):
    """The checkpoint's refusal data is malformed."""


Table = dict[float, float]  # share of held-out digits refused -> threshold on the score


@dataclass(frozen=True)
class Refusal:
    thresholds: Table  # for every input lane without a table of its own in `lanes`
    fitted_on: str  # which held-out digits the thresholds were fitted on
    method: str  # how the network learned to tell digits from the rest
    score: str = SCORE
    #: input lane (model.imaging.preprocess.LANES) -> its own thresholds, fitted on its own digits
    lanes: dict[str, Table] = field(default_factory=dict)
    #: input lane -> the operating point served there unless DIGITS_REFUSAL_RATE says otherwise
    #: (DEFAULT_RATE for a lane not named)
    default_rates: dict[str, float] = field(default_factory=dict)

    def threshold(self, rate: float | None = None, lane: str | None = None) -> float:
        """The score below which an image of `lane` is refused, at the operating point `rate`
        (None: the lane's default), interpolated between the stored points; ValueError outside them."""
        table = self.lanes.get(lane, self.thresholds) if lane is not None else self.thresholds
        if rate is None:
            rate = self.default_rates.get(lane, DEFAULT_RATE) if lane is not None else DEFAULT_RATE
        rates = sorted(table)
        if not rates[0] <= rate <= rates[-1]:
            raise ValueError(f"{rate} is outside the operating points the checkpoint holds ({rates[0]}..{rates[-1]})")
        return float(np.interp(rate, rates, [table[r] for r in rates]))

    def to_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "score": self.score,
            "thresholds": _table_meta(self.thresholds),
            "fitted_on": self.fitted_on,
            "method": self.method,
        }
        if self.lanes:
            meta["lanes"] = {lane: _table_meta(table) for lane, table in sorted(self.lanes.items())}
        if self.default_rates:
            meta["default_rates"] = dict(sorted(self.default_rates.items()))
        return meta

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> Refusal | None:
        """The refusal data of a checkpoint's metadata; None when it has none; RefusalDataError when
        it is malformed."""
        data = meta.get("refusal")
        if data is None:
            return None
        try:
            if data["score"] not in SCORES:
                raise RefusalDataError(f"refusal score {data['score']!r}; this code computes {' or '.join(SCORES)}")
            refusal = cls(
                _table(data["thresholds"]),
                str(data["fitted_on"]),
                str(data["method"]),
                str(data["score"]),
                {str(lane): _table(table) for lane, table in data.get("lanes", {}).items()},
                {str(lane): float(rate) for lane, rate in data.get("default_rates", {}).items()},
            )
            for lane in refusal.default_rates:
                refusal.threshold(None, lane)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            if isinstance(e, RefusalDataError):
                raise
            raise RefusalDataError(f"malformed refusal data ({e.__class__.__name__}: {e})") from None
        return refusal


def _table_meta(table: Table) -> dict[str, float]:
    return {str(r): t for r, t in sorted(table.items())}


def _table(data: Mapping[str, Any]) -> Table:
    """A table of thresholds from a checkpoint; RefusalDataError unless they are probabilities
    rising with the share refused."""
    table = {float(r): float(t) for r, t in data.items()}
    values = [table[r] for r in sorted(table)]
    if not values or any(not 0 <= v <= 1 for v in values) or values != sorted(values):
        raise RefusalDataError("refusal thresholds must be probabilities, rising with the share refused")
    return table


def fit_thresholds(digit_scores: np.ndarray, rates: tuple[float, ...] = RATES) -> dict[float, float]:
    """For each rate, the score below which that share of these (held-out, real) digits falls."""
    scores = np.sort(np.asarray(digit_scores, dtype=np.float64))
    return {rate: float(np.quantile(scores, rate)) for rate in rates}
