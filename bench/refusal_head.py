"""Would a digit-or-not output trained with the network refuse better? An experiment, not the
service's training: `python bench/refusal_head.py OUT.pt [--epochs 30] [--weight 1.0] [--data-dir D]`.

The tutorial CNN trained as `model.train --negatives 2000 --degrade 0.3 --renders 2000` trains it
(the same data, seeds and schedule), with one more output beside it: a linear layer from the 128
hidden features to one logit, "a digit", trained by binary cross-entropy (times `--weight`) on the
digits and renderings (1) against the negatives (0). Its thresholds are the quantiles of the
validation split's digits and their renderings. Printed for each share of those turned away:
MNIST's test digits refused and the accuracy counting refusals as errors, `/tmp/neg1`'s images
that reach the network refused (each kind), and `/tmp/rw12`'s digits refused (each kind); the
folders are given with --negatives and --digits. About 10 minutes on two cores.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from refusal_probe import folder
from torch import nn

from model.augment import augment
from model.contract import to_tensor
from model.data import load_split
from model.network import Net, NetConfig
from model.outliers import degrade, negative_images, uniform_loss
from model.renders import renders
from model.train import TrainConfig, split


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("output", type=Path)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--weight", type=float, default=1.0)
    p.add_argument("--negatives", type=Path, default=Path("/tmp/neg1"))
    p.add_argument("--digits", type=Path, default=Path("/tmp/rw12"))
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(0)
    train_split, test = load_split("train", args.data_dir), load_split("test", args.data_dir)
    val, fit = split(len(train_split.labels), TrainConfig(), gen)  # model.train's split for seed 0
    x_train, y_train = train_split.images[fit].float() / 255, train_split.labels[fit]
    x_val, y_val = train_split.images[val].float() / 255, train_split.labels[val]
    negatives, weights = negative_images(2000, 100)
    rendered = renders(train_split.images[fit], y_train, 2000, 200)
    held = renders(train_split.images[val], y_val, 400, 201)

    net, head = Net(NetConfig()), nn.Linear(128, 1)
    opt = torch.optim.AdamW([*net.parameters(), *head.parameters()], lr=3e-3, weight_decay=1e-4)
    steps = math.ceil(len(x_train) / 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=args.epochs * steps)

    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = net.hidden(to_tensor(x))
        return net.fc2(h), head(h).squeeze(1)

    @torch.inference_mode()
    def run(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        net.eval()
        head.eval()
        out = [forward(x[i : i + 1000].float()) for i in range(0, len(x), 1000)]
        return torch.cat([o[0] for o in out]).numpy(), torch.cat([o[1] for o in out]).numpy()

    best, state = -1.0, None
    for epoch in range(1, args.epochs + 1):
        net.train()
        head.train()
        perm = torch.randperm(len(x_train), generator=gen)
        for step in range(steps):
            idx = perm[step * 128 : (step + 1) * 128]
            xb = degrade(augment(x_train[idx].unsqueeze(1), gen), gen, 0.3)
            pick = torch.randint(len(rendered[0]), (32,), generator=gen)
            xb = torch.cat([xb, rendered[0][pick].unsqueeze(1)])
            yb = torch.cat([y_train[idx], rendered[1][pick]])
            nb = augment(negatives[torch.multinomial(weights, 64, replacement=True, generator=gen)].unsqueeze(1), gen)
            logits, digit = forward(torch.cat([xb, nb]).squeeze(1))
            n = len(yb)
            target = torch.cat([torch.ones(n), torch.zeros(len(nb))])
            loss = (F.cross_entropy(logits[:n], yb) + 0.5 * uniform_loss(logits[n:])
                    + args.weight * F.binary_cross_entropy_with_logits(digit, target))  # fmt: skip
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        acc = float((run(x_val)[0].argmax(1) == y_val.numpy()).mean())
        print(f"epoch {epoch}: val accuracy {acc:.4f}", flush=True)
        if acc >= best:
            best, state = acc, tuple({k: v.clone() for k, v in m.state_dict().items()} for m in (net, head))
    assert state is not None
    net.load_state_dict(state[0])
    head.load_state_dict(state[1])
    torch.save({"net": net.state_dict(), "head": head.state_dict()}, args.output)

    held_scores = np.r_[run(x_val)[1], run(held[0])[1]]
    test_logits, test_scores = run(test.images.float() / 255)
    right: np.ndarray = test_logits.argmax(1) == test.labels.numpy()
    neg_images, _, neg_kinds = folder(args.negatives)
    dig_images, _, dig_kinds = folder(args.digits)
    neg_scores, dig_scores = run(neg_images)[1], run(dig_images)[1]
    print(f"best val {best:.4f}; MNIST test {right.mean():.4f} before refusal")
    for share in (0.001, 0.002, 0.005, 0.01):
        t = float(np.quantile(held_scores, share))
        refused = test_scores < t
        print(f"share {share}: MNIST refused {refused.mean():.4f}, counting refusals {(right & ~refused).mean():.4f}")
        by_kind = {"negatives": (neg_scores, neg_kinds), "digits": (dig_scores, dig_kinds)}
        for name, (values, kinds) in by_kind.items():
            each = ", ".join(f"{k} {(values[kinds == k] < t).mean():.3f}" for k in sorted(set(kinds)))
            print(f"  {name} refused {(values < t).mean():.4f}: {each}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
