"""Inference: the loaded, verified checkpoint behind a small, HTTP-free interface."""

from __future__ import annotations

import copy
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from model.checkpoint import LoadedModel, load_checkpoint
from model.explain import png_diverging, png_gray, saliency
from model.network import Net
from model.preprocess import PreprocessError, open_image, preprocess, preprocess_opened, to_tensor

if TYPE_CHECKING:
    from app.batcher import Batcher

log = logging.getLogger("app.predictor")


def inference_net(net: Net) -> Callable[[torch.Tensor], torch.Tensor]:
    """The network as the service runs it, for (N, 1, 28, 28) inputs; `net` itself is left as it is.

    Net.forward's layers on channels-last copies of the weights: on one thread 1.4x eager NCHW's
    throughput at batch 1 and 2x from batch 8 on, outputs within 3e-6. The layers are called
    directly (no Module hooks), with the pooling below: 5-10% less time again from batch 1 to 64.
    (TorchScript's optimize_for_inference was faster alone, but its oneDNN kernels ignore
    torch.set_num_threads: two workers on two cores then fought over them, and the batch endpoint
    lost 60% of its throughput in bench.py.)
    """
    own = copy.deepcopy(net).eval()
    own.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # documented; untyped in torch
    conv1, conv2, fc1, fc2 = own.conv1, own.conv2, own.fc1, own.fc2

    def forward(batch: torch.Tensor) -> torch.Tensor:
        x = batch.contiguous(memory_format=torch.channels_last)
        x = _max_pool_2x2(F.conv2d(x, conv1.weight, conv1.bias, conv1.stride, conv1.padding)).relu_()
        x = _max_pool_2x2(F.conv2d(x, conv2.weight, conv2.bias, conv2.stride, conv2.padding)).relu_()
        x = F.linear(x.flatten(1), fc1.weight, fc1.bias).relu_()
        return F.linear(x, fc2.weight, fc2.bias)

    return forward


def _max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """nn.MaxPool2d(2), exactly. From 4 images on, the elementwise maximum of the four strided
    quarters: on channels-last inputs 1.3x (batch 64) to 2x (batch 8-16) faster than max_pool2d."""
    if x.shape[0] < 4 or x.shape[2] % 2 or x.shape[3] % 2:
        return F.max_pool2d(x, 2)
    top = torch.maximum(x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2])
    bottom = torch.maximum(x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2])
    return torch.maximum(top, bottom)


#: Images up to this many pixels are preprocessed on the event loop, not handed to a thread and back:
#: the hand-over costs about 0.2 ms of CPU (GIL hand-offs with the loop), a tenth of a 280x280 canvas's
#: 2 ms (the drawing page's size) and more than a 28x28 upload's 0.1 ms. The loop is held up to
#: about 13 ms by the worst image this size (a photo, uneven light) measured.
INLINE_PIXELS = 300 * 300


#: The most images in one forward pass. A pass's largest activation (conv1's output) is 37 KB an
#: image; glibc keeps heap memory sized for the largest allocation it has freed, so 64-image passes
#: left each worker about 10 MB larger than 32-image ones did (after the bench's loads: 305-309 MB
#: against 296-301), for 3-6% more forward time at 64 images; and /predict/batch's configurable
#: file limit (up to 1,024) no longer sets how much memory one pass takes.
FORWARD_CHUNK = 32


@dataclass(frozen=True)
class Answer:
    digit: int
    confidence: float
    probabilities: list[float]


@dataclass(frozen=True)
class Explanation:
    input_png: bytes  # the 28x28 image the model saw, white ink on black
    saliency_png: bytes  # gradient x input for the answer: red for, blue against


class Predictor:
    """Turns image bytes into answers. Thread-safe: the network is only read.

    The async methods bound how many images a worker decodes and runs at once: CPU-bound work gains
    nothing from more threads than cores, and each image in progress holds its decoded pixels, so
    an unbounded number would let memory grow with the crowd (measured: +127 MB in a 60 s soak).
    """

    def __init__(
        self,
        model: LoadedModel,
        max_pixels: int,
        on_inference: Callable[[Sequence[Answer]], None] | None = None,
    ) -> None:
        self.net = inference_net(model.net)  # what answers; model.net (eager) stays for saliency maps
        self.model = model
        self.max_pixels = max_pixels
        self.on_inference = on_inference

    @classmethod
    def load(
        cls, checkpoint: Path, max_pixels: int, on_inference: Callable[[Sequence[Answer]], None] | None = None
    ) -> Predictor:
        """Load and verify the checkpoint (raises CheckpointError), then warm up."""
        predictor = cls(load_checkpoint(checkpoint), max_pixels, None)
        predictor.warm_up()
        predictor.on_inference = on_inference
        return predictor

    @property
    def version(self) -> str:
        return self.model.version

    async def answer(self, data: bytes, limiter: anyio.CapacityLimiter, batcher: Batcher) -> Answer:
        """Preprocess (on a worker thread, at most `limiter` at once, unless small), then join a batch."""
        opened = open_image(data, self.max_pixels)  # the header only: tens of microseconds
        width, height = opened.size
        if width * height <= INLINE_PIXELS:
            pre = preprocess_opened(opened, data)
        else:
            pre = await anyio.to_thread.run_sync(preprocess_opened, opened, data, limiter=limiter)
        return await batcher.submit(pre.image)

    async def answer_many(
        self, images: Sequence[bytes], limiter: anyio.CapacityLimiter
    ) -> list[Answer | PreprocessError]:
        """`predict_many` on a worker thread, sharing the same limit."""
        return await anyio.to_thread.run_sync(self.predict_many, images, limiter=limiter)

    def warm_up(self) -> None:
        """One request's whole path on a drawn digit, so the first real request is not the slow one."""
        img = Image.new("L", (120, 120), 255)
        ImageDraw.Draw(img).line([(30, 20), (90, 20), (55, 100)], fill=0, width=9)  # a 7
        buf = io.BytesIO()
        img.save(buf, "PNG")
        answer = self.predict_bytes(buf.getvalue())
        self.predict_tensors(torch.zeros(8, 1, 28, 28))
        log.info("warm-up done: a drawn 7 reads as %d (confidence %.3f)", answer.digit, answer.confidence)

    def predict_images(self, images: Sequence[np.ndarray]) -> list[Answer]:
        """28x28 preprocessed images (white ink on black, in [0, 1]) -> answers, in one forward pass."""
        return self.predict_tensors(to_tensor(np.stack(images)))

    @torch.inference_mode()
    def predict_tensors(self, batch: torch.Tensor) -> list[Answer]:
        """(N, 1, 28, 28) normalised inputs -> N answers, in order, in forward passes of at most
        FORWARD_CHUNK images."""
        if len(batch) > FORWARD_CHUNK:
            logits = torch.cat([self.net(part) for part in batch.split(FORWARD_CHUNK)])
        else:
            logits = self.net(batch)  # (N, 10)
        probs = torch.softmax(logits / self.model.temperature, dim=1).numpy().astype(np.float64)
        rows: list[list[float]] = probs.tolist()  # whole-batch conversions: per-row numpy calls cost more
        digits: list[int] = probs.argmax(axis=1).tolist()
        answers = [Answer(digit=d, confidence=row[d], probabilities=row) for d, row in zip(digits, rows, strict=True)]
        if self.on_inference is not None:
            self.on_inference(answers)
        return answers

    def predict_bytes(self, data: bytes) -> Answer:
        """One image. Raises a PreprocessError subclass for bad input."""
        return self.predict_tensors(preprocess(data, self.max_pixels).tensor.unsqueeze(0))[0]

    def explain_bytes(self, data: bytes) -> tuple[Answer, Explanation]:
        """One image, with what the model saw and where it looked."""
        pre = preprocess(data, self.max_pixels)
        answer = self.predict_tensors(pre.tensor.unsqueeze(0))[0]
        heat = saliency(self.model.net, pre.image, answer.digit)
        return answer, Explanation(input_png=png_gray(pre.image), saliency_png=png_diverging(heat))

    async def answer_explained(self, data: bytes, limiter: anyio.CapacityLimiter) -> tuple[Answer, Explanation]:
        return await anyio.to_thread.run_sync(self.explain_bytes, data, limiter=limiter)

    def predict_many(self, images: Sequence[bytes]) -> list[Answer | PreprocessError]:
        """Several images in one forward pass; a bad image gives its error in its slot."""
        results: list[Answer | PreprocessError] = []
        inputs, slots = [], []
        for i, data in enumerate(images):
            try:
                inputs.append(preprocess(data, self.max_pixels).image)
                slots.append(i)
                results.append(PreprocessError("pending"))
            except PreprocessError as e:
                results.append(e)
        if inputs:  # stacked and normalised once: per-image tensors were 15% of this endpoint's time
            for i, answer in zip(slots, self.predict_images(inputs), strict=True):
                results[i] = answer
        return results
