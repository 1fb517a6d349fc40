"""Inference: the loaded, verified checkpoint behind a small, synchronous, HTTP-free interface."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from app.budget import MemoryBudget
from model.checkpoint import CheckpointError, LoadedModel, load_checkpoint
from model.contract import to_tensor
from model.explain import png_diverging, png_gray, saliency
from model.gate import inference_gate
from model.imaging.decode import Opened, open_image
from model.imaging.errors import PreprocessError, SeveralDigits
from model.imaging.number import NUMBER_SIDE, Slot, choose, preprocess_number_opened
from model.imaging.preprocess import LANES, WORK_SIDE, Preprocessed, preprocess_opened
from model.network import inference_forward

log = logging.getLogger("app.predictor")

#: Images up to this many pixels are decoded without a reservation from the memory budget: a few
#: hundred kilobytes at most, the drawing page's canvas among them.
SMALL_PIXELS = 300 * 300

#: The most images in one forward pass: bounds the largest activation, and with it the heap a
#: worker keeps, whatever the batch endpoint's file limit (bench/LOG.md, "Forward chunks").
FORWARD_CHUNK = 32


class ImageFailed(PreprocessError):
    """An unexpected failure on one image of a batch, reported in its slot."""

    code = "internal_error"


@dataclass(frozen=True)
class Answer:
    digit: int
    confidence: float
    probabilities: list[float]
    model_version: str  # the checkpoint that answered (a reload may swap it between requests)
    refused: bool = False  # the refusal score is under the refusal threshold: not a digit
    threshold: float | None = None  # that threshold; None when the checkpoint refuses nothing
    score: float | None = None  # the refusal score (model.refusal): the digit gate's or the confidence


@dataclass(frozen=True)
class Explanation:
    input_png: bytes  # the 28x28 image the model saw, white ink on black
    saliency_png: bytes  # gradient x input for the answer: red for, blue against


def refusal_thresholds(model: LoadedModel, rate: float | None) -> dict[str, float] | None:
    """The score under which `model` refuses an image, in each input lane, at the operating point
    `rate` (DIGITS_REFUSAL_RATE; None: each lane's default; 0: refusal off); None when it refuses
    nothing. CheckpointError when the checkpoint holds no such operating point."""
    if model.refusal is None or rate == 0:
        return None
    try:
        return {lane: model.refusal.threshold(rate, lane) for lane in LANES}
    except ValueError as e:
        raise CheckpointError(f"{model.path}: DIGITS_REFUSAL_RATE={rate}: {e}") from None


class Predictor:
    """Turns image bytes into answers. Thread-safe: the network is only read."""

    def __init__(
        self,
        model: LoadedModel,
        max_pixels: int,
        on_inference: Callable[[Sequence[Answer]], None] | None = None,
        budget: MemoryBudget | None = None,
        refusal_rate: float | None = None,
    ) -> None:
        self.net = inference_forward(model.net)  # what answers; model.net (eager) stays for saliency maps
        self.gate = None if model.gate is None else inference_gate(model.gate)  # the refusal score, if a gate
        self.model = model
        self.max_pixels = max_pixels
        self.on_inference = on_inference
        self.budget = budget
        self.refusal_rate = refusal_rate
        self.refuse_below = refusal_thresholds(model, refusal_rate)  # per input lane

    @classmethod
    def load(
        cls,
        checkpoint: Path,
        max_pixels: int,
        on_inference: Callable[[Sequence[Answer]], None] | None = None,
        budget: MemoryBudget | None = None,
        refusal_rate: float | None = None,
    ) -> Predictor:
        """Load and verify the checkpoint (raises CheckpointError, also when it cannot refuse at
        `refusal_rate`), then warm up."""
        return cls.warmed(load_checkpoint(checkpoint), max_pixels, on_inference, budget, refusal_rate)

    @classmethod
    def warmed(
        cls,
        model: LoadedModel,
        max_pixels: int,
        on_inference: Callable[[Sequence[Answer]], None] | None = None,
        budget: MemoryBudget | None = None,
        refusal_rate: float | None = None,
    ) -> Predictor:
        """A predictor of a loaded, verified model, warmed up (CheckpointError when the model
        cannot refuse at `refusal_rate`)."""
        predictor = cls(model, max_pixels, None, budget, refusal_rate)
        predictor.warm_up()
        predictor.on_inference = on_inference
        return predictor

    @property
    def version(self) -> str:
        return self.model.version

    def warm_up(self) -> None:
        """One request's whole path on a drawn digit, so the first real request is not the slow one."""
        img = Image.new("L", (120, 120), 255)
        ImageDraw.Draw(img).line([(30, 20), (90, 20), (55, 100)], fill=0, width=9)  # a 7
        buf = io.BytesIO()
        img.save(buf, "PNG")
        answer = self.predict_bytes(buf.getvalue())
        self.predict_tensors(torch.zeros(8, 1, 28, 28))
        log.info("warm-up done: a drawn 7 reads as %d (confidence %.3f)", answer.digit, answer.confidence)

    def predict_images(
        self, images: Sequence[np.ndarray], counted: bool = True, lanes: Sequence[str] | None = None
    ) -> list[Answer]:
        """28x28 preprocessed images (white ink on black, in [0, 1]) -> answers, in one forward pass."""
        return self.predict_tensors(to_tensor(np.stack(images)), counted, lanes)

    @torch.inference_mode()
    def predict_tensors(
        self, batch: torch.Tensor, counted: bool = True, lanes: Sequence[str] | None = None
    ) -> list[Answer]:
        """(N, 1, 28, 28) normalised inputs -> N answers, in order, in forward passes of at most
        FORWARD_CHUNK images; `counted`: answers given to a client (the metrics count them);
        `lanes`: the input lane of each (`model.imaging.preprocess.LANES`; None: all "clean"),
        whose refusal threshold applies."""
        parts = batch.split(FORWARD_CHUNK) if len(batch) > FORWARD_CHUNK else (batch,)
        logits = torch.cat([self.net(part) for part in parts]) if len(parts) > 1 else self.net(batch)  # (N, 10)
        probs = torch.softmax(logits / self.model.temperature, dim=1).numpy().astype(np.float64)
        rows: list[list[float]] = probs.tolist()  # whole-batch conversions: per-row numpy calls cost more
        digits: list[int] = probs.argmax(axis=1).tolist()
        version, below = self.version, self.refuse_below
        if below is None:
            answers = [Answer(d, row[d], row, version) for d, row in zip(digits, rows, strict=True)]
        else:
            if self.gate is None:
                scores = [row[d] for d, row in zip(digits, rows, strict=True)]
            else:
                scores = torch.cat([self.gate(part) for part in parts]).tolist()
            limits = [below["clean"]] * len(rows) if lanes is None else [below[lane] for lane in lanes]
            answers = [
                Answer(d, row[d], row, version, score < limit, limit, score)
                for d, row, score, limit in zip(digits, rows, scores, limits, strict=True)
            ]
        if self.on_inference is not None and counted:
            self.on_inference(answers)
        return answers

    def preprocess(self, data: bytes) -> Preprocessed:
        """`model.imaging.preprocess.preprocess` within this predictor's pixel cap and, for a large image,
        within its memory budget (waiting for room)."""
        return self.preprocess_opened(open_image(data, self.max_pixels), data)

    def preprocess_opened(self, opened: Opened, data: bytes) -> Preprocessed:
        """`preprocess` for an image whose header `open_image` has read."""
        width, height = opened.size
        if self.budget is None or width * height <= SMALL_PIXELS:
            return self.one_digit(preprocess_opened(opened, data), data)
        with self.budget.reserve(opened.decoded_bytes(WORK_SIDE)):
            pre = preprocess_opened(opened, data)
        return self.one_digit(pre, data)

    def one_digit(self, pre: Preprocessed, data: bytes) -> Preprocessed:
        """`pre`, unless its digit is wide (`Preprocessed.wide`) and the number path reads it as
        several digits that touch (printed ones, set close): then SeveralDigits, as for digits apart."""
        if not pre.wide:
            return pre
        slots = self.preprocess_number(open_image(data, self.max_pixels), data)
        found = len(choose(slots, self.predict_images([image for slot in slots for image in slot.images], False)))
        if found > 1:
            raise SeveralDigits(found)
        return pre

    def preprocess_number(self, opened: Opened, data: bytes) -> list[Slot]:
        """`model.imaging.number.preprocess_number` for an image whose header `open_image` has read, within
        this predictor's memory budget as `preprocess_opened` is."""
        width, height = opened.size
        if self.budget is None or width * height <= SMALL_PIXELS:
            return preprocess_number_opened(opened, data)
        with self.budget.reserve(opened.decoded_bytes(NUMBER_SIDE)):
            return preprocess_number_opened(opened, data)

    def predict_bytes(self, data: bytes) -> Answer:
        """One image. Raises a PreprocessError subclass for bad input."""
        pre = self.preprocess(data)
        return self.predict_tensors(pre.tensor.unsqueeze(0), lanes=(pre.lane,))[0]

    def explain_bytes(self, data: bytes) -> tuple[Answer, Explanation]:
        """One image, with what the model saw and where it looked."""
        pre = self.preprocess(data)
        answer = self.predict_tensors(pre.tensor.unsqueeze(0), lanes=(pre.lane,))[0]
        heat = saliency(self.model.net, pre.image, answer.digit)
        return answer, Explanation(input_png=png_gray(pre.image), saliency_png=png_diverging(heat))

    def predict_many(self, images: Sequence[bytes]) -> list[Answer | PreprocessError]:
        """Several images in one forward pass; a bad image gives its error in its slot.

        The errors kept are fresh copies, without the traceback, whose frames would hold the upload
        and its arrays until a full collection. An unexpected failure fails only its own slot."""
        results: list[Answer | PreprocessError] = []
        inputs, lanes, slots = [], [], []
        for i, data in enumerate(images):
            try:
                pre = self.preprocess(data)
                inputs.append(pre.image)
                lanes.append(pre.lane)
                slots.append(i)
                results.append(PreprocessError("pending"))
            except PreprocessError as e:
                results.append(type(e)(str(e)))
            except Exception:  # logged with its traceback; the other images are answered
                log.exception("image %d of a batch failed unexpectedly", i)
                results.append(ImageFailed("this image could not be read (internal error)"))
        if inputs:  # stacked and normalised once, not an image at a time
            for i, answer in zip(slots, self.predict_images(inputs, lanes=lanes), strict=True):
                results[i] = answer
        return results
