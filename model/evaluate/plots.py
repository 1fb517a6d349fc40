"""The tutorial's pictures of an evaluation (`model.evaluate --plots DIR`): the confusion matrix,
misclassified examples, both conv layers' filters (the second's for its first two input channels,
as the tutorial plots them) and both conv layers' outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from model.checkpoint import LoadedModel
from model.contract import to_tensor


class Scored(Protocol):
    """What the pictures need of an evaluation (`model.evaluate.digits.Evaluation` is one)."""

    images: np.ndarray  # (N, 28, 28) in [0, 1]
    labels: np.ndarray  # (N,)
    predictions: np.ndarray  # (N,); -1 where refused

    def summary(self) -> dict[str, Any]: ...


def draw_plots(model: LoadedModel, ev: Scored, out: Path) -> list[Path]:
    """The tutorial's pictures: confusion matrix, misclassified examples, conv filters, conv outputs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []

    cm = np.array(ev.summary()["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(6, 5.5))
    shown = ax.imshow(np.log1p(cm), cmap="Blues")
    for (r, c), v in np.ndenumerate(cm):
        ax.text(c, r, str(v), ha="center", va="center", fontsize=9, color="white" if r == c else "black")
    ax.set(
        xticks=range(10),
        yticks=range(10),
        xlabel="predicted",
        ylabel="true",
        title=f"Confusion matrix (n={len(ev.labels)}, accuracy {ev.summary()['accuracy']:.4f})",
    )
    fig.colorbar(shown, ax=ax, label="log(1 + count)")
    written.append(_save(fig, out / "confusion_matrix.png"))

    # 24 of them, 4 x 6, titled large: the figure is shown as narrow as a phone (app/static/index.html)
    wrong_all = np.flatnonzero(ev.predictions != ev.labels)
    wrong = wrong_all[:24]
    fig, axes = plt.subplots(4, 6, figsize=(6, 5.2))
    for ax, i in zip(axes.flat, list(wrong) + [None] * (24 - len(wrong)), strict=True):
        ax.axis("off")
        if i is not None:
            ax.imshow(ev.images[i], cmap="gray", vmin=0, vmax=1)
            read = "refused" if ev.predictions[i] < 0 else str(ev.predictions[i])
            ax.set_title(f"{ev.labels[i]} \u2192 {read}", fontsize=16, pad=3)
    fig.suptitle(f"Read wrong: {len(wrong)} of {len(wrong_all)}, true \u2192 read", fontsize=13)
    written.append(_save(fig, out / "misclassified.png"))

    weights = model.net.conv1.weight.detach()[:, 0].numpy()  # (16, 5, 5)
    fig, axes = plt.subplots(2, 8, figsize=(8, 2.4))
    lim = float(np.abs(weights).max())
    for ax, w in zip(axes.flat, weights, strict=True):
        ax.imshow(w, cmap="seismic", vmin=-lim, vmax=lim)
        ax.axis("off")
    fig.suptitle("First conv layer: 16 filters, 5x5 (red positive, blue negative)")
    written.append(_save(fig, out / "conv1_filters.png"))

    weights = model.net.conv2.weight.detach().numpy()  # (36, 16, 5, 5)
    fig, axes = plt.subplots(6, 13, figsize=(10.4, 5.2))
    lim = float(np.abs(weights[:, :2]).max())
    for ax in axes.flat:
        ax.axis("off")
    for channel, left in ((0, 0), (1, 7)):
        axes[0, left].set_title(f"input channel {channel}", fontsize=8, loc="left")
        for f, w in enumerate(weights[:, channel]):
            axes[f // 6, left + f % 6].imshow(w, cmap="seismic", vmin=-lim, vmax=lim)
    fig.suptitle("Second conv layer: 36 filters, 5x5, for input channels 0 and 1 (red positive, blue negative)")
    written.append(_save(fig, out / "conv2_filters.png"))

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
