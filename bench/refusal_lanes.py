"""Could refusal thresholds set apart for clean backgrounds and for photos meet issue 17's targets?
`python bench/refusal_lanes.py CHECKPOINT DIGITS_DIR NEGATIVES_DIR [--data-dir D]`.

Each upload's score is the checkpoint's stated confidence (temperature-scaled maximum probability,
the service's refusal score); its lane is the preprocessing's: clean when its border is one even
level at 128 px and no sheet on a table shows (`model.ink.border_level`, `on_table`), else photo;
an upload the preprocessing refuses is refused in either. For each share of non-digits to refuse
(--negatives), the pair of thresholds (clean, photo) that turns away the fewest digits of the worst
kind while refusing at most 0.3% of MNIST's test digits (all clean): what each kind of digits and
of non-digits would see. Then, for the record, each kind's calibration (ECE, wrong above 0.9) at
other temperatures (--temperatures).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from model.calibration import confident_wrong_share, expected_calibration_error
from model.checkpoint import load_checkpoint
from model.contract import to_tensor
from model.data import load_split
from model.errors import PreprocessError
from model.gray import to_gray
from model.ink import border_level, on_table
from model.preprocess import preprocess

#: (kind, lane, label, logits or None where the preprocessing refused)
Row = tuple[str, str, int, np.ndarray | None]


def lane(data: Path) -> str:
    img = Image.open(data)
    img.load()
    if max(img.size) <= 28:
        return "clean"
    coarse = to_gray(img, 128, blocks=True)
    paper = border_level(coarse)
    return "clean" if paper is not None and not on_table(coarse, paper) else "photo"


def folder(model: torch.nn.Module, path: Path) -> list[Row]:
    rows: list[Row] = []
    for p in sorted(path.iterdir()):
        kind, label = p.name.split("_")[1], int(p.name.split("_")[0]) if p.name[0].isdigit() else -1
        try:
            image = preprocess(p.read_bytes()).image
        except PreprocessError:
            rows.append((kind, lane(p), label, None))
            continue
        with torch.inference_mode():
            rows.append((kind, lane(p), label, model(to_tensor(torch.as_tensor(image[None])))[0].numpy()))
    return rows


def scores(rows: list[Row], temperature: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's score (-1 where refused by the preprocessing), whether it is a photo, its answer."""
    s, photo, answer = np.full(len(rows), -1.0), np.zeros(len(rows), dtype=bool), np.full(len(rows), -1)
    for i, (_, ln, _, logits) in enumerate(rows):
        photo[i] = ln == "photo"
        if logits is not None:
            p = torch.softmax(torch.as_tensor(logits) / temperature, 0)
            s[i], answer[i] = float(p.max()), int(p.argmax())
    return s, photo, answer


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("digits", type=Path)
    p.add_argument("negatives", type=Path)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--negatives-refused", type=float, nargs="+", default=[0.97, 0.95])
    p.add_argument("--temperatures", type=float, nargs="+", default=[0.7, 0.8, 0.9, 1.0, 1.2])
    args = p.parse_args()
    torch.set_num_threads(2)
    model = load_checkpoint(args.checkpoint)
    net, t = model.net.eval(), model.temperature
    test = load_split("test", args.data_dir)
    with torch.inference_mode():
        mnist_logits = net(to_tensor(test.images.float() / 255)).double()
    mnist = torch.softmax(mnist_logits / t, 1).amax(1).numpy()
    digits, negatives = folder(net, args.digits), folder(net, args.negatives)
    ds, dphoto, _ = scores(digits, t)
    ns, nphoto, _ = scores(negatives, t)
    dkinds, nkinds = [r[0] for r in digits], [r[0] for r in negatives]
    grid = np.unique(np.concatenate([np.quantile(mnist, np.linspace(0, 0.003, 31)), np.linspace(0.1, 1.0, 181)]))
    print(f"checkpoint {args.checkpoint}, temperature {t:.3f}; photo lane: {dphoto.mean():.1%} of digits, "
          f"{nphoto.mean():.1%} of non-digits")  # fmt: skip
    for need in args.negatives_refused:
        best = None
        for clean in grid[np.array([(mnist < g).mean() <= 0.003 for g in grid])]:
            for photo in grid:
                refused_d = ds < np.where(dphoto, photo, clean)
                if (ns < np.where(nphoto, photo, clean)).mean() < need:
                    continue
                worst = max(refused_d[np.array(dkinds) == k].mean() for k in set(dkinds))
                if best is None or worst < best[0]:
                    best = (worst, clean, photo)
        if best is None:
            print(f"\nnon-digits refused >= {need:.0%}: no pair of thresholds")
            continue
        _, clean, photo = best
        refused_d, refused_n = ds < np.where(dphoto, photo, clean), ns < np.where(nphoto, photo, clean)
        print(f"\nnon-digits refused >= {need:.0%}: thresholds clean {clean:.4f}, photo {photo:.4f}; MNIST "
              f"test refused {(mnist < clean).mean():.2%}; non-digits refused {refused_n.mean():.1%}")  # fmt: skip
        for name, kinds, refused in (
            ("digits turned away", dkinds, refused_d),
            ("non-digits refused", nkinds, refused_n),
        ):
            k = np.array(kinds)
            print(f"  {name}: " + ", ".join(f"{x} {refused[k == x].mean():.1%}" for x in sorted(set(kinds))))
    print("\ncalibration (ECE / wrong above 0.9) at other temperatures, answered uploads only:")
    labels = np.array([r[2] for r in digits])
    for temperature in args.temperatures:
        s, _, answer = scores(digits, temperature)
        mp = torch.softmax(mnist_logits / temperature, 1)
        right = (mp.argmax(1) == test.labels).numpy()
        row = [f"MNIST {expected_calibration_error(mp.amax(1).numpy(), right):.2%} / "
               f"{confident_wrong_share(mp.amax(1).numpy(), right):.2%}"]  # fmt: skip
        for kind in sorted(set(dkinds)):
            at = (np.array(dkinds) == kind) & (s >= 0)
            ok = answer[at] == labels[at]
            row.append(f"{kind} {expected_calibration_error(s[at], ok):.2%} / {confident_wrong_share(s[at], ok):.2%}")
        print(f"  T {temperature:.3f}: " + ", ".join(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
