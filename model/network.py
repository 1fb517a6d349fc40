"""The tutorial CNN: two conv/pool/ReLU blocks, then two fully connected layers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, x = self.features(x)  # (B, 36, 7, 7)
        x = x.flatten(1)  # (B, 1764)
        x = torch.relu(self.fc1(x))  # (B, 128)
        logits: torch.Tensor = self.fc2(x)  # (B, 10)
        return logits


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
