"""Train the CNN on MNIST and write a verified checkpoint: `python -m model.train --help`."""

from __future__ import annotations

import argparse
import logging
import math
import time
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from model.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, save_checkpoint
from model.contract import to_tensor
from model.data import DataError, load_split
from model.network import Net, NetConfig
from model.refusal import Refusal, fit_thresholds
from model.train.augment import augment
from model.train.distill import Teachers
from model.train.extras import extra_digits, with_printed_negatives
from model.train.outliers import degrade, negative_images, uniform_loss
from model.train.scoring import accuracy, fit_temperature, predict_logits

log = logging.getLogger("model.train")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 128
    lr: float = 3e-3  # peak of the one-cycle schedule
    weight_decay: float = 1e-4
    seed: int = 0
    split_seed: int | None = None  # draws the validation split apart from `seed` (teachers of one student)
    augment: bool = True
    val_size: int = 5000
    limit: int | None = None  # train on this many images only (tests, smoke runs)
    threads: int = 2
    negatives: int = 0  # outlier exposure: images of each kind of model.synth.negatives; 0: none, no refusal data
    negatives_seed: int = 100  # not 0, 1 or 11: those seeds make the images refusal is measured on
    oe_weight: float = 0.5  # weight of the uniform loss on the negatives
    refusal: bool = True  # with negatives: refusal thresholds written into the checkpoint (the service then refuses)
    negative_batch: int = 64  # negatives beside each batch of digits
    degrade: float = 0.0  # share of digits made coarse or soft (model.train.outliers.degrade)
    renders: int = 0  # upload-like renderings of training digits per kind (model.synth.renders); 0: none
    fonts: int = 0  # printed digits of each kind in the training font families (model.synth.printed); 0: none
    render_batch: int = 32  # renderings and printed digits beside each batch of digits
    finetune: str | None = None  # a checkpoint whose weights training starts from; None: fresh weights
    elastic: float = 0.0  # elastic distortion's spread in pixels (model.train.augment); 0: none
    ema: float = 0.0  # decay of an exponential moving average of the weights, validated and kept; 0: none
    teachers: tuple[str, ...] = ()  # checkpoints distilled from (model.train.distill); (): labels only
    distill_weight: float = 0.5  # share of the loss on the teachers' soft targets
    distill_temperature: float = 2.0


def split(n: int, cfg: TrainConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the validation and training images: drawn from the run's generator, or with
    `split_seed` from one of their own, so that the teachers of a student (model.train.distill) never
    train on the images it validates on."""
    split_gen = gen if cfg.split_seed is None else torch.Generator().manual_seed(cfg.split_seed)
    order = torch.randperm(n, generator=split_gen)
    return order[: cfg.val_size], order[cfg.val_size :]


def train(cfg: TrainConfig, data_dir: str | Path | None, output: Path) -> dict[str, float]:
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(cfg.seed)

    train_split = load_split("train", data_dir)
    test_split = load_split("test", data_dir)
    images = train_split.images.float() / 255  # (60000, 28, 28)
    labels = train_split.labels
    val_idx, train_idx = split(len(images), cfg, gen)
    test_images = test_split.images.float() / 255
    test_labels = test_split.labels
    if cfg.limit:
        train_idx = train_idx[: cfg.limit]
        val_idx = val_idx[: max(cfg.limit // 4, 1)]
        test_images, test_labels = test_images[: cfg.limit], test_labels[: cfg.limit]
    x_train, y_train = images[train_idx], labels[train_idx]
    x_val, y_val = images[val_idx], labels[val_idx]

    negatives, weights = None, None
    if cfg.negatives:
        negatives, weights = with_printed_negatives(cfg, *negative_images(cfg.negatives, cfg.negatives_seed))
    rendered, held_out, held_out_are = extra_digits(cfg, train_split.images, labels, train_idx, val_idx)

    # the epoch kept is the one that reads the validation split and the held-out extra digits best
    x_sel, y_sel = x_val, y_val
    if held_out is not None:
        x_sel, y_sel = torch.cat([x_val, held_out[0]]), torch.cat([y_val, held_out[1]])
    teachers = Teachers(cfg.teachers, cfg.distill_temperature) if cfg.teachers else None
    net = Net(NetConfig())
    if cfg.finetune:
        net.load_state_dict(load_checkpoint(cfg.finetune).net.state_dict())
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(x_train) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
    log.info("training on %d images, validating on %d, testing on %d", len(x_train), len(x_val), len(test_images))

    averaged = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema)) if cfg.ema else None
    best_acc, best_epoch, best_state = -1.0, 0, net.state_dict()
    started = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        perm = torch.randperm(len(x_train), generator=gen)
        total_loss = 0.0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{cfg.epochs}", leave=False, unit="batch")
        for step in bar:
            idx = perm[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            xb = x_train[idx].unsqueeze(1)  # (B, 1, 28, 28)
            if cfg.augment:
                xb = augment(xb, gen, cfg.elastic)
            if cfg.degrade:
                xb = degrade(xb, gen, cfg.degrade)
            yb = y_train[idx]
            if rendered is not None:  # upload-like digits beside MNIST's own
                pick = torch.randint(len(rendered[0]), (cfg.render_batch,), generator=gen)
                xb, yb = torch.cat([xb, rendered[0][pick].unsqueeze(1)]), torch.cat([yb, rendered[1][pick]])
            inputs = to_tensor(xb.squeeze(1))
            if negatives is not None and weights is not None:  # outlier exposure: negatives in the same pass
                pick = torch.multinomial(weights, cfg.negative_batch, replacement=True, generator=gen)
                nb = augment(negatives[pick].unsqueeze(1), gen) if cfg.augment else negatives[pick].unsqueeze(1)
                logits = net(torch.cat([inputs, to_tensor(nb.squeeze(1))]))
            else:
                logits = net(inputs)
            loss = F.cross_entropy(logits[: len(yb)], yb)
            if teachers is not None:  # and the teachers' soft targets for MNIST's digits (not the extra ones)
                w, n = cfg.distill_weight, len(idx)
                loss = (1 - w) * loss + w * teachers.loss(logits[:n], teachers.targets(inputs[:n]))
            if len(logits) > len(yb):  # the negatives towards an even spread
                loss = loss + cfg.oe_weight * uniform_loss(logits[len(yb) :])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if averaged is not None:
                averaged.update_parameters(net)
            total_loss += loss.item() * len(idx)
            bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        # the weights validated and kept: the average's when there is one (a Net: no batch norm to refit)
        kept: Net = net if averaged is None else averaged.module  # type: ignore[assignment]
        val_acc = accuracy(predict_logits(kept, x_sel), y_sel)
        log.info(
            "epoch %d/%d: train loss %.4f, val accuracy %.4f, %.0f s",
            epoch,
            cfg.epochs,
            total_loss / len(x_train),
            val_acc,
            time.perf_counter() - started,
        )
        if val_acc >= best_acc:  # ties go to the later epoch, trained at a lower rate
            best_acc, best_epoch = val_acc, epoch
            best_state = {k: v.clone() for k, v in kept.state_dict().items()}

    net.load_state_dict(best_state)
    val_logits, val_labels, fitted_on = (
        predict_logits(net, x_val),
        y_val,
        f"{len(x_val)} held-out MNIST training digits (the validation split)",
    )
    if held_out is not None:  # temperature and thresholds fitted where uploads sit too
        val_logits = torch.cat([val_logits, predict_logits(net, held_out[0])])
        val_labels = torch.cat([val_labels, held_out[1]])
        fitted_on += f" and {held_out_are}"
    temperature = fit_temperature(val_logits, val_labels)
    extra: dict[str, object] = {}
    if negatives is not None and cfg.refusal:  # refusal thresholds on the held-out digits' stated confidence
        confidence = torch.softmax(val_logits / temperature, dim=1).amax(dim=1).numpy()
        refusal = Refusal(
            fit_thresholds(confidence),
            fitted_on=fitted_on,
            method=f"outlier exposure: {len(negatives)} images of model.synth.negatives (seed {cfg.negatives_seed}) "
            f"trained towards an even spread (weight {cfg.oe_weight}); refused under the temperature-scaled "
            "confidence threshold of the operating point",
        )
        extra["refusal"] = refusal.to_meta()
    if teachers is not None:
        extra["distilled_from"] = teachers.sha256
    test_acc = accuracy(predict_logits(net, test_images), test_labels)
    seconds = time.perf_counter() - started
    metrics = {
        "val_accuracy": accuracy(predict_logits(net, x_val), y_val),  # MNIST's validation split alone
        **({"val_extra_accuracy": accuracy(predict_logits(net, held_out[0]), held_out[1])} if held_out else {}),
        "test_accuracy": test_acc,
        "test_n": len(test_labels),
        "temperature": temperature,
        "best_epoch": best_epoch,
        "train_seconds": round(seconds, 1),
    }
    digest = save_checkpoint(
        output,
        net,
        {
            "train_config": {**asdict(cfg), "teachers": [Path(t).name for t in cfg.teachers]},  # no local paths
            "data_md5": {**train_split.md5, **test_split.md5},
            "metrics": metrics,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "torch_version": str(torch.__version__),
            **extra,
        },
    )
    log.info(
        "best epoch %d: val %.4f, test %.4f (n=%d), temperature %.3f, %.0f s; wrote %s (sha256 %s)",
        best_epoch,
        best_acc,
        test_acc,
        len(test_labels),
        temperature,
        seconds,
        output,
        digest[:12],
    )
    return metrics


def main(argv: list[str] | None = None) -> int:
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m model.train", description="Train the MNIST CNN and write a checkpoint with its SHA-256."
    )
    add = p.add_argument
    add("--epochs", type=int, default=None, help=f"default {d.epochs}; with --extra-images 2")
    add("--batch-size", type=int, default=d.batch_size)
    add("--lr", type=float, default=d.lr, help="peak learning rate of the one-cycle schedule")
    add("--weight-decay", type=float, default=d.weight_decay)
    add("--seed", type=int, default=d.seed)
    add("--split-seed", type=int, default=None, help="seed of the validation split alone (default: --seed)")
    add("--augment", action=argparse.BooleanOptionalAction, default=d.augment)
    add("--val-size", type=int, default=d.val_size, help="training images held out to pick the epoch")
    add("--threads", type=int, default=d.threads, help="torch CPU threads")
    add("--limit", type=int, default=None, help="train on this many images only")
    add("--negatives", type=int, default=d.negatives, help="images of each kind of model.synth.negatives (refusal)")
    add("--oe-weight", type=float, default=d.oe_weight)
    add("--refusal", action=argparse.BooleanOptionalAction, default=d.refusal, help="with --negatives: refusal data")
    add("--degrade", type=float, default=d.degrade, help="share of digits made coarse or soft")
    add("--renders", type=int, default=d.renders, help="upload-like renderings of training digits per kind")
    add("--fonts", type=int, default=d.fonts, help="printed digits of each kind in the training font families")
    add("--elastic", type=float, default=d.elastic, help="elastic distortion's spread in pixels; 0: none")
    add("--ema", type=float, default=d.ema, help="weight average decay (e.g. 0.999); 0: none")
    add("--teachers", nargs="+", default=[], help="checkpoints to distil from (model.train.distill)")
    add("--distill-weight", type=float, default=d.distill_weight, help="share of the loss on the teachers")
    add("--distill-temperature", type=float, default=d.distill_temperature)
    add("--finetune", default=None, help="start from this checkpoint's weights instead of fresh ones")
    add("--extra-images", type=Path, default=None, help="with --finetune: fine-tune on these labelled images "
        "(python -m app.feedback export) mixed with MNIST (model.train.finetune)")  # fmt: skip
    add("--held-out", type=float, default=0.25, help="with --extra-images: their share kept for evaluation")
    add("--allow-mnist-drop", action="store_true", help="with --extra-images: write it even if MNIST drops > 0.2 pt")
    add("--dry-run", action="store_true", help="1 epoch on 512 images: a smoke test in seconds")
    add("--data-dir", default=None, help="folder of MNIST IDX files (default $MNIST_DATA_DIR or data/mnist)")
    add("--output", type=Path, default=DEFAULT_CHECKPOINT)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.extra_images is not None:
        return finetune_main(args)
    args.epochs = d.epochs if args.epochs is None else args.epochs
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    values["teachers"] = tuple(args.teachers)
    if args.dry_run:
        values.update(epochs=1, limit=512, negatives=min(args.negatives, 20), renders=min(args.renders, 10),
                      fonts=min(args.fonts, 10))  # fmt: skip
    try:
        train(TrainConfig(**values), args.data_dir, args.output)
    except DataError as e:
        log.error("%s", e)
        return 1
    return 0


def finetune_main(args: argparse.Namespace) -> int:
    """`--finetune CHECKPOINT --extra-images DIR`: model.train.finetune, its before and after printed."""
    try:
        from model.train.finetune import FinetuneError, FinetuneRecipe, finetune, print_record
    except ModuleNotFoundError as e:  # scipy: model.synth's renderings
        log.error("%s is not installed: the fine-tune needs the training tools (make install)", e.name)
        return 1

    if not args.finetune:
        raise SystemExit("--extra-images needs --finetune CHECKPOINT: the checkpoint to start from")
    recipe = FinetuneRecipe(epochs=args.epochs or FinetuneRecipe.epochs, held_out=args.held_out, seed=args.seed)
    try:
        record = finetune(args.finetune, args.extra_images, args.output, args.data_dir, recipe, args.allow_mnist_drop)
    except (DataError, FinetuneError) as e:
        log.error("%s", e)
        return 1
    print_record(record)
    return 0 if record["written"] else 2
