"""Training-time augmentation of MNIST batches: what real uploads do after the MNIST-style
preprocessing (slant, rotation, aspect, off-centre mass, pen width), and, optionally, the smooth
local wobble of a hand (elastic distortion, Simard et al. 2003)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment(x: torch.Tensor, gen: torch.Generator, elastic: float = 0.0) -> torch.Tensor:
    """Random affine (rotation, scale, shear, shift) and stroke thickness, on a (B, 1, 28, 28) batch.

    Covers what real uploads do after MNIST-style preprocessing: slanted and rotated writing,
    other aspect ratios, off-centre mass, thin pens and fat markers. With `elastic` (pixels), each
    image is also bent by a smooth field: random shifts of that spread at a 4x4 grid of points,
    interpolated bicubically between them. Without it the generator is drawn from exactly as before.
    """
    b = x.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=gen)

    angle = uniform(-15, 15) * math.pi / 180
    scale = uniform(0.85, 1.15)
    aspect = uniform(-0.1, 0.1)
    shear = uniform(-0.3, 0.3)
    sx, sy = scale * (1 + aspect), scale * (1 - aspect)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # inverse map (output -> input coordinates) of rotate . shear . scale
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = cos / sx
    theta[:, 0, 1] = (-sin + shear * cos) / sx
    theta[:, 1, 0] = sin / sy
    theta[:, 1, 1] = (cos + shear * sin) / sy
    theta[:, :, 2] = (torch.rand(b, 2, generator=gen) - 0.5) * (2 * 2.5 / 14)  # +-2.5 px
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, H, W, 2), x then y in [-1, 1]
    if elastic > 0:
        h, w = x.shape[-2:]
        shifts = torch.randn(b, 2, 4, 4, generator=gen) * elastic  # pixels
        field = F.interpolate(shifts, size=(h, w), mode="bicubic", align_corners=True)  # (B, 2, H, W)
        grid = grid + field.permute(0, 2, 3, 1) * torch.tensor([2 / w, 2 / h])
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # stroke thickness at 2x resolution: a third thicker, a sixth thinner, the rest unchanged
    pick = torch.rand(b, generator=gen)
    up = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)  # (B, 1, 56, 56)
    thick = F.avg_pool2d(F.max_pool2d(up, 3, 1, 1), 2)  # (B, 1, 28, 28)
    thin = F.avg_pool2d(-F.max_pool2d(-up, 3, 1, 1), 2)
    x = torch.where((pick < 1 / 3).view(b, 1, 1, 1), thick, x)
    x = torch.where((pick > 5 / 6).view(b, 1, 1, 1), thin, x)
    return x.clamp(0, 1)
