"""Fine-tune a checkpoint on labelled images mixed with MNIST: `python -m model.train --finetune
CHECKPOINT --extra-images DIR` (DIR as `python -m app.feedback export` writes it, or any folder of
files named `<label>_<kind>_<n>.<ext>`; docs/feedback.md).

Each image is read through the service's own preprocessing (a number's digits each, when its row
splits into as many as its label has), and a seeded share of them is held out. The CNN trains from
the checkpoint's weights on MNIST's training digits, each batch joined by extra digits; its
temperature is fitted again on 5,000 MNIST training digits left out of the fine-tune (the
checkpoint's own training may have seen them). When the checkpoint
has a digit gate, the gate is fine-tuned too, on the extra digits (and `x_` images, as not digits)
beside fresh `model.train.gate_data` examples, and its thresholds are fitted again at the
checkpoint's operating points. Before and after are printed: MNIST's test set, and the held-out
extra images read right (argmax, and through refusal as the service answers). A checkpoint that
reads MNIST's test set more than `max_mnist_drop` worse is not written unless `--allow-mnist-drop`.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from model.checkpoint import LoadedModel, load_checkpoint, save_checkpoint
from model.contract import to_tensor
from model.data import IMAGE_SUFFIXES, LABEL_PATTERN, load_split
from model.gate import digit_probabilities
from model.imaging.errors import PreprocessError
from model.imaging.number import preprocess_number
from model.imaging.preprocess import preprocess
from model.network import Net
from model.train.augment import augment
from model.train.gate import GateRecipe, report, ship, train_gate
from model.train.gate_data import Examples, examples
from model.train.scoring import accuracy, fit_temperature, predict_logits

log = logging.getLogger("model.train.finetune")


@dataclass(frozen=True)
class FinetuneRecipe:
    epochs: int = 2  # passes over MNIST's training digits
    lr: float = 5e-4  # AdamW, cosine to 0
    batch_size: int = 128
    extra_batch: int = 32  # extra digits beside each batch of MNIST's, at most
    extra_repeats: int = 60  # the most times one extra image is drawn an epoch: a few images, fewer a batch
    held_out: float = 0.25  # share of the extra images kept for evaluation
    seed: int = 0
    max_mnist_drop: float = 0.002  # 0.2 points of MNIST test accuracy
    gate_epochs: int = 3
    gate_lr: float = 1e-3
    gate_per_kind: int = 100  # fresh model.train.gate_data examples the gate keeps learning beside the extra ones
    gate_negatives: int = 120
    held_mnist: int = 5000  # MNIST training digits kept out: the temperature's and the gate thresholds' data


class FinetuneError(ValueError):
    """The fine-tune cannot start: no labelled digit images, or the font families it needs missing."""


@dataclass(frozen=True)
class Extra:
    images: np.ndarray  # (N, 28, 28) float32 in [0, 1], as the preprocessing made them
    labels: np.ndarray  # (N,) int64: the digit, or -1 for an image with no digit
    lanes: np.ndarray  # (N,) str: the input lane of each

    def take(self, idx: np.ndarray) -> Extra:
        return Extra(self.images[idx], self.labels[idx], self.lanes[idx])

    def __len__(self) -> int:
        return len(self.labels)


def read_folder(folder: Path) -> tuple[Extra, int]:
    """The labelled images in `folder` through the service's preprocessing, and how many files could
    not be used (unreadable, no ink, a number whose row does not split into its label's digits)."""
    if not folder.is_dir():
        raise FinetuneError(f"{folder}: not a folder")
    images, labels, lanes, skipped = [], [], [], 0
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        m = LABEL_PATTERN.match(path.name)
        if m is None:
            continue
        label, data = m["label"], path.read_bytes()
        try:
            if len(label) == 1 or label == "x":
                pre = preprocess(data)
                images.append(pre.image)
                labels.append(-1 if label == "x" else int(label))
                lanes.append(pre.lane)
                continue
            slots = preprocess_number(data)
        except PreprocessError:
            skipped += 1
            continue
        if len(slots) != len(label):
            skipped += 1
            continue
        for slot, digit in zip(slots, label, strict=True):
            images.append(slot.whole.image)
            labels.append(int(digit))
            lanes.append(slot.lane)
    empty = np.zeros((0, 28, 28), np.float32)
    extra = Extra(np.stack(images) if images else empty, np.array(labels, np.int64), np.array(lanes, dtype=str))
    return extra, skipped


def split_held_out(extra: Extra, share: float, seed: int) -> tuple[Extra, Extra]:
    """(train, held out): `share` of the digits and of the images with no digit, drawn by `seed`."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for side in (extra.labels >= 0, extra.labels < 0):
        idx = rng.permutation(np.flatnonzero(side))
        n = round(share * len(idx))
        held.append(idx[:n])
        train.append(idx[n:])
    return extra.take(np.concatenate(train)), extra.take(np.concatenate(held))


def measure(model: LoadedModel, extra: Extra) -> dict[str, float]:
    """On `extra`: the digits read right (argmax), read right and not refused (as the service answers),
    and the images with no digit refused."""
    digits, none = extra.labels >= 0, extra.labels < 0
    out: dict[str, float] = {}
    accepted = np.ones(len(extra), bool)
    if model.refusal is not None and model.gate is not None and len(extra):
        scores = digit_probabilities(model.gate, extra.images)
        accepted = scores >= np.array([model.refusal.threshold(None, str(lane)) for lane in extra.lanes])
    if digits.any():
        right = (
            predict_logits(model.net, torch.from_numpy(extra.images[digits])).argmax(1).numpy() == extra.labels[digits]
        )
        out["read"] = float(right.mean())
        out["answered_right"] = float((right & accepted[digits]).mean())
    if none.any():
        out["not_a_digit_refused"] = float((~accepted[none]).mean())
    return out


def train_cnn(model: LoadedModel, x: torch.Tensor, y: torch.Tensor, extra: Extra, r: FinetuneRecipe) -> Net:
    """The checkpoint's CNN trained on (x, y) with up to `r.extra_batch` of the extra digits in every
    batch, so that none is drawn more than about `r.extra_repeats` times an epoch (a handful of
    corrections repeated in every batch would be learnt by heart, and MNIST forgotten)."""
    gen = torch.Generator().manual_seed(r.seed)
    net = copy.deepcopy(model.net)
    keep = extra.labels >= 0
    ex_x, ex_y = torch.from_numpy(extra.images[keep]), torch.from_numpy(extra.labels[keep])
    per_epoch = math.ceil(len(x) / r.batch_size)
    steps = r.epochs * per_epoch
    per_batch = min(r.extra_batch, math.ceil(r.extra_repeats * len(ex_y) / per_epoch))
    opt = torch.optim.AdamW(net.parameters(), lr=r.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    net.train()
    for epoch in range(r.epochs):
        total = 0.0
        for idx in torch.randperm(len(x), generator=gen).split(r.batch_size):
            xb, yb = x[idx], y[idx]
            if len(ex_y):
                pick = torch.randint(len(ex_y), (per_batch,), generator=gen)
                xb, yb = torch.cat([xb, ex_x[pick]]), torch.cat([yb, ex_y[pick]])
            loss = F.cross_entropy(net(to_tensor(augment(xb.unsqueeze(1), gen).squeeze(1))), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            total += loss.item() * len(idx)
        log.info("CNN epoch %d/%d: loss %.4f", epoch + 1, r.epochs, total / len(x))
    return net.eval()


def _with_extra(base: Examples, extra: Extra) -> Examples:
    """`base` joined by the extra images: digits as kind `feedback`, the rest as `x_feedback`."""
    images = (extra.images * 255).round().astype(np.uint8)
    digit = extra.labels >= 0
    kinds = np.where(digit, "feedback", "x_feedback")
    return Examples(np.concatenate([base.images, images]), np.concatenate([base.digit, digit]),
                    np.concatenate([base.kinds, kinds]), np.concatenate([base.lanes, extra.lanes]))  # fmt: skip


def finetune(checkpoint: str | Path, folder: Path, output: Path, data_dir: str | Path | None, r: FinetuneRecipe,
             allow_mnist_drop: bool = False) -> dict[str, Any]:  # fmt: skip
    """Fine-tune, and write `output` unless MNIST drops too far; the record of what was done, with
    before and after (`print_record` prints it)."""
    torch.manual_seed(r.seed)
    source = load_checkpoint(checkpoint)
    if source.gate is not None:
        from model.synth.printed import missing

        if gone := missing(held_out=False):
            raise FinetuneError(f"the digit gate's fresh examples hold printed digits, and these font families are "
                                f"missing: {', '.join(gone)} (make fonts installs them)")  # fmt: skip
    extra, skipped = read_folder(folder)
    if not (extra.labels >= 0).any():
        raise FinetuneError(f"{folder}: no labelled digit images to fine-tune on (files named like 7_kind_001.png)")
    train_extra, held_extra = split_held_out(extra, r.held_out, r.seed)
    log.info("%d extra images (%d unusable): %d to train on, %d held out", len(extra), skipped, len(train_extra),
             len(held_extra))  # fmt: skip
    mnist, test = load_split("train", data_dir), load_split("test", data_dir)
    order = torch.randperm(len(mnist.labels), generator=torch.Generator().manual_seed(r.seed))
    held_idx, train_idx = order[: r.held_mnist], order[r.held_mnist :]
    images = mnist.images.float() / 255
    test_x, test_y = test.images.float() / 255, test.labels
    net = train_cnn(source, images[train_idx], mnist.labels[train_idx], train_extra, r)
    temperature = fit_temperature(predict_logits(net, images[held_idx]), mnist.labels[held_idx])
    before_mnist = accuracy(predict_logits(source.net, test_x), test_y)
    after_mnist = accuracy(predict_logits(net, test_x), test_y)
    record: dict[str, Any] = {
        "from": source.version, "images": len(extra), "unusable": skipped, "trained_on": len(train_extra),
        "held_out": len(held_extra), "seed": r.seed, "epochs": r.epochs,
        "mnist_test": {"before": before_mnist, "after": after_mnist},
    }  # fmt: skip
    tuned = replace(source, net=net, meta=_meta(source, temperature, after_mnist, record))
    before = measure(source, held_extra)
    if round(before_mnist - after_mnist, 6) > r.max_mnist_drop and not allow_mnist_drop:  # (0.2 points is not over)
        record["held_out_images"] = {"before": before, "after": measure(tuned, held_extra)}
        record["written"] = None
        return record
    if source.gate is not None and source.refusal is not None:
        tuned = _tune_gate(tuned, mnist.images[train_idx].numpy(), mnist.images[held_idx].numpy(), train_extra,
                           output, r, record)  # fmt: skip
    else:
        save_checkpoint(output, net, tuned.meta)
        tuned = load_checkpoint(output)
    record["held_out_images"] = {"before": before, "after": measure(tuned, held_extra)}
    record["written"] = str(output)
    # the record, complete; the file's name, not its local path (GET /model shows it)
    save_checkpoint(output, tuned.net, {**tuned.meta, "finetuned": {**record, "written": output.name}}, tuned.gate)
    return record


def _meta(source: LoadedModel, temperature: float, test_accuracy: float, record: dict[str, Any]) -> dict[str, Any]:
    meta = copy.deepcopy(source.meta)
    meta.setdefault("metrics", {}).update(temperature=temperature, test_accuracy=test_accuracy)
    meta["created_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    meta["finetuned"] = record  # what it was tuned from and on (the same dict: filled in as it goes)
    return meta


def _tune_gate(tuned: LoadedModel, train_digits: np.ndarray, held_digits: np.ndarray, extra: Extra, output: Path,
               r: FinetuneRecipe, record: dict[str, Any]) -> LoadedModel:  # fmt: skip
    """The gate fine-tuned on fresh examples and the extra images, its thresholds fitted again on
    held-out examples at the checkpoint's operating points, and the checkpoint written (`ship`)."""
    assert tuned.gate is not None
    assert tuned.refusal is not None
    rates = tuned.refusal.default_rates
    cfg = GateRecipe(epochs=r.gate_epochs, lr=r.gate_lr, seed=r.seed, canvas_rate=rates.get("canvas", 0.004),
                     photo_rate=rates.get("photo", 0.005), clean_rate=rates.get("clean", 0.003))  # fmt: skip
    base = examples(train_digits, r.gate_per_kind, r.gate_negatives, r.seed + 10)
    gate = train_gate(_with_extra(base, extra), cfg, initial=tuned.gate)
    held = examples(held_digits, r.gate_per_kind // 2, r.gate_negatives // 2, r.seed + 11)
    ship(tuned, gate, held, output, cfg)
    out = load_checkpoint(output)
    assert out.gate is not None
    assert out.refusal is not None

    def refused(model_gate: Any, refusal: Any) -> dict[str, float]:
        per_kind = report(digit_probabilities(model_gate, held.images.astype(np.float32) / 255), held, refusal)
        sides = {"digits_turned_away": [v for k, v in per_kind.items() if not k.startswith("x_")],
                 "negatives_refused": [v for k, v in per_kind.items() if k.startswith("x_")]}  # fmt: skip
        return {name: round(float(np.mean(values)), 4) for name, values in sides.items()}

    record["gate_held_out"] = {"before": refused(tuned.gate, tuned.refusal), "after": refused(out.gate, out.refusal)}
    return out


def print_record(record: dict[str, Any]) -> None:
    """Before and after, as a table."""
    held = record["held_out_images"]
    rows = [("MNIST test set (10,000)", record["mnist_test"]["before"], record["mnist_test"]["after"])]
    names = {"read": "read right (argmax)", "answered_right": "answered right (refusals count as wrong)",
             "not_a_digit_refused": "not-a-digit images refused"}  # fmt: skip
    for key, name in names.items():
        if key in held["before"]:
            rows.append(
                (f"held-out extra images ({record['held_out']}): {name}", held["before"][key], held["after"][key])
            )
    for key, (before, after) in _pairs(record.get("gate_held_out")):
        rows.append((f"gate, held-out examples: {key.replace('_', ' ')}", before, after))
    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}  before   after")
    for name, before, after in rows:
        print(f"{name:{width}}  {100 * before:6.2f}%  {100 * after:6.2f}%")
    drop = 100 * (record["mnist_test"]["before"] - record["mnist_test"]["after"])
    if record["written"]:
        print(f"wrote {record['written']} (fine-tuned from {record['from']})")
    else:
        print(
            f"not written: MNIST's test accuracy drops {drop:.2f} points, more than 0.2 (--allow-mnist-drop writes it)"
        )


def _pairs(gate: dict[str, dict[str, float]] | None) -> list[tuple[str, tuple[float, float]]]:
    return [(k, (gate["before"][k], gate["after"][k])) for k in gate["before"]] if gate else []
