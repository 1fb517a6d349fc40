"""How often a number of MNIST test digits could be read exactly if drawing and segmenting cost
nothing: `python bench/number_ceiling.py [CHECKPOINT] [--data-dir D]`.

Each digit is taken as read right when the checkpoint reads the MNIST test image itself right; a
number (2-6 digits, as `model.synth.realnumbers` draws its handwritten kind) is exact when all its digits
are. 200,000 numbers, seeded: the ceiling on the handwritten kind's exact share.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from model.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from model.data import load_split
from model.evaluate.digits import predict
from model.synth.realnumbers import LENGTHS


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", type=Path, nargs="?", default=DEFAULT_CHECKPOINT)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--numbers", type=int, default=200_000)
    args = p.parse_args()
    test = load_split("test", args.data_dir)
    right = predict(load_checkpoint(args.checkpoint), test.images.float().numpy() / 255) == test.labels.numpy()
    rng = np.random.default_rng(0)
    lengths = rng.integers(LENGTHS[0], LENGTHS[1] + 1, size=args.numbers)
    exact = np.mean([right[rng.integers(len(right), size=n)].all() for n in lengths])
    print(
        f"digits read right {right.mean():.4f}; numbers of {LENGTHS[0]}-{LENGTHS[1]} digits exact at most {exact:.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
