"""Would a separate "digit or not" output refuse better than the stated confidence? A linear probe on
a checkpoint's 128 hidden features: `python bench/refusal_probe.py CHECKPOINT NEGATIVES_DIR DIGITS_DIR`.

A logistic regression (scikit-learn) is fitted, features frozen, on 20,000 MNIST training digits,
upload-like renderings of training digits (`model.renders`, 800 a kind, seed 300) and the images
of `model.negatives` at the training seed (1,000 a kind, seed 100), as the service's
preprocessing makes them. Its threshold for each share is the quantile of 10,000 held-out training
digits and their renderings (300 a kind, seed 301). Printed for each share: MNIST test digits
refused and the accuracy counting refusals as errors, NEGATIVES_DIR's images that reach the
network refused (each kind), and DIGITS_DIR's labelled digits refused (each kind). For exploring:
the digits' renderings take some minutes to make.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from model.checkpoint import load_checkpoint
from model.contract import to_tensor
from model.data import load_split
from model.errors import PreprocessError
from model.evaluate import label_of
from model.outliers import negative_images
from model.preprocess import preprocess
from model.renders import renders


def folder(path: Path) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """The labelled images of `path` that reach the network: (N, 28, 28), labels, kinds."""
    images, labels, kinds = [], [], []
    for file in sorted(path.iterdir()):
        found = label_of(file)
        if found is None:
            continue
        try:
            images.append(preprocess(file.read_bytes()).image)
        except PreprocessError:
            continue
        labels.append(found[0])
        kinds.append(found[1])
    return torch.from_numpy(np.stack(images)), np.array(labels), np.array(kinds)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("negatives", type=Path)
    p.add_argument("digits", type=Path)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--shares", type=float, nargs="+", default=[0.002, 0.005, 0.01])
    args = p.parse_args()
    net = load_checkpoint(args.checkpoint).net.eval()

    @torch.inference_mode()
    def features(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        hidden, logits = [], []
        for i in range(0, len(images), 2000):
            h = net.hidden(to_tensor(images[i : i + 2000].float()))
            hidden.append(h)
            logits.append(net.fc2(h))
        return torch.cat(hidden).numpy(), torch.cat(logits).numpy()

    train, test = load_split("train", args.data_dir), load_split("test", args.data_dir)
    order = torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(0))
    fit, held = order[:20000], order[50000:]
    digits = torch.cat([train.images[fit].float() / 255, renders(train.images[fit], train.labels[fit], 800, 300)[0]])
    negatives = negative_images(1000, 100)[0]
    x = np.concatenate([features(digits)[0], features(negatives)[0]])
    y = np.r_[np.ones(len(digits)), np.zeros(len(negatives))]
    scale = StandardScaler().fit(x)
    probe = LogisticRegression(max_iter=3000).fit(scale.transform(x), y)

    def score(images: torch.Tensor) -> np.ndarray:
        return np.asarray(probe.decision_function(scale.transform(features(images)[0])))

    held_out = np.r_[
        score(train.images[held].float() / 255), score(renders(train.images[held], train.labels[held], 300, 301)[0])
    ]
    mnist_scores, mnist_logits = score(test.images.float() / 255), features(test.images.float() / 255)[1]
    right = mnist_logits.argmax(1) == test.labels.numpy()
    neg_images, _, neg_kinds = folder(args.negatives)
    dig_images, _, dig_kinds = folder(args.digits)
    neg_scores, dig_scores = score(neg_images), score(dig_images)
    for share in args.shares:
        t = float(np.quantile(held_out, share))
        refused = mnist_scores < t
        kept = (right & ~refused).mean()
        print(
            f"share {share}: MNIST refused {refused.mean():.4f}, "
            f"accuracy counting refusals {kept:.4f} (raw {right.mean():.4f})"
        )
        print(
            f"  negatives refused {(neg_scores < t).mean():.4f}: "
            + ", ".join(f"{k} {(neg_scores[neg_kinds == k] < t).mean():.3f}" for k in sorted(set(neg_kinds)))
        )
        print(
            "  digits refused: "
            + ", ".join(f"{k} {(dig_scores[dig_kinds == k] < t).mean():.3f}" for k in sorted(set(dig_kinds)))
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
