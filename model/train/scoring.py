"""A network's logits and accuracy on held-out digits, and the temperature fitted on them: what
training (`model.train.recipe`) and the fine-tune (`model.train.finetune`) both measure with."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from model.contract import to_tensor
from model.network import Net


@torch.inference_mode()
def predict_logits(net: Net, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Logits for (N, 28, 28) images in [0, 1]."""
    net.eval()
    return torch.cat([net(to_tensor(images[i : i + batch_size])) for i in range(0, len(images), batch_size)])


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Exact fraction correct (a float32 mean would store 0.9952 as 0.99519998)."""
    return int((logits.argmax(1) == labels).sum()) / max(len(labels), 1)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Temperature scaling (Guo et al. 2017) on held-out logits, so confidences are honest."""
    logits = logits.clone()  # out of inference mode, so autograd can use it
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return log_t.exp().item()
