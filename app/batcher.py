"""Dynamic batching: concurrent single-image requests share one forward pass.

Each request's image is preprocessed on its own, then queued here. One drain task runs a forward
pass over everything queued (up to `max_batch`) on a worker thread; whatever arrives meanwhile
forms the next batch. A lone request is therefore not delayed (nothing waits for company unless
`max_wait` is set), and a crowd is served in batches. Answers go back to their own callers in
order; a batch that fails fails only its own requests.

A lone request in an otherwise idle worker (`alone()`) runs on the event loop itself: handing it
to a thread and back costs more CPU than its forward pass. Under a crowd the thread stays, so the
loop reads and preprocesses the next requests meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import anyio
import anyio.to_thread

In = TypeVar("In")
Out = TypeVar("Out")


class Batcher(Generic[In, Out]):
    def __init__(
        self,
        run: Callable[[Sequence[In]], list[Out]],
        max_batch: int,
        max_wait: float,
        limiter: anyio.CapacityLimiter,
        alone: Callable[[], bool] = lambda: False,
    ) -> None:
        self.run = run  # N inputs -> N answers, in order; called on a worker thread (or inline, above)
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.limiter = limiter
        self.alone = alone  # True when no other request is in this worker
        self._queue: list[tuple[In, asyncio.Future[Out]]] = []
        self._drain_task: asyncio.Task[None] | None = None

    async def submit(self, item: In) -> Out:
        """Queue one input; its answer, once the batch it joins has run."""
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._drain_task is None or self._drain_task.done():
            self._drain_task = asyncio.create_task(self._drain())
        return await future

    async def submit_many(self, items: Sequence[In]) -> list[Out]:
        """Queue several inputs at once (they join the same batches as single ones); their answers,
        in order."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Out]] = []
        for item in items:
            futures.append(loop.create_future())
            self._queue.append((item, futures[-1]))
        if self._drain_task is None or self._drain_task.done():
            self._drain_task = asyncio.create_task(self._drain())
        return list(await asyncio.gather(*futures))

    async def _drain(self) -> None:
        while self._queue:
            if self.max_wait > 0 and len(self._queue) < self.max_batch:
                await asyncio.sleep(self.max_wait)  # deliberate wait for company, off by default
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            live = [(item, f) for item, f in batch if not f.done()]  # callers that gave up are skipped
            if not live:
                continue
            items = [item for item, _ in live]
            try:
                if len(items) == 1 and self.alone():
                    answers = self.run(items)
                else:
                    answers = await anyio.to_thread.run_sync(self.run, items, limiter=self.limiter)
            except Exception as e:  # noqa: BLE001 - handed to this batch's callers, who answer 500
                for _, future in live:
                    if not future.done():
                        future.set_exception(e)
                continue
            for (_, future), answer in zip(live, answers, strict=True):
                if not future.done():
                    future.set_result(answer)
