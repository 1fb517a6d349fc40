"""Scoring whole numbers (`model.evaluate --images` on files named `<number>_<kind>_<n>.<ext>`, the
number two or more digits long): each read as `/predict/number` reads it, exact strings only, and
sent to `/predict` as well, which should answer `several_digits`.

Reported per kind: the share read exactly, the share with the right count of digits, the digits'
own accuracy where the count is right, the share `/predict` answers `several_digits`, and the share
refused as `not_a_digit` (all, and those read exactly).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.checkpoint import LoadedModel
from model.gate import digit_probabilities
from model.imaging.errors import PreprocessError, SeveralDigits
from model.imaging.number import choose, preprocess_number
from model.imaging.preprocess import Preprocessed, preprocess


@dataclass(frozen=True)
class Read:
    digit: int
    confidence: float


def refusal_scores(model: LoadedModel, images: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """The refusal score of each image (`model.refusal`): the digit gate's probability, else the confidence."""
    return confidence if model.gate is None else digit_probabilities(model.gate, images)


def number_refused(model: LoadedModel, data: bytes, probabilities: Any) -> bool:
    """Whether `/predict/number` answers `not_a_digit` for `data` at each lane's default operating
    point: one of the digits it reads is under its lane's refusal threshold."""
    if model.refusal is None:
        return False
    try:
        slots = preprocess_number(data)
    except PreprocessError:
        return False
    probs = probabilities(model, np.stack([image for slot in slots for image in slot.images]))
    chosen = choose(slots, [Read(int(p.argmax()), float(p.max())) for p in probs])
    images = np.stack([digit.image for digit, _ in chosen])
    scores = refusal_scores(model, images, np.array([answer.confidence for _, answer in chosen]))
    return bool((scores < model.refusal.threshold(None, slots[0].lane)).any())


def read_number(model: LoadedModel, data: bytes, probabilities: Any) -> str | None:
    """The number `/predict/number` reads in `data` (no refusal), or None when it reads none."""
    try:
        slots = preprocess_number(data)
        probs = probabilities(model, np.stack([image for slot in slots for image in slot.images]))
        read = [Read(int(p.argmax()), float(p.max())) for p in probs]
        return "".join(str(answer.digit) for _, answer in choose(slots, read))
    except PreprocessError:
        return None


def one_digit(model: LoadedModel, data: bytes, probabilities: Any) -> Preprocessed:
    """What `/predict` reads of `data`: its preprocessing, and SeveralDigits where a wide digit is
    read by the number path as several that touch (as `app.predictor.Predictor.one_digit` does)."""
    pre = preprocess(data)
    if pre.wide:
        number = read_number(model, data, probabilities)
        if number is not None and len(number) > 1:
            raise SeveralDigits(len(number))
    return pre


def evaluate_numbers(model: LoadedModel, files: list[tuple[Path, str, str]], probabilities: Any) -> dict[str, Any]:
    """`files`: (path, number, kind). Returns {"all": row, "by_kind": {kind: row}}, rows as above,
    and the misread files' names with what was read (the first 20)."""
    results = []
    for path, number, _ in files:
        data = path.read_bytes()
        try:
            one_digit(model, data, probabilities)
            several = False
        except SeveralDigits:
            several = True
        except PreprocessError:
            several = False
        results.append(
            (number, read_number(model, data, probabilities), several, number_refused(model, data, probabilities))
        )
    by_kind: dict[str, list[tuple[str, str | None, bool, bool]]] = defaultdict(list)
    for (_, _, kind), result in zip(files, results, strict=True):
        by_kind[kind].append(result)
    misread = [f"{p.name}: {got}" for (p, number, _), (_, got, *_) in zip(files, results, strict=True) if got != number]
    return {"all": _row(results), "by_kind": {k: _row(v) for k, v in sorted(by_kind.items())}, "misread": misread[:20]}


def _row(rows: list[tuple[str, str | None, bool, bool]]) -> dict[str, float]:
    n = len(rows)
    exact = sum(got == want for want, got, *_ in rows)
    counted = [(want, got) for want, got, *_ in rows if got is not None and len(got) == len(want)]
    digits = sum(len(want) for want, _ in counted)
    right = sum(a == b for want, got in counted for a, b in zip(want, got, strict=True))
    return {
        "n": n,
        "exact": round(exact / n, 4) if n else 0.0,
        "count_right": round(len(counted) / n, 4) if n else 0.0,
        "digit_accuracy": round(right / digits, 4) if digits else 0.0,
        "several_digits_at_predict": round(sum(s for _, _, s, _ in rows) / n, 4) if n else 0.0,
        # refused (not_a_digit) at each lane's default operating point: all, and those read exactly
        "refused": round(sum(r for *_, r in rows) / n, 4) if n else 0.0,
        "refused_right": round(sum(r and got == want for want, got, _, r in rows) / n, 4) if n else 0.0,
    }


def report_lines(numbers: dict[str, Any]) -> list[str]:
    """`evaluate_numbers`' result as lines of `model.evaluate`'s report."""
    lines = [""]
    for kind, row in {**numbers["by_kind"], "(all)": numbers["all"]}.items():
        lines.append(f"number {kind:<11} n={row['n']:<5} exact {row['exact']:.4f}  digits counted right "
                     f"{row['count_right']:.4f}  digit accuracy {row['digit_accuracy']:.4f}  several_digits at "
                     f"/predict {row['several_digits_at_predict']:.4f}  refused {row['refused']:.4f} (read right "
                     f"{row['refused_right']:.4f})")  # fmt: skip
    return lines + [f"misread: {m}" for m in numbers["misread"]]
