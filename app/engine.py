"""The engine: the loaded model, the dynamic batcher and the limit on concurrent work, built once
in the lifespan and handed to every request path (`app.deps.EngineDep`, `app.fastpath`).

It decides where work runs. Small images are preprocessed on the event loop (handing them to a
thread and back costs more than the work); larger ones on a worker thread, at most `work_threads`
at once in a worker (CPU-bound work gains nothing from more threads than cores, and each image in
progress holds its decoded pixels). Single images then join a shared forward pass (`Batcher`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import anyio
import anyio.to_thread
import numpy as np

from app.batcher import Batcher
from app.predictor import Answer, Explanation, Predictor
from app.settings import Settings
from model.checkpoint import LoadedModel
from model.decode import open_image
from model.errors import PreprocessError
from model.preprocess import preprocess_opened

#: Images up to this many pixels are preprocessed on the event loop: the drawing page's 280x280
#: canvas fits (bench/README.md, "Inline preprocessing"); the loop is held a few ms at worst.
INLINE_PIXELS = 300 * 300


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
        self.limiter = anyio.CapacityLimiter(work_threads)
        self.batcher: Batcher[np.ndarray, Answer] = Batcher(
            predictor.predict_images, max_batch, batch_wait, self.limiter, alone
        )

    @classmethod
    async def start(
        cls,
        settings: Settings,
        on_inference: Callable[[Sequence[Answer]], None] | None,
        requests_in_flight: Callable[[], int],
    ) -> Engine:
        """Load, verify and warm up the checkpoint (on a thread; raises CheckpointError)."""
        predictor = await anyio.to_thread.run_sync(
            Predictor.load, settings.checkpoint, settings.max_pixels, on_inference
        )
        # a lone request's forward pass on the event loop: faster with one torch thread a worker,
        # slower with more (bench/README.md, "Lone requests on the event loop")
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

    @property
    def model(self) -> LoadedModel:
        return self.predictor.model

    async def predict(self, data: bytes) -> Answer:
        """One image: preprocessed (inline when small, else on a worker thread), then batched."""
        opened = open_image(data, self.predictor.max_pixels)  # the header only
        width, height = opened.size
        if width * height <= INLINE_PIXELS:
            pre = preprocess_opened(opened, data)
        else:
            pre = await anyio.to_thread.run_sync(preprocess_opened, opened, data, limiter=self.limiter)
        return await self.batcher.submit(pre.image)

    async def predict_many(self, images: Sequence[bytes]) -> list[Answer | PreprocessError]:
        """Several images in one forward pass, on a worker thread; a bad image's error in its slot."""
        return await anyio.to_thread.run_sync(self.predictor.predict_many, images, limiter=self.limiter)

    async def explain(self, data: bytes) -> tuple[Answer, Explanation]:
        """One image with what the model saw and where it looked (a backward pass, on a worker thread)."""
        return await anyio.to_thread.run_sync(self.predictor.explain_bytes, data, limiter=self.limiter)
