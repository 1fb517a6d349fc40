"""The model's input contract: a 28x28 white-on-black digit, normalised as MNIST was.

Training, evaluation, checkpoints and the service all read these numbers from here; a checkpoint
trained with other ones is refused at load time.
"""

from __future__ import annotations

import numpy as np
import torch

#: Stored in every checkpoint; a checkpoint trained with other constants is refused.
PREPROCESS_CONSTANTS: dict[str, float | int] = {
    "version": 1,
    "size": 28,  # model input side
    "box": 20,  # the digit is fitted into box x box, as in MNIST
    "mean": 0.1307,  # MNIST training-set pixel mean and std, for input normalisation
    "std": 0.3081,
}
SIZE = int(PREPROCESS_CONSTANTS["size"])
BOX = int(PREPROCESS_CONSTANTS["box"])
MEAN = float(PREPROCESS_CONSTANTS["mean"])
STD = float(PREPROCESS_CONSTANTS["std"])
#: Centre of mass of MNIST training digits, (row, col): measured 13.99, 14.00.
COM_TARGET = (14.0, 14.0)


def to_tensor(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(..., 28, 28) in [0, 1] -> normalised float tensor with a channel axis: (..., 1, 28, 28)."""
    t = torch.as_tensor(image, dtype=torch.float32)
    return ((t - MEAN) / STD).unsqueeze(-3)
