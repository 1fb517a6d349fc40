"""Knowledge distillation (Hinton et al. 2015) for `model.train --teachers A.pt B.pt ...`: the
network learns from the averaged, softened answers of several trained networks on each augmented
batch, as well as from the labels. An ensemble of tutorial CNNs reads MNIST better than any one of
them; distilling it keeps the one network (and its speed) the service ships.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from model.checkpoint import load_checkpoint
from model.network import Net


class Teachers:
    """Trained networks whose averaged probabilities at `temperature` are a batch's soft targets."""

    def __init__(self, paths: Sequence[str | Path], temperature: float) -> None:
        if not paths:
            raise ValueError("distillation needs at least one teacher checkpoint")
        if temperature <= 0:
            raise ValueError(f"distillation temperature must be positive, got {temperature}")
        loaded = [load_checkpoint(p) for p in paths]
        self.nets: list[Net] = [m.net.eval() for m in loaded]
        self.sha256 = [m.sha256 for m in loaded]  # recorded in the student's checkpoint
        self.temperature = temperature

    @torch.inference_mode()
    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 10) mean of the teachers' softened probabilities for (B, 1, 28, 28) network inputs."""
        return torch.stack([torch.softmax(net(x) / self.temperature, dim=1) for net in self.nets]).mean(0)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """KL divergence from the soft targets to the student's softened answer, scaled by T^2 so its
        gradients keep their size whatever the temperature (Hinton et al.)."""
        t = self.temperature
        log_p = F.log_softmax(logits / t, dim=1)
        return F.kl_div(log_p, targets.clone(), reduction="batchmean") * t * t
