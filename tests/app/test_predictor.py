"""app.predictor: answers from the loaded checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from PIL import Image

from app.budget import MemoryBudget
from app.predictor import Answer, ImageFailed, Predictor
from model.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from model.imaging.errors import NoInk, NotAnImage
from tests.helpers import draw_seven, encode


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


def test_batch_errors_keep_no_traceback(tiny_checkpoint: Path) -> None:
    """A kept traceback's frames would hold the upload and its arrays until a full collection."""
    predictor = Predictor(load_checkpoint(tiny_checkpoint), 1_000_000)
    blank, garbage, seven = encode(Image.new("L", (400, 400), 255)), b"garbage" * 1000, encode(draw_seven())
    results = predictor.predict_many([blank, garbage, seven])
    assert [type(r) for r in results] == [NoInk, NotAnImage, Answer]
    for error in results[:2]:
        assert isinstance(error, Exception)
        assert error.__traceback__ is None
        assert error.__cause__ is None
        assert error.__context__ is None


def test_an_unexpected_failure_fails_only_its_slot(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    predictor = Predictor(load_checkpoint(tiny_checkpoint), 1_000_000)
    original = predictor.preprocess

    def flaky(data: bytes) -> object:
        if data == b"boom":
            raise RuntimeError("a bug")
        return original(data)

    monkeypatch.setattr(predictor, "preprocess", flaky)
    with caplog.at_level(logging.ERROR, logger="app.predictor"):
        results = predictor.predict_many([encode(draw_seven()), b"boom"])
    assert isinstance(results[0], Answer)
    assert isinstance(results[1], ImageFailed)
    assert (results[1].code, str(results[1])) == ("internal_error", "this image could not be read (internal error)")
    assert "a bug" in caplog.text


def test_large_images_are_decoded_within_the_budget(tiny_checkpoint: Path) -> None:
    seen: list[int] = []

    class Recording(MemoryBudget):
        def reserve(self, size: int):  # type: ignore[no-untyped-def]
            seen.append(size)
            return super().reserve(size)

    predictor = Predictor(load_checkpoint(tiny_checkpoint), 10_000_000, budget=Recording(1 << 30))
    predictor.predict_bytes(encode(draw_seven(size=(1000, 800), scale=5)))
    predictor.predict_bytes(encode(draw_seven(size=(200, 160))))  # small: no reservation
    assert seen == [1000 * 800 * 6]
