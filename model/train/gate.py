"""Train the digit gate beside a checkpoint's CNN and ship it with refusal thresholds:
`python -m model.train.gate --data-dir ../shared/mnist`.

The checkpoint's CNN is left exactly as it is (its answers do not change); the gate (`model.gate`)
is trained on `model.train.gate_data`'s examples from MNIST's training set but a held-out split of
5,000 digits, whose renderings, with negatives of a seed of their own, fit the thresholds
(`model.refusal.fit_thresholds`: at each operating point, that share of the held-out digits falls
under it). The checkpoint is written again with the gate and the refusal data, and its sidecar.
`--carry OTHER` trains nothing: OTHER's gate and thresholds join this checkpoint's CNN (a CNN
trained again keeps a gate already measured; the gate never reads the CNN).
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from model.checkpoint import DEFAULT_CHECKPOINT, LoadedModel, load_checkpoint, save_checkpoint
from model.contract import to_tensor
from model.data import load_split
from model.gate import Gate, GateConfig, digit_probabilities
from model.imaging.preprocess import LANES
from model.refusal import GATE_SCORE, Refusal, fit_thresholds
from model.train.gate_data import MORE, Examples, examples

log = logging.getLogger("model.train.gate")
HELD_OUT = 5000


@dataclass(frozen=True)
class GateRecipe:
    epochs: int = 16
    batch_size: int = 256
    lr: float = 3e-3  # peak of the one-cycle schedule
    per_kind: int = 1000  # renderings of each kind per shard (model.train.gate_data.examples); half as many held out
    negatives: int = 1200  # negatives of each kind per shard (more of some: model.train.gate_data.MORE)
    seed: int = 0
    conv1_filters: int = GateConfig.conv1_filters  # the gate's size (model.gate.GateConfig)
    conv2_filters: int = GateConfig.conv2_filters
    fc_size: int = GateConfig.fc_size
    # the operating point served in each input lane (model.refusal.Refusal.default_rates): the share
    # of that lane's held-out digits refused
    canvas_rate: float = 0.004
    photo_rate: float = 0.005
    clean_rate: float = 0.003


def balanced_weights(ex: Examples) -> torch.Tensor:
    """Each kind weighs alike within its side (but MORE's, that many times more), and digits and
    negatives weigh half each; mean 1."""
    w = np.ones(len(ex), np.float64)
    for kind in np.unique(ex.kinds):
        w[ex.kinds == kind] = MORE.get(str(kind).removeprefix("x_"), 1.0) / (ex.kinds == kind).sum()
    for side in (ex.digit, ~ex.digit):
        w[side] *= 0.5 / w[side].sum()
    return torch.tensor(w * len(w), dtype=torch.float32)


def train_gate(train: Examples, cfg: GateRecipe, initial: Gate | None = None) -> Gate:
    """A gate trained by weighted binary cross-entropy (digits 1, negatives 0), each batch shifted
    by up to a pixel, with AdamW and a one-cycle schedule; from `initial`'s weights when given (a fine-tune)."""
    torch.manual_seed(cfg.seed)
    x = to_tensor(torch.from_numpy(train.images).float() / 255)
    target = torch.from_numpy(train.digit.astype(np.float32))
    weights = balanced_weights(train)
    config = GateConfig(cfg.conv1_filters, cfg.conv2_filters, cfg.fc_size)
    gate = copy.deepcopy(initial) if initial is not None else Gate(config)
    opt = torch.optim.AdamW(gate.parameters(), cfg.lr, weight_decay=1e-4)
    steps = cfg.epochs * -(-len(x) // cfg.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=steps)
    gate.train()
    for epoch in range(cfg.epochs):
        start, total = time.perf_counter(), 0.0
        for idx in torch.randperm(len(x)).split(cfg.batch_size):
            shift = tuple(int(v) for v in torch.randint(-1, 2, (2,)))
            logits = gate(torch.roll(x[idx], shift, (2, 3)))
            loss = (F.binary_cross_entropy_with_logits(logits, target[idx], reduction="none") * weights[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            total += loss.item() * len(idx)
        log.info("epoch %d: loss %.4f (%.0f s)", epoch + 1, total / len(x), time.perf_counter() - start)
    return gate.eval()


def report(scores: np.ndarray, held: Examples, refusal: Refusal) -> dict[str, float]:
    """The share of each held-out kind refused at each lane's default operating point: digits turned
    away, negatives refused."""
    limits = {lane: refusal.threshold(None, lane) for lane in LANES}
    refused = scores < np.array([limits[lane] for lane in held.lanes])
    return {str(k): round(float(refused[held.kinds == k].mean()), 4) for k in np.unique(held.kinds)}


def ship(model: LoadedModel, gate: Gate, held: Examples, out: Path, cfg: GateRecipe) -> str:
    """Fit the thresholds on the held-out digits, each lane's on its own, and write the checkpoint
    with the gate; its hash."""
    scores = digit_probabilities(gate, held.images.astype(np.float32) / 255)
    per_lane = {lane: (held.digit & (held.lanes == lane)).sum() for lane in LANES}
    # a lane with few held-out digits (a dry run) keeps the thresholds fitted on all of them
    lanes = {lane: fit_thresholds(scores[held.digit & (held.lanes == lane)]) for lane in LANES if per_lane[lane] >= 100}
    refusal = Refusal(
        fit_thresholds(scores[held.digit]),
        fitted_on=f"{int(held.digit.sum())} held-out digits ({HELD_OUT:,} MNIST training digits the gate never saw, "
        f"their renderings and printed digits, model.train.gate_data seed {cfg.seed + 1}), each lane's "
        f"thresholds on its own: {', '.join(f'{lane} {int(n)}' for lane, n in per_lane.items())}",
        method=f"the digit gate (model.gate), a small CNN beside the tutorial one, trained by binary cross-entropy for "
        f"{cfg.epochs} epochs on digits, renderings and printed digits against model.synth.negatives' images",
        score=GATE_SCORE,
        lanes=lanes,
        default_rates={"canvas": cfg.canvas_rate, "photo": cfg.photo_rate, "clean": cfg.clean_rate},
    )
    refused = report(scores, held, refusal)
    log.info("held out, refused at each lane's default operating point: %s", refused)
    meta = {k: v for k, v in model.meta.items() if k != "refusal"}
    meta["refusal"] = refusal.to_meta()
    meta.setdefault("metrics", {})["gate_held_out_refused"] = refused
    return save_checkpoint(out, model.net, meta, gate)


def carry(model: LoadedModel, source: LoadedModel, out: Path) -> str:
    """Write `model`'s CNN with `source`'s gate and refusal data (the gate never reads the CNN, so
    its thresholds hold as fitted); the hash."""
    if source.gate is None or "refusal" not in source.meta:
        raise SystemExit(f"{source.path} holds no digit gate to carry")
    meta = {k: v for k, v in model.meta.items() if k != "refusal"}
    meta["refusal"] = source.meta["refusal"]
    meta["gate_from"] = source.version
    meta["metrics"] = {k: v for k, v in meta.get("metrics", {}).items() if k != "gate_held_out_refused"}
    if "gate_held_out_refused" in source.meta.get("metrics", {}):  # as `ship` measured it
        meta["metrics"]["gate_held_out_refused"] = source.meta["metrics"]["gate_held_out_refused"]
    return save_checkpoint(out, model.net, meta, source.gate)


def cached(folder: Path | None, name: str, make: Callable[[], Examples]) -> Examples:
    """`make()`, or with `folder`, what an earlier call saved there as `name`.npz (else made and saved)."""
    if folder is None:
        return make()
    path = folder / f"{name}.npz"
    if path.exists():
        with np.load(path) as saved:
            return Examples(saved["images"], saved["digit"], saved["kinds"], saved["lanes"])
    ex = make()
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, images=ex.images, digit=ex.digit, kinds=ex.kinds, lanes=ex.lanes)
    return ex


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Train the digit gate beside a checkpoint's CNN (model.gate).")
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="whose CNN the gate joins")
    p.add_argument("--out", type=Path, default=None, help="the checkpoint written (default: --checkpoint, in place)")
    p.add_argument("--data-dir", default=None, help="MNIST's IDX files (default: MNIST_DATA_DIR or data/mnist)")
    p.add_argument("--cache", type=Path, default=None, help="keep the examples made in this folder, and reuse them")
    p.add_argument(
        "--refit", action="store_true", help="no training: fit the thresholds of the checkpoint's gate again"
    )
    for name, value in vars(GateRecipe()).items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    p.add_argument("--carry", type=Path, default=None, help="no training: this checkpoint's gate and thresholds")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = GateRecipe(**{k: getattr(args, k) for k in vars(GateRecipe())})
    torch.set_num_threads(os.cpu_count() or 1)
    model = load_checkpoint(args.checkpoint)
    if args.carry is not None:
        digest = carry(model, load_checkpoint(args.carry), args.out or args.checkpoint)
        print(f"wrote {args.out or args.checkpoint} ({digest[:12]}), the gate of {args.carry}")
        return 0
    digits = load_split("train", args.data_dir).images.numpy()
    order = torch.randperm(len(digits), generator=torch.Generator().manual_seed(cfg.seed)).numpy()
    held_digits, train_digits = digits[order[:HELD_OUT]], digits[order[HELD_OUT:]]
    held = cached(
        args.cache, "held", lambda: examples(held_digits, cfg.per_kind // 2, cfg.negatives // 2, cfg.seed + 1)
    )
    if args.refit:  # the gate the checkpoint holds, its thresholds fitted again
        if model.gate is None:
            raise SystemExit(f"{args.checkpoint} holds no digit gate to refit")
        gate = model.gate
    else:
        gate = train_gate(
            cached(args.cache, "train", lambda: examples(train_digits, cfg.per_kind, cfg.negatives, cfg.seed)), cfg
        )
    digest = ship(model, gate, held, args.out or args.checkpoint, cfg)
    print(f"wrote {args.out or args.checkpoint} ({digest[:12]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
