"""Evaluate a checkpoint on MNIST or on a folder of labelled images: `python -m model.evaluate --help`.

Image folders are read through `model.preprocess`, exactly as the service reads uploads. A file's
label is the digit its name starts with, followed by `_` or `-`, and the next name field, if any,
is its kind: `7_photo_0012.jpg` is a 7 of kind `photo`. Accuracy is reported per kind too.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from model.checkpoint import DEFAULT_CHECKPOINT, CheckpointError, LoadedModel, load_checkpoint
from model.contract import to_tensor
from model.data import DataError, load_split
from model.errors import PreprocessError
from model.preprocess import preprocess

LABEL_PATTERN = re.compile(r"^(?P<label>\d)[_-](?:(?P<kind>[A-Za-z0-9]+(?:-[A-Za-z]+)*)[-_.])?")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass
class Evaluation:
    images: np.ndarray  # (N, 28, 28) in [0, 1]: what the model saw (zeros where preprocessing failed)
    labels: np.ndarray  # (N,)
    predictions: np.ndarray  # (N,); -1 where preprocessing refused the file
    kinds: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        n = len(self.labels)
        correct = self.predictions == self.labels
        digits = list(range(10))
        precision, recall, _, support = precision_recall_fscore_support(
            self.labels, self.predictions, labels=digits, zero_division=0
        )
        out: dict[str, Any] = {
            "accuracy": float(correct.mean()) if n else 0.0,
            "n": n,
            "errors": int((~correct).sum()),
            "refused": int((self.predictions < 0).sum()),
            "per_class": {
                str(d): {
                    "precision": round(float(precision[d]), 4),
                    "recall": round(float(recall[d]), 4),
                    "support": int(support[d]),
                }
                for d in digits
            },
            "confusion_matrix": confusion_matrix(self.labels, self.predictions, labels=digits).tolist(),
        }
        if self.kinds:
            by_kind: dict[str, list[bool]] = defaultdict(list)
            for kind, ok in zip(self.kinds, correct, strict=True):
                by_kind[kind].append(bool(ok))
            out["by_kind"] = {
                k: {"accuracy": round(sum(v) / len(v), 4), "n": len(v)} for k, v in sorted(by_kind.items())
            }
        return out


@torch.inference_mode()
def predict(model: LoadedModel, images: np.ndarray | torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    """Predicted digits for (N, 28, 28) images in [0, 1]."""
    images = torch.as_tensor(images, dtype=torch.float32)
    preds = [model.net(to_tensor(images[i : i + batch_size])).argmax(1) for i in range(0, len(images), batch_size)]
    return torch.cat(preds).numpy() if preds else np.zeros(0, dtype=np.int64)


def evaluate_mnist(model: LoadedModel, data_dir: str | Path | None = None, limit: int | None = None) -> Evaluation:
    test = load_split("test", data_dir)
    images = test.images[:limit].float().numpy() / 255
    labels = test.labels[:limit].numpy()
    return Evaluation(images=images, labels=labels, predictions=predict(model, images))


def label_of(path: Path) -> tuple[int, str] | None:
    m = LABEL_PATTERN.match(path.name)
    if m is None:
        return None
    return int(m["label"]), m["kind"] or ""


def evaluate_images(model: LoadedModel, folder: Path) -> Evaluation:
    """Every labelled image file in `folder`, through the service's preprocessing."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and label_of(p))
    if not files:
        raise FileNotFoundError(f"{folder}: no image files named like 7_kind_001.png")
    images = np.zeros((len(files), 28, 28), dtype=np.float32)
    ok = np.zeros(len(files), dtype=bool)
    labels, kinds = [], []
    for i, path in enumerate(files):
        label, kind = label_of(path) or (0, "")
        labels.append(label)
        kinds.append(kind)
        try:
            images[i] = preprocess(path.read_bytes()).image
            ok[i] = True
        except PreprocessError:
            pass
    predictions = np.full(len(files), -1, dtype=np.int64)
    if ok.any():
        predictions[ok] = predict(model, images[ok])
    return Evaluation(images, np.array(labels), predictions, kinds=kinds, names=[p.name for p in files])


def draw_plots(model: LoadedModel, ev: Evaluation, out: Path) -> list[Path]:
    """The tutorial's pictures: confusion matrix, misclassified examples, conv1 filters, conv outputs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []

    cm = np.array(ev.summary()["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(6, 5.5))
    shown = ax.imshow(np.log1p(cm), cmap="Blues")
    for (r, c), v in np.ndenumerate(cm):
        ax.text(c, r, str(v), ha="center", va="center", fontsize=7, color="white" if r == c else "black")
    ax.set(
        xticks=range(10),
        yticks=range(10),
        xlabel="predicted",
        ylabel="true",
        title=f"Confusion matrix (n={len(ev.labels)}, accuracy {ev.summary()['accuracy']:.4f})",
    )
    fig.colorbar(shown, ax=ax, label="log(1 + count)")
    written.append(_save(fig, out / "confusion_matrix.png"))

    wrong = np.flatnonzero(ev.predictions != ev.labels)[:30]
    fig, axes = plt.subplots(3, 10, figsize=(12, 4.2))
    for ax, i in zip(axes.flat, list(wrong) + [None] * (30 - len(wrong)), strict=True):
        ax.axis("off")
        if i is not None:
            ax.imshow(ev.images[i], cmap="gray", vmin=0, vmax=1)
            pred = "refused" if ev.predictions[i] < 0 else str(ev.predictions[i])
            ax.set_title(f"true {ev.labels[i]}, pred {pred}", fontsize=8)
    fig.suptitle(f"Misclassified examples ({len(np.flatnonzero(ev.predictions != ev.labels))} in all)")
    written.append(_save(fig, out / "misclassified.png"))

    weights = model.net.conv1.weight.detach()[:, 0].numpy()  # (16, 5, 5)
    fig, axes = plt.subplots(2, 8, figsize=(8, 2.4))
    lim = float(np.abs(weights).max())
    for ax, w in zip(axes.flat, weights, strict=True):
        ax.imshow(w, cmap="seismic", vmin=-lim, vmax=lim)
        ax.axis("off")
    fig.suptitle("First conv layer: 16 filters, 5x5 (red positive, blue negative)")
    written.append(_save(fig, out / "conv1_filters.png"))

    with torch.inference_mode():
        x1, x2 = model.net.features(to_tensor(torch.as_tensor(ev.images[:1])))  # (1, 16, 14, 14), (1, 36, 7, 7)
    for name, maps, cols in (("conv1_output.png", x1[0], 8), ("conv2_output.png", x2[0], 9)):
        rows = len(maps) // cols
        fig, axes = plt.subplots(rows + 1, cols, figsize=(cols * 1.1, (rows + 1) * 1.15))
        for ax in axes.flat:
            ax.axis("off")
        axes[0, 0].imshow(ev.images[0], cmap="gray")
        axes[0, 0].set_title("input", fontsize=8)
        for ax, m in zip(axes[1:].flat, maps.numpy(), strict=True):
            ax.imshow(m, cmap="viridis")
        fig.suptitle(f"{name.split('_')[0]} output after pool + ReLU: {len(maps)} maps {tuple(maps.shape[1:])}")
        written.append(_save(fig, out / name))
    return written


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def format_report(summary: dict[str, Any], source: str, model: LoadedModel) -> str:
    lines = [
        f"checkpoint {model.path} (sha256 {model.version})",
        f"{source}: accuracy {summary['accuracy']:.4f} on {summary['n']} images "
        f"({summary['errors']} wrong, {summary['refused']} refused by preprocessing)",
        "",
        "digit  precision  recall  support",
    ]
    for d, row in summary["per_class"].items():
        lines.append(f"{d:>5}  {row['precision']:>9.4f}  {row['recall']:>6.4f}  {row['support']:>7}")
    lines += ["", "confusion matrix (rows true, columns predicted):"]
    lines += ["  " + " ".join(f"{v:>5}" for v in row) for row in summary["confusion_matrix"]]
    for kind, row in summary.get("by_kind", {}).items():
        lines.append(f"kind {kind:<10} accuracy {row['accuracy']:.4f}  n={row['n']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Accuracy, per-class precision/recall and the confusion matrix.")
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--data-dir", default=None, help="MNIST folder (default $MNIST_DATA_DIR or data/mnist)")
    p.add_argument("--images", type=Path, default=None, help="folder of labelled image files instead of MNIST")
    p.add_argument("--limit", type=int, default=None, help="first N MNIST test images only")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plots", type=Path, default=None, help="write the PNG pictures into this folder")
    args = p.parse_args(argv)
    try:
        model = load_checkpoint(args.checkpoint)
        if args.images:
            ev, source = evaluate_images(model, args.images), str(args.images)
        else:
            ev, source = evaluate_mnist(model, args.data_dir, args.limit), "MNIST test set"
    except (CheckpointError, DataError, FileNotFoundError) as e:
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


if __name__ == "__main__":
    raise SystemExit(main())
