"""Accuracy and preprocessing time per kind of upload: `python bench/kinds.py DIR [--set NAME=VALUE ...]`.

DIR holds labelled images as `python -m model.synth.realworld DIR` writes them (`<label>_<kind>_<n>.<ext>`).
For each kind (ink, canvas, photo, printed, framed) it prints the accuracy of the shipped checkpoint
and the mean time of `model.imaging.preprocess.preprocess` (one thread, this process). `--set` overrides an
integer constant of `model.imaging.preprocess` first (e.g. `--set ANALYSIS_SIDE=64 --set REFINE_BELOW=32`),
to price a change of the preprocessing against what it does to the answers before making it.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("images", type=Path)
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = p.parse_args()

    import torch

    from app.predictor import Predictor
    from model.checkpoint import DEFAULT_CHECKPOINT
    from model.imaging import preprocess as pre
    from model.imaging.decode import DEFAULT_MAX_PIXELS
    from model.imaging.errors import PreprocessError

    torch.set_num_threads(1)
    for item in args.set:
        name, value = item.split("=", 1)
        if not isinstance(getattr(pre, name, None), int):
            p.error(f"{name} is not an integer constant of model.imaging.preprocess")
        setattr(pre, name, int(value))
    predictor = Predictor.load(DEFAULT_CHECKPOINT, DEFAULT_MAX_PIXELS)
    right: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    seconds: collections.defaultdict[str, float] = collections.defaultdict(float)
    for path in sorted(args.images.iterdir()):
        label, kind = int(path.name.split("_")[0]), path.name.split("_")[1]
        data = path.read_bytes()
        total[kind] += 1
        t0 = time.perf_counter()
        try:
            image = pre.preprocess(data).image
        except PreprocessError:
            continue  # counted as wrong
        seconds[kind] += time.perf_counter() - t0
        right[kind] += predictor.predict_images([image])[0].digit == label
    settings = " ".join(args.set) or "as shipped"
    print(f"{settings}: " + ", ".join(
        f"{k} {right[k] / total[k]:.1%} {seconds[k] / total[k] * 1e3:.2f} ms" for k in sorted(total)
    ))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
