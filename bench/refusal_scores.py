"""How well refusal scores part digits from non-digits, for a checkpoint:
`python bench/refusal_scores.py CHECKPOINT NEGATIVES_DIR DIGITS_DIR`.

For each score (the temperature-scaled maximum probability the service uses, the maximum logit,
the energy = logsumexp of the logits) and each share of real digits turned away (MNIST's test set
and DIGITS_DIR's labelled uploads together), the share of NEGATIVES_DIR's images that reach the
network (not already refused by preprocessing) which would be refused, MNIST's own share, and the
worst kind's. For exploring; the service's thresholds are fitted at training time (model.refusal).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from refusal_probe import folder

from model.checkpoint import load_checkpoint
from model.contract import to_tensor
from model.data import load_split


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("negatives", type=Path)
    p.add_argument("digits", type=Path)
    p.add_argument("--shares", type=float, nargs="+", default=[0.002, 0.005, 0.01])
    args = p.parse_args()
    model = load_checkpoint(args.checkpoint)

    def logits(images: list[np.ndarray]) -> torch.Tensor:
        with torch.inference_mode():
            return torch.cat([model.net(to_tensor(torch.as_tensor(np.stack(images[i : i + 1000]))))
                              for i in range(0, len(images), 1000)])  # fmt: skip

    def read(path: Path) -> tuple[torch.Tensor, np.ndarray]:
        images, _, kinds = folder(path)
        return logits(list(images.numpy())), kinds

    negatives, _ = read(args.negatives)
    digits, kinds = read(args.digits)
    mnist = logits(list(load_split("test").images.numpy().astype(np.float32) / 255))

    def scores(z: torch.Tensor) -> dict[str, np.ndarray]:
        return {
            "max_softmax": torch.softmax(z / model.temperature, dim=1).amax(dim=1).numpy(),
            "max_logit": z.amax(dim=1).numpy(),
            "energy": torch.logsumexp(z, dim=1).numpy(),
        }

    neg, dig, mn = scores(negatives), scores(digits), scores(mnist)
    for name in neg:
        for share in args.shares:
            threshold = np.quantile(np.concatenate([dig[name], mn[name]]), share)
            worst = max(((dig[name][kinds == k] < threshold).mean(), k) for k in set(kinds.tolist()))
            print(f"{name:<12} {share:.3f} of digits: negatives refused {(neg[name] < threshold).mean():.3f}, "
                  f"MNIST {(mn[name] < threshold).mean():.4f}, worst kind {worst[1]} {worst[0]:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
