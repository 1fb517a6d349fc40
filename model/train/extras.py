"""Digits trained on beside MNIST's, each read back through the service's own preprocessing:
upload-like renderings of MNIST training digits (`--renders N`, `model.synth.renders`) and printed
digits in the faces of the training font families (`--fonts N`, `model.synth.printed`); and the
held-out ones of each that the temperature and the refusal thresholds are fitted on."""

from __future__ import annotations

from typing import Protocol

import torch


class Wanted(Protocol):
    """What of the training configuration (`model.train.recipe.TrainConfig`) says what to add."""

    @property
    def renders(self) -> int: ...
    @property
    def fonts(self) -> int: ...
    @property
    def seed(self) -> int: ...


Digits = tuple[torch.Tensor, torch.Tensor]  # (N, 28, 28) in [0, 1], (N,) labels
#: The share of outlier-exposure draws that are printed negatives.
PRINTED_SHARE = 0.3


def extra_digits(cfg: Wanted, mnist: torch.Tensor, labels: torch.Tensor, train_idx: torch.Tensor,
                 val_idx: torch.Tensor) -> tuple[Digits | None, Digits | None, str]:  # fmt: skip
    """The extra digits to train on, those held out, and what the held-out ones are (for the record)."""
    train, held, said = [], [], []
    if cfg.renders:  # from the training split's digits; the validation split's make the held-out ones
        from model.synth.renders import renders  # scipy, as model.synth.realworld needs: only here

        train.append(renders(mnist[train_idx], labels[train_idx], cfg.renders, cfg.seed + 200))
        held.append(renders(mnist[val_idx], labels[val_idx], max(cfg.renders // 5, 1), cfg.seed + 201))
        said.append(f"{len(held[-1][0])} upload-like renderings of them (model.synth.renders, seed {cfg.seed + 201})")
    if cfg.fonts:
        from model.synth.printed import training_digits

        train.append(training_digits(10 * cfg.fonts, cfg.seed + 300))
        held.append(training_digits(10 * max(cfg.fonts // 5, 1), cfg.seed + 301))
        said.append(f"{len(held[-1][0])} printed digits of the training font families (seed {cfg.seed + 301})")
    return _join(train), _join(held), " and ".join(said)


def _join(sets: list[Digits]) -> Digits | None:
    return (torch.cat([s[0] for s in sets]), torch.cat([s[1] for s in sets])) if sets else None


def with_printed_negatives(cfg: Wanted, negatives: torch.Tensor, weights: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """With `--fonts`, the negatives and their sampling weights joined by printed ones
    (`model.synth.printed.training_negatives`: pieces of digits, touching digits read whole), as
    PRINTED_SHARE of the draws."""
    if not cfg.fonts:
        return negatives, weights
    from model.synth.printed import training_negatives

    extra = training_negatives(5 * cfg.fonts, cfg.seed + 302)
    share = torch.full((len(extra),), PRINTED_SHARE / (1 - PRINTED_SHARE) * float(weights.sum()) / len(extra))
    return torch.cat([negatives, extra]), torch.cat([weights, share])
