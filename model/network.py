"""The tutorial CNN: two conv/pool/ReLU blocks, then two fully connected layers."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class NetConfig:
    """Shape of the network; stored in every checkpoint so loading can rebuild it."""

    in_channels: int = 1
    image_size: int = 28
    conv1_filters: int = 16
    conv2_filters: int = 36
    kernel_size: int = 5
    fc_size: int = 128
    num_classes: int = 10

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def flat_features(self) -> int:
        """Features after two 2x poolings: 7 * 7 * 36 = 1764 for the default config."""
        side = self.image_size // 4
        return side * side * self.conv2_filters


class Net(nn.Module):
    """conv 5x5/16 -> pool 2 -> ReLU; conv 5x5/36 -> pool 2 -> ReLU; fc 128 -> ReLU; fc 10."""

    def __init__(self, config: NetConfig | None = None) -> None:
        super().__init__()
        self.config = config or NetConfig()
        c = self.config
        padding = c.kernel_size // 2
        self.conv1 = nn.Conv2d(c.in_channels, c.conv1_filters, c.kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(c.conv1_filters, c.conv2_filters, c.kernel_size, padding=padding)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(c.flat_features, c.fc_size)
        self.fc2 = nn.Linear(c.fc_size, c.num_classes)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two conv blocks' outputs, for visualisation and for `forward`."""
        x1 = torch.relu(self.pool(self.conv1(x)))  # (B, 1, 28, 28) -> (B, 16, 14, 14)
        x2 = torch.relu(self.pool(self.conv2(x1)))  # (B, 16, 14, 14) -> (B, 36, 7, 7)
        return x1, x2

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The 128 features after the first fully connected layer, for `forward` and refusal probes."""
        _, x = self.features(x)  # (B, 36, 7, 7)
        return torch.relu(self.fc1(x.flatten(1)))  # (B, 1764) -> (B, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.fc2(self.hidden(x))  # (B, 10)
        return logits


def inference_forward(net: Net) -> Callable[[torch.Tensor], torch.Tensor]:
    """`net.forward` as the service runs it, for (N, 1, 28, 28) inputs; `net` itself is left as it is.

    The same layers on channels-last copies of the weights, called directly (no Module hooks), with
    `max_pool_2x2` for the pooling: outputs equal to `net`'s within float rounding (tests), in
    markedly less time on one thread (bench/LOG.md, "Channels-last forward pass"). Not
    TorchScript: its oneDNN kernels ignore torch.set_num_threads, and workers then fight over cores.
    """
    own = copy.deepcopy(net).eval()
    own.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # documented; untyped in torch
    conv1, conv2, fc1, fc2 = own.conv1, own.conv2, own.fc1, own.fc2

    def forward(batch: torch.Tensor) -> torch.Tensor:
        x = batch.contiguous(memory_format=torch.channels_last)  # (B, 1, 28, 28)
        x = max_pool_2x2(F.conv2d(x, conv1.weight, conv1.bias, conv1.stride, conv1.padding)).relu_()  # (B, 16, 14, 14)
        x = max_pool_2x2(F.conv2d(x, conv2.weight, conv2.bias, conv2.stride, conv2.padding)).relu_()  # (B, 36, 7, 7)
        x = F.linear(x.flatten(1), fc1.weight, fc1.bias).relu_()  # (B, 128)
        return F.linear(x, fc2.weight, fc2.bias)  # (B, 10)

    return forward


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """nn.MaxPool2d(2), exactly; from 4 images on, the elementwise maximum of the four strided
    quarters, which is faster on channels-last inputs."""
    if x.shape[0] < 4 or x.shape[2] % 2 or x.shape[3] % 2:
        return F.max_pool2d(x, 2)
    top = torch.maximum(x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2])
    bottom = torch.maximum(x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2])
    return torch.maximum(top, bottom)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
