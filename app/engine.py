"""The engine: the loaded model, the dynamic batcher and the limit on concurrent work, built once
in the lifespan and handed to every request path (`app.deps.EngineDep`, `app.fastpath`).

It decides where work runs. Small images are preprocessed on the event loop (handing them to a
thread and back costs more than the work); larger ones on one of `work_threads` decoding threads
(CPU-bound work gains nothing from more threads than cores, and each image in progress holds its
decoded pixels), at a lower CPU priority, so that a crowd of large uploads does not starve the
small ones. Single images then join a shared forward pass (`Batcher`) on a thread of its own.

It also swaps the model (`reload`): the new checkpoint is loaded, verified and warmed up on a thread
while the old one keeps answering, then replaces it in one assignment; each forward pass reads the
predictor once, so every answer comes whole from one model and says which (`Answer.model_version`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import numpy as np

from app.batcher import Batcher
from app.budget import MemoryBudget
from app.predictor import Answer, Explanation, Predictor
from app.settings import Settings
from model.checkpoint import CheckpointError, LoadedModel, checkpoint_from_bytes, read_checkpoint
from model.imaging.decode import open_image
from model.imaging.errors import PreprocessError
from model.imaging.number import NumberDigit, choose
from model.imaging.preprocess import preprocess_opened

#: Images up to this many pixels are preprocessed on the event loop: the drawing page's 280x280
#: canvas fits (bench/LOG.md, "Inline preprocessing"); the loop is held a few ms at worst.
INLINE_PIXELS = 300 * 300

T = TypeVar("T")
#: What the batcher queues: a 28x28 preprocessed image and its input lane (model.imaging.preprocess.LANES).
Input = tuple[np.ndarray, str]

#: How much lower the decoding threads' CPU priority is (nice), where the system allows it.
DECODE_NICENESS = 10


def lower_priority() -> None:
    """Run this thread at DECODE_NICENESS: Linux schedules threads apart, by their own id."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), DECODE_NICENESS)


async def run_to_completion(work: Awaitable[T]) -> T:
    """Await `work` (a worker thread's) to its end even when the request is cancelled meanwhile
    (its deadline, the client gone); then the cancellation goes on. A thread cannot be stopped, so
    a request that gave up on it must not hand back its place under the work limit while it still
    runs: the limit counts work that is really running. Bounded decoding keeps the wait short."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait((task,))  # (never raises the work's error, nor cancels it)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    error = task.exception()
    if error is None:
        return task.result()
    # raised from here while `task` (and `work`, the same future) still held it, the error's
    # traceback would take this frame into a reference cycle with it, keeping the upload and its
    # arrays until a full collection
    del task, work
    try:
        raise error
    finally:
        del error


class ImageUnreadable(Exception):
    """Image `index` of a request could not be read (`predict_encoded`)."""

    def __init__(self, index: int, error: PreprocessError) -> None:
        super().__init__(f"image {index}: {error}")
        self.index = index
        self.error = error


@dataclass(frozen=True)
class Reloaded:
    """What a reload did."""

    previous_version: str
    version: str
    checkpoint: Path
    changed: bool


class Engine:
    """Answers for image bytes, with the service's concurrency policy. HTTP-free."""

    def __init__(
        self,
        predictor: Predictor,
        work_threads: int,
        max_batch: int,
        batch_wait: float,
        alone: Callable[[], bool] = lambda: False,
    ) -> None:
        self.predictor = predictor
        # large uploads are decoded on `work_threads` threads of lower CPU priority, so that small
        # requests, preprocessed on the event loop, are not starved by a crowd of large ones
        self.decoders = ThreadPoolExecutor(work_threads, "digits-decode", initializer=lower_priority)
        # forward passes on a thread of their own: a few milliseconds each, they must not queue
        # behind large uploads' decoding (the batcher runs one pass at a time)
        self.batcher: Batcher[Input, Answer] = Batcher(
            self._forward, max_batch, batch_wait, anyio.CapacityLimiter(1), alone
        )
        self.on_reload: Callable[[Reloaded | None, str], None] | None = None  # (what changed or None, outcome)
        self._reloading = asyncio.Lock()

    @classmethod
    async def start(
        cls,
        settings: Settings,
        on_inference: Callable[[Sequence[Answer]], None] | None,
        requests_in_flight: Callable[[], int],
        checkpoint: Path | None = None,
    ) -> Engine:
        """Load, verify and warm up the checkpoint (on a thread; raises CheckpointError): `checkpoint`,
        else DIGITS_CHECKPOINT."""
        budget = MemoryBudget(settings.work_memory_mb * 1024 * 1024)
        predictor = await anyio.to_thread.run_sync(
            Predictor.load,
            checkpoint or settings.checkpoint,
            settings.max_pixels,
            on_inference,
            budget,
            settings.refusal_rate,
        )
        # a lone request's forward pass on the event loop: faster with one torch thread a worker,
        # slower with more (bench/LOG.md, "Lone requests on the event loop")
        one_thread = settings.effective_torch_threads == 1
        return cls(
            predictor,
            settings.work_threads,
            settings.max_batch_size,
            settings.batch_wait_ms / 1000,
            alone=(lambda: requests_in_flight() <= 1) if one_thread else (lambda: False),
        )

    @property
    def version(self) -> str:
        return self.predictor.version

    def _forward(self, inputs: Sequence[Input]) -> list[Answer]:
        images, lanes = zip(*inputs, strict=True)
        return self.predictor.predict_images(images, lanes=lanes)  # whichever model is loaded when the pass starts

    async def reload(self, checkpoint: Path) -> Reloaded:
        """Load, verify (SHA-256, format, preprocessing) and warm up `checkpoint` on a thread while
        the current model answers, then swap it in. Raises CheckpointError and keeps the current
        model when the new one fails any check. One reload at a time; the file already serving is
        not loaded again (outcome "unchanged")."""
        async with self._reloading:
            old = self.predictor
            try:  # one read: the bytes hashed are the bytes loaded, whatever replaces the file meanwhile
                data, digest = await anyio.to_thread.run_sync(read_checkpoint, checkpoint)
                if digest == old.model.sha256:
                    done = Reloaded(old.version, old.version, checkpoint, changed=False)
                    self._report(done, "unchanged")
                    return done

                def prepare() -> Predictor:
                    model = checkpoint_from_bytes(checkpoint, data, digest)
                    return Predictor.warmed(model, old.max_pixels, old.on_inference, old.budget, old.refusal_rate)

                new = await anyio.to_thread.run_sync(prepare)
            except OSError as e:
                self._report(None, "failed")
                raise CheckpointError(f"{checkpoint}: cannot read it ({e.strerror or e})") from None
            except CheckpointError:
                self._report(None, "failed")
                raise
            self.predictor = new  # one assignment: the next forward pass answers with the new model
            done = Reloaded(old.version, new.version, checkpoint, changed=True)
            self._report(done, "loaded")
            return done

    def _report(self, done: Reloaded | None, outcome: str) -> None:
        if self.on_reload is not None:
            self.on_reload(done, outcome)

    @property
    def model(self) -> LoadedModel:
        return self.predictor.model

    async def predict(self, data: bytes) -> Answer:
        """One image: preprocessed (inline when small, else on a worker thread), then batched."""
        opened = open_image(data, self.predictor.max_pixels)  # the header only
        width, height = opened.size
        if width * height <= INLINE_PIXELS:
            pre = preprocess_opened(opened, data)
            if pre.wide:  # perhaps digits that touch: the number path's look, off the event loop
                pre = await self.off_loop(self.predictor.one_digit, pre, data)
        else:
            pre = await self.off_loop(self.predictor.preprocess_opened, opened, data)
        return await self.batcher.submit((pre.image, pre.lane))

    async def predict_number(self, data: bytes) -> list[tuple[NumberDigit, Answer]]:
        """The digits of the number in one image, left to right, each with its box and answer: its
        groups of strokes preprocessed on a worker thread (segmentation costs up to tens of ms for a
        small image full of specks: never on the event loop), then through the batcher together,
        sharing forward passes with single requests (`model.imaging.number`)."""
        predictor = self.predictor
        opened = open_image(data, predictor.max_pixels)
        slots = await self.off_loop(predictor.preprocess_number, opened, data)
        answers = await self.batcher.submit_many([(image, slot.lane) for slot in slots for image in slot.images])
        return choose(slots, answers)

    async def predict_many(self, images: Sequence[bytes]) -> list[Answer | PreprocessError]:
        """Several images in one forward pass, on a worker thread; a bad image's error in its slot."""
        predictor = self.predictor  # one model for the whole batch, whatever a reload does meanwhile
        return await self.off_loop(predictor.predict_many, images)

    async def predict_encoded(self, images: Sequence[bytes]) -> list[Answer]:
        """Encoded images, preprocessed on a decoding thread, then through the batcher, sharing
        forward passes with single requests; ImageUnreadable for the first that cannot be read."""
        predictor = self.predictor

        def preprocess_all() -> list[Input]:
            inputs = []
            for i, data in enumerate(images):
                try:
                    pre = predictor.preprocess(data)
                    inputs.append((pre.image, pre.lane))
                except PreprocessError as e:
                    raise ImageUnreadable(i, type(e)(str(e))) from None
            return inputs

        return await self.batcher.submit_many(await self.off_loop(preprocess_all))

    async def predict_pixels(self, pixels: np.ndarray) -> list[Answer]:
        """(N, 28, 28) preprocessed images (0..1, white on black) through the batcher."""
        return await self.batcher.submit_many([(image, "clean") for image in pixels])

    async def explain(self, data: bytes) -> tuple[Answer, Explanation]:
        """One image with what the model saw and where it looked (a backward pass, on a worker thread)."""
        predictor = self.predictor
        return await self.off_loop(predictor.explain_bytes, data)

    async def off_loop(self, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)` on a decoding thread, awaited to its end (`run_to_completion`)."""
        return await run_to_completion(asyncio.get_running_loop().run_in_executor(self.decoders, work, *args))

    def close(self) -> None:
        self.decoders.shutdown(wait=False, cancel_futures=True)
