"""model.contract: the input tensor is normalised as in training."""

from __future__ import annotations

import numpy as np
import pytest

from model.contract import to_tensor


def test_tensor_is_normalised_like_training(reference: np.ndarray) -> None:
    t = to_tensor(reference)
    assert t.shape == (1, 28, 28)
    assert float(t.min()) == pytest.approx((0 - 0.1307) / 0.3081)
    assert float(t.max()) == pytest.approx((1 - 0.1307) / 0.3081)
