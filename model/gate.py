"""The digit gate: a small network beside the tutorial CNN that says whether its input holds a digit.

The tutorial CNN answers which digit; the gate only whether there is one. It reads the same 28x28
input (normalised as `model.contract` says) through three 3x3 convolutions and two fully
connected layers to one logit, "a digit", trained by binary cross-entropy on digits (MNIST's, and
upload-like renderings and printed digits read back through the service's preprocessing) against
images with no digit (`model.synth.negatives`); `python -m model.train.gate` trains it and
stores it in a checkpoint beside the CNN, whose weights it leaves alone. Its probability is the
refusal score (`model.refusal`, score `digit_gate`). It costs about twice the CNN's multiply-adds
(6 million against 3.4).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model.contract import to_tensor
from model.network import max_pool_2x2


@dataclass(frozen=True)
class GateConfig:
    """Shape of the gate; stored with its weights so loading can rebuild it."""

    conv1_filters: int = 32
    conv2_filters: int = 64
    fc_size: int = 128

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Gate(nn.Module):
    """conv 3x3/32 -> ReLU -> pool 2; conv 3x3/64 -> ReLU -> pool 2; conv 3x3/64 -> ReLU;
    fc 128 -> ReLU; fc 1: the logit of "this is a digit"."""

    def __init__(self, config: GateConfig | None = None) -> None:
        super().__init__()
        self.config = config or GateConfig()
        c = self.config
        self.conv1 = nn.Conv2d(1, c.conv1_filters, 3, padding=1)
        self.conv2 = nn.Conv2d(c.conv1_filters, c.conv2_filters, 3, padding=1)
        self.conv3 = nn.Conv2d(c.conv2_filters, c.conv2_filters, 3, padding=1)
        self.fc1 = nn.Linear(c.conv2_filters * 7 * 7, c.fc_size)
        self.fc2 = nn.Linear(c.fc_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) normalised inputs -> (B,) logits."""
        x = F.max_pool2d(self.conv1(x).relu(), 2)  # (B, 32, 14, 14)
        x = F.max_pool2d(self.conv2(x).relu(), 2)  # (B, 64, 7, 7)
        x = self.conv3(x).relu()  # (B, 64, 7, 7)
        logit: torch.Tensor = self.fc2(self.fc1(x.flatten(1)).relu()).squeeze(1)
        return logit


def gate_payload(gate: Gate) -> dict[str, Any]:
    """What a checkpoint stores of the gate (tensors and plain values: weights-only loadable)."""
    return {
        "config": gate.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in gate.state_dict().items()},
    }


def gate_from_payload(payload: Mapping[str, Any]) -> Gate:
    """The gate a checkpoint stores; ValueError when it does not fit its config."""
    try:
        gate = Gate(GateConfig(**payload["config"]))
        gate.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError) as e:
        raise ValueError(f"the digit gate's weights do not fit its config ({e.__class__.__name__}: {e})") from None
    return gate.eval()


def inference_gate(gate: Gate) -> Callable[[torch.Tensor], torch.Tensor]:
    """`gate.forward` as the service runs it, returning the probability of a digit: the same layers
    on channels-last copies of the weights, as `model.network.inference_forward` runs the CNN."""
    own = copy.deepcopy(gate).eval()
    own.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # documented; untyped in torch
    conv1, conv2, conv3, fc1, fc2 = own.conv1, own.conv2, own.conv3, own.fc1, own.fc2

    def forward(batch: torch.Tensor) -> torch.Tensor:
        x = batch.contiguous(memory_format=torch.channels_last)
        x = max_pool_2x2(F.conv2d(x, conv1.weight, conv1.bias, 1, 1).relu_())
        x = max_pool_2x2(F.conv2d(x, conv2.weight, conv2.bias, 1, 1).relu_())
        x = F.conv2d(x, conv3.weight, conv3.bias, 1, 1).relu_()
        x = F.linear(x.flatten(1), fc1.weight, fc1.bias).relu_()
        return torch.sigmoid(F.linear(x, fc2.weight, fc2.bias).squeeze(1))

    return forward


@torch.inference_mode()
def digit_probabilities(gate: Gate, images: np.ndarray | torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    """The gate's probability of a digit for (N, 28, 28) images in [0, 1], as the service computes it."""
    forward = inference_gate(gate)
    x = to_tensor(torch.as_tensor(images, dtype=torch.float32))
    return torch.cat([forward(part) for part in x.split(batch_size)]).numpy().astype(np.float64)
