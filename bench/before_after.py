"""Two trees' image paths side by side: `python bench/before_after.py OLD_TREE DIR [--data-dir D]`.

For each tree (OLD_TREE, a checkout of the other commit, and this one), in its own process from
its own folder, one torch thread, the shipped checkpoint:
- accuracy per kind over DIR's labelled images (`python -m model.synth.realworld DIR` writes them), a
  file refused with an error counted wrong;
- MNIST test through the whole path: each of the 10,000 digits encoded as a 28x28 PNG and
  preprocessed as an upload is;
- the median time of `preprocess` for each `examples/` file, over --repeats calls; the trees take
  turns (old, new, old, new) and the lower median of each is kept, so that a noisy moment of the
  machine does not land on one tree only.
Prints one table (markdown) with both trees and the difference.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, in_tree

#: Run inside each tree: only names both the old and the new layout have (model/ flat or in packages).
MEASURE = r"""
import collections, io, json, statistics, sys, time
from pathlib import Path
import numpy as np, torch
from PIL import Image
torch.set_num_threads(1)
from app.predictor import Predictor
from model.checkpoint import DEFAULT_CHECKPOINT
from model.data import load_split
if Path("model/imaging").is_dir():
    from model.imaging.preprocess import preprocess
else:  # model/ before its packages
    from model.preprocess import preprocess
job = json.loads(sys.stdin.read())
predictor = Predictor.load(DEFAULT_CHECKPOINT, 25_000_000)
out = {"kinds": {}, "examples": {}}
def read(data):
    try:
        return preprocess(data).image
    except Exception as e:  # the preprocessing errors, wherever a tree defines them, have a code
        if not hasattr(e, "code"):
            raise
        return None
if job["accuracy"]:
    right, total = collections.Counter(), collections.Counter()
    for path in job["images"]:
        name = Path(path).name
        label, kind = int(name.split("_")[0]), name.split("_")[1]
        image = read(Path(path).read_bytes())
        total[kind] += 1
        right[kind] += image is not None and predictor.predict_images([image])[0].digit == label
    out["kinds"] = {k: [right[k], total[k]] for k in total}
    test = load_split("test", job["data_dir"])
    images = []
    for digit in test.images.numpy():
        buf = io.BytesIO()
        Image.fromarray(digit, "L").save(buf, "PNG")
        image = read(buf.getvalue())
        images.append(image if image is not None else np.zeros((28, 28), np.float32))
    answers = [a.digit for s in range(0, 10000, 500) for a in predictor.predict_images(images[s:s + 500])]
    out["mnist"] = [int((np.array(answers) == test.labels.numpy()).sum()), len(answers)]
for path in job["examples"]:
    data = Path(path).read_bytes()
    times = []
    for _ in range(job["repeats"]):
        t0 = time.perf_counter()
        read(data)
        times.append(time.perf_counter() - t0)
    out["examples"][Path(path).name] = statistics.median(times)
print(json.dumps(out))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("old", type=Path)
    p.add_argument("images", type=Path)
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: the shipped test set)")
    p.add_argument("--repeats", type=int, default=200)
    args = p.parse_args()
    images = sorted(str(f.resolve()) for f in args.images.iterdir() if f.is_file())
    examples = sorted(str(f) for f in (ROOT / "examples").iterdir() if f.suffix in (".png", ".jpg"))
    trees = {"before": args.old.resolve(), "after": ROOT}
    base = {"images": images, "examples": examples, "repeats": args.repeats, "data_dir": args.data_dir}
    results = {name: in_tree(tree, MEASURE, {**base, "accuracy": True}) for name, tree in trees.items()}
    for name, tree in trees.items():  # a second turn each for the timings
        again = in_tree(tree, MEASURE, {**base, "accuracy": False, "images": []})["examples"]
        results[name]["examples"] = {k: min(v, again[k]) for k, v in results[name]["examples"].items()}

    def pct(pair: list[int]) -> float:
        right, total = pair
        return 100 * right / total if total else 0.0

    before, after = results["before"], results["after"]
    print(f"before: {args.old}, after: {ROOT}; {len(images)} images in {args.images}\n")
    print("| | before | after | difference |\n|---|---|---|---|")
    for kind in sorted(after["kinds"]):
        b, a = pct(before["kinds"].get(kind, [0, 0])), pct(after["kinds"][kind])
        print(f"| {kind} (n={after['kinds'][kind][1]}) | {b:.2f}% | {a:.2f}% | {a - b:+.2f} pts |")
    b, a = pct(before["mnist"]), pct(after["mnist"])
    print(f"| MNIST test as 28x28 PNG uploads (n=10,000) | {b:.2f}% | {a:.2f}% | {a - b:+.2f} pts |")
    for name in after["examples"]:
        tb, ta = float(before["examples"][name]), float(after["examples"][name])
        print(f"| preprocess examples/{name}, median | {tb * 1e3:.3f} ms | {ta * 1e3:.3f} ms | {ta / tb:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
