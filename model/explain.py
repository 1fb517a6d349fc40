"""What the model saw and where it looked: the preprocessed input and a gradient x input saliency map."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from model.contract import to_tensor
from model.network import Net


def saliency(net: Net, image: np.ndarray, digit: int) -> np.ndarray:
    """Gradient x input for `digit`'s logit, on the [0, 1] image: (28, 28), signed.

    Positive where ink pushes towards `digit`, negative where it pushes away; zero where there is
    no ink, since the product is taken with the image itself, not the normalised tensor.
    """
    pixels = torch.as_tensor(image, dtype=torch.float32).requires_grad_(True)  # (28, 28)
    with torch.enable_grad():
        logits = net(to_tensor(pixels).unsqueeze(0))  # (1, 10)
        logits[0, digit].backward()
    assert pixels.grad is not None
    result: np.ndarray = (pixels.grad * pixels).detach().numpy()
    return result


def png_gray(image: np.ndarray) -> bytes:
    """(H, W) in [0, 1] -> 8-bit grayscale PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8), "L").save(buf, "PNG")
    return buf.getvalue()


def png_diverging(values: np.ndarray) -> bytes:
    """(H, W) signed -> RGB PNG: red for positive, blue for negative, black for zero, scaled to the largest."""
    peak = float(np.abs(values).max()) or 1.0
    scaled = values / peak
    rgb = np.zeros((*values.shape, 3), dtype=np.uint8)
    rgb[..., 0] = (np.clip(scaled, 0, 1) * 255).round()
    rgb[..., 2] = (np.clip(-scaled, 0, 1) * 255).round()
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "PNG")
    return buf.getvalue()
