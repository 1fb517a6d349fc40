"""Evaluate a checkpoint on MNIST or on a folder of labelled images: `python -m model.evaluate --help`.

Image folders are read through `model.imaging.preprocess`, exactly as the service reads uploads. A file's
label is the digit its name starts with, followed by `_` or `-`, and the next name field, if any,
is its kind: `7_photo_0012.jpg` is a 7 of kind `photo`; `x_texture_0003.png` holds no digit
(`python -m model.synth.negatives`). Reported for the digits, overall and per kind: accuracy, the share
refused (by the refusal, apart: digits the best guess would have read right and wrong), the
expected calibration error (15 equal-width bins) and the share of answers that are
wrong at a confidence above 0.9; for the images with no digit, per kind: the share refused and the
share answered at a confidence above 0.9.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from model.checkpoint import DEFAULT_CHECKPOINT, CheckpointError, LoadedModel, load_checkpoint
from model.contract import to_tensor
from model.data import IMAGE_SUFFIXES, LABEL_PATTERN, DataError, load_split
from model.evaluate.calibration import CONFIDENT, confident_wrong_share, expected_calibration_error
from model.evaluate.numbers import evaluate_numbers, one_digit, refusal_scores, report_lines
from model.evaluate.plots import draw_plots
from model.imaging.errors import PreprocessError

#: The label of an image that holds no digit (a file named `x_...`).
NOT_A_DIGIT = -1


@dataclass
class Evaluation:
    images: np.ndarray  # (N, 28, 28) in [0, 1]: what the model saw (zeros where preprocessing failed)
    labels: np.ndarray  # (N,); NOT_A_DIGIT for an image with no digit
    predictions: np.ndarray  # (N,); -1 where the file was refused
    kinds: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    confidences: np.ndarray | None = None  # (N,) the stated probability of each answer; 0 where refused
    numbers: dict[str, Any] | None = None  # files of numbers (two digits or more): `evaluate_numbers`
    best: np.ndarray | None = None  # (N,) the best digit, refused or not; -1 where preprocessing failed

    def summary(self) -> dict[str, Any]:
        confidences = self.confidences if self.confidences is not None else np.ones(len(self.labels))
        is_digit = self.labels != NOT_A_DIGIT
        labels, predictions = self.labels[is_digit], self.predictions[is_digit]
        n = len(labels)
        correct = predictions == labels
        best = self.best if self.best is not None else self.predictions
        digits = list(range(10))
        if n:
            precision, recall, _, support = precision_recall_fscore_support(
                labels, predictions, labels=digits, zero_division=0
            )
        else:  # a folder of images with no digit only
            precision = recall = support = np.zeros(10)
        out: dict[str, Any] = {
            "accuracy": float(correct.mean()) if n else 0.0,
            "n": n,
            "errors": int((~correct).sum()),
            "refused": int((predictions < 0).sum()),
            **_calibration(predictions, correct, confidences[is_digit]),
            **_turned_away(predictions, best[is_digit], labels),
            "per_class": {
                str(d): {
                    "precision": round(float(precision[d]), 4),
                    "recall": round(float(recall[d]), 4),
                    "support": int(support[d]),
                }
                for d in digits
            },
            "confusion_matrix": (
                confusion_matrix(labels, predictions, labels=digits) if n else np.zeros((10, 10), int)
            ).tolist(),
        }
        if self.numbers:
            out["numbers"] = self.numbers
        if self.kinds:
            kinds = np.array(self.kinds)
            out["by_kind"] = {}
            for kind in sorted(set(kinds[is_digit].tolist())):
                at = is_digit & (kinds == kind)
                ok = self.predictions[at] == self.labels[at]
                row = {"accuracy": round(float(ok.mean()), 4), "n": int(at.sum())}
                out["by_kind"][kind] = row | _calibration(self.predictions[at], ok, confidences[at])
                out["by_kind"][kind] |= _turned_away(self.predictions[at], best[at], self.labels[at])
            negatives = {}
            for kind in sorted(set(kinds[~is_digit].tolist())):
                at = ~is_digit & (kinds == kind)
                negatives[kind] = _refusal(self.predictions[at], confidences[at])
            if negatives:
                out["not_a_digit"] = {"all": _refusal(self.predictions[~is_digit], confidences[~is_digit]),
                                      "by_kind": negatives}  # fmt: skip
        return out


def _calibration(predictions: np.ndarray, correct: np.ndarray, confidences: np.ndarray) -> dict[str, float]:
    """Refusal rate, and over the answers: expected calibration error and confident wrong share."""
    answered = predictions >= 0
    return {
        "refusal_rate": round(float((~answered).mean()), 4) if len(predictions) else 0.0,
        "ece": round(expected_calibration_error(confidences[answered], correct[answered]), 4),
        "confident_wrong": round(confident_wrong_share(confidences[answered], correct[answered]), 4),
    }


def _turned_away(predictions: np.ndarray, best: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Digits the refusal turned away (not those preprocessing failed on), as shares of all: those
    the best digit would have read right (a loss), and those it would have read wrong (none)."""
    n = max(len(labels), 1)
    refused = (predictions < 0) & (best >= 0)
    return {
        "refused_right": round(float((refused & (best == labels)).sum() / n), 4),
        "refused_wrong": round(float((refused & (best != labels)).sum() / n), 4),
    }


def _refusal(predictions: np.ndarray, confidences: np.ndarray) -> dict[str, float]:
    """For images with no digit: the share refused, and the share answered above CONFIDENT."""
    n = len(predictions)
    return {
        "n": n,
        "refusal_rate": round(float((predictions < 0).mean()), 4) if n else 0.0,
        "answered_confident": round(float(((predictions >= 0) & (confidences > CONFIDENT)).mean()), 4) if n else 0.0,
    }


@torch.inference_mode()
def probabilities(model: LoadedModel, images: np.ndarray | torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    """(N, 10) probabilities, with the checkpoint's temperature as the service states them, for
    (N, 28, 28) images in [0, 1]."""
    images = torch.as_tensor(images, dtype=torch.float32)
    parts = [torch.softmax(model.net(to_tensor(images[i : i + batch_size])) / model.temperature, dim=1)
             for i in range(0, len(images), batch_size)]  # fmt: skip
    return torch.cat(parts).numpy() if parts else np.zeros((0, 10), dtype=np.float32)


def predict(model: LoadedModel, images: np.ndarray | torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    """Predicted digits for (N, 28, 28) images in [0, 1]."""
    predicted: np.ndarray = probabilities(model, images, batch_size).argmax(axis=1).astype(np.int64)
    return predicted


def answers(
    model: LoadedModel, images: np.ndarray, rate: float | None, lanes: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The service's answers: the digits (-1 where the checkpoint's refusal turns the image away, at
    operating point `rate`: None, each lane's default; 0, no refusal), their stated confidences, and
    the best digit of each, refused or not. `lanes`: each image's input lane (None: all "clean")."""
    probs = probabilities(model, images)
    best, confidence = probs.argmax(axis=1).astype(np.int64), probs.max(axis=1).astype(np.float64)
    digits = best.copy()
    if model.refusal is not None and rate != 0:
        lanes = ["clean"] * len(digits) if lanes is None else lanes
        limits = {lane: model.refusal.threshold(rate, lane) for lane in set(lanes)}
        below = np.array([limits[lane] for lane in lanes], dtype=np.float64)
        digits[refusal_scores(model, images, confidence) < below] = -1
    return digits, confidence, best


def evaluate_mnist(
    model: LoadedModel, data_dir: str | Path | None = None, limit: int | None = None, rate: float | None = None
) -> Evaluation:
    test = load_split("test", data_dir)
    images = test.images[:limit].float().numpy() / 255
    labels = test.labels[:limit].numpy()
    digits, confidence, best = answers(model, images, rate)
    return Evaluation(images, labels, digits, confidences=confidence, best=best)


def label_of(path: Path) -> tuple[int, str] | None:
    """A single digit's (or NOT_A_DIGIT's) label and kind; None for a number or an unlabelled file."""
    m = LABEL_PATTERN.match(path.name)
    if m is None or (len(m["label"]) > 1 and m["label"] != "x"):
        return None
    return (NOT_A_DIGIT if m["label"] == "x" else int(m["label"])), m["kind"] or ""


def number_of(path: Path) -> tuple[str, str] | None:
    """A number's digits (two or more) and kind, from a file named like `2026_printed_0001.png`."""
    m = LABEL_PATTERN.match(path.name)
    return (m["label"], m["kind"] or "") if m and len(m["label"]) > 1 and m["label"] != "x" else None


def evaluate_images(model: LoadedModel, folder: Path, rate: float | None = None) -> Evaluation:
    """Every labelled image file in `folder`, through the service's preprocessing; numbers through
    `/predict/number`'s (`model.evaluate.numbers`)."""
    images_in = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    files = [p for p in images_in if label_of(p)]
    numbers = [(p, *n) for p in images_in if (n := number_of(p))]
    if not files and not numbers:
        raise FileNotFoundError(
            f"{folder}: no image files named like 7_kind_001.png, 42_kind_001.png or x_kind_001.png"
        )
    images = np.zeros((len(files), 28, 28), dtype=np.float32)
    ok = np.zeros(len(files), dtype=bool)
    labels, kinds, lanes = [], [], []
    for i, path in enumerate(files):
        label, kind = label_of(path) or (0, "")
        labels.append(label)
        kinds.append(kind)
        try:
            pre = one_digit(model, path.read_bytes(), probabilities)
            images[i], ok[i] = pre.image, True
            lanes.append(pre.lane)
        except PreprocessError:
            pass
    predictions = np.full(len(files), -1, dtype=np.int64)
    best = np.full(len(files), -1, dtype=np.int64)
    confidences = np.zeros(len(files), dtype=np.float64)
    if ok.any():
        predictions[ok], confidences[ok], best[ok] = answers(model, images[ok], rate, lanes)
    names = [p.name for p in files]
    read = evaluate_numbers(model, numbers, probabilities) if numbers else None
    return Evaluation(images, np.array(labels, dtype=np.int64), predictions, kinds, names, confidences, read, best)


def format_report(summary: dict[str, Any], source: str, model: LoadedModel) -> str:
    lines = [
        f"checkpoint {model.path} (sha256 {model.version})",
        f"{source}: accuracy {summary['accuracy']:.4f} on {summary['n']} digit images "
        f"({summary['errors']} wrong, {summary['refused']} refused); calibration error (ECE, 15 bins) "
        f"{summary['ece']:.4f}, wrong above {CONFIDENT} {summary['confident_wrong']:.4f} of answers",
        "",
        "digit  precision  recall  support",
    ]
    for d, row in summary["per_class"].items():
        lines.append(f"{d:>5}  {row['precision']:>9.4f}  {row['recall']:>6.4f}  {row['support']:>7}")
    lines += ["", "confusion matrix (rows true, columns predicted):"]
    lines += ["  " + " ".join(f"{v:>5}" for v in row) for row in summary["confusion_matrix"]]
    for kind, row in summary.get("by_kind", {}).items():
        lines.append(f"kind {kind:<10} accuracy {row['accuracy']:.4f}  n={row['n']:<5} refused "
                     f"{row['refusal_rate']:.4f} (read right {row['refused_right']:.4f}, wrong "
                     f"{row['refused_wrong']:.4f})  ECE {row['ece']:.4f}  wrong above {CONFIDENT} "
                     f"{row['confident_wrong']:.4f}")  # fmt: skip
    lines += report_lines(summary["numbers"]) if "numbers" in summary else []
    negatives = summary.get("not_a_digit")
    if negatives:
        lines.append("")
        for kind, row in {**negatives["by_kind"], "(all)": negatives["all"]}.items():
            lines.append(f"no digit {kind:<10} n={row['n']:<5} refused {row['refusal_rate']:.4f}  answered above "
                         f"{CONFIDENT} {row['answered_confident']:.4f}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m model.evaluate", description="Accuracy, per-class precision/recall and the confusion matrix."
    )
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--data-dir", default=None, help="MNIST folder (default $MNIST_DATA_DIR or data/mnist)")
    p.add_argument("--images", type=Path, default=None, help="folder of labelled image files instead of MNIST")
    p.add_argument("--limit", type=int, default=None, help="first N MNIST test images only")
    p.add_argument("--refusal-rate", type=float, default=None,
                   help="operating point of the checkpoint's refusal, as DIGITS_REFUSAL_RATE "
                        "(default: each input lane's, as the service; 0: none)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plots", type=Path, default=None, help="write the PNG pictures into this folder")
    args = p.parse_args(argv)
    try:
        model = load_checkpoint(args.checkpoint)
        if args.images:
            ev, source = evaluate_images(model, args.images, args.refusal_rate), str(args.images)
        else:
            ev, source = evaluate_mnist(model, args.data_dir, args.limit, args.refusal_rate), "MNIST test set"
    except (CheckpointError, DataError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    summary = ev.summary()
    if args.plots:
        summary["plots"] = [str(p) for p in draw_plots(model, ev, args.plots)]
    if args.json:
        print(json.dumps({"checkpoint": model.sha256, "source": source, **summary}))
    else:
        print(format_report(summary, source, model))
    return 0
