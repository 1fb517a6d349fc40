"""Do two trees give the same answers, bit for bit? `python bench/same_answers.py OLD_TREE DIR [DIR ...]`

For every image in the DIRs (`python -m model.synth.realworld DIR` writes labelled ones; `examples/` is
added), each tree, run in its own process from its own folder, preprocesses the bytes and runs the
shipped checkpoint's forward pass one image at a time and in batches of 32. The 28x28 inputs, the
probabilities (as float32 bytes) and the error codes and messages are compared. OLD_TREE is a
checkout of the other commit (`git worktree add /tmp/old main`); the new tree is this one.
Prints one line a difference and a total; exits 1 when anything differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, in_tree

#: Run inside each tree: only names both the old and the new layout have (model/ flat or in packages).
DUMP = r"""
import hashlib, json, sys
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(1)
from app.predictor import Predictor
from model.checkpoint import DEFAULT_CHECKPOINT
if Path("model/imaging").is_dir():
    from model.imaging.preprocess import preprocess
else:  # model/ before its packages
    from model.preprocess import preprocess
predictor = Predictor.load(DEFAULT_CHECKPOINT, 25_000_000)
paths = json.loads(sys.stdin.read())
out, images, slots = {}, [], []
for path in paths:
    try:
        image = preprocess(Path(path).read_bytes()).image
    except Exception as e:  # the preprocessing errors, wherever a tree defines them, have a code
        if not hasattr(e, "code"):
            raise
        out[path] = {"error": [type(e).__name__, e.code, str(e)]}
        continue
    probs = np.asarray(predictor.predict_images([image])[0].probabilities, dtype=np.float32)
    out[path] = {"input": hashlib.sha256(image.astype(np.float32).tobytes()).hexdigest(),
                 "single": hashlib.sha256(probs.tobytes()).hexdigest(),
                 "digit": int(probs.argmax()), "confidence": float(probs.max())}
    images.append(image); slots.append(path)
for start in range(0, len(images), 32):
    for path, answer in zip(slots[start:start + 32], predictor.predict_images(images[start:start + 32])):
        probs = np.asarray(answer.probabilities, dtype=np.float32)
        out[path]["batched"] = hashlib.sha256(probs.tobytes()).hexdigest()
elsewhere = [m.__file__ for n, m in list(sys.modules.items())
             if n.split(".")[0] in ("app", "model") and getattr(m, "__file__", None)
             and not Path(m.__file__).resolve().is_relative_to(Path.cwd().resolve())]
assert not elsewhere, f"modules from another tree: {elsewhere}"
print(json.dumps(out))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("old", type=Path)
    p.add_argument("dirs", type=Path, nargs="+")
    args = p.parse_args()
    paths = sorted(str(f.resolve()) for d in [*args.dirs, ROOT / "examples"] for f in d.iterdir() if f.is_file())
    paths = [f for f in paths if not f.endswith(".py")]
    old, new = in_tree(args.old.resolve(), DUMP, paths), in_tree(ROOT, DUMP, paths)
    differ = 0
    for path in paths:
        if old[path] != new[path]:
            differ += 1
            print(f"{path}: old {old[path]} new {new[path]}")
    digest = hashlib.sha256(json.dumps(new, sort_keys=True).encode()).hexdigest()[:12]
    errors = sum("error" in v for v in new.values())
    print(f"{len(paths)} images ({errors} refused with an error): {differ} differ; new tree's digest {digest}")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
