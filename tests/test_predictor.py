"""app.predictor: answers from the loaded checkpoint."""

from __future__ import annotations

import pytest
import torch

from app.predictor import Predictor
from model.checkpoint import DEFAULT_CHECKPOINT


@pytest.mark.parametrize("n", [1, 3, 70])  # 70: more than one forward pass (FORWARD_CHUNK)
def test_batched_answers_match_single_answers(n: int) -> None:

    predictor = Predictor.load(DEFAULT_CHECKPOINT, 1_000_000)
    inputs = torch.randn(n, 1, 28, 28)
    together = predictor.predict_tensors(inputs)
    alone = [predictor.predict_tensors(inputs[i : i + 1])[0] for i in range(n)]
    assert len(together) == n
    for a, b in zip(together, alone, strict=True):
        assert a.digit == b.digit
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-5)  # float rounding only
