"""Dynamic batching: lone requests go alone, crowds share a forward pass, answers reach their callers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import anyio
import torch

from app.batcher import Batcher
from app.predictor import Answer


class FakeModel:
    """Answers each input with the number stored in its first pixel; records batch sizes."""

    def __init__(self, delay: float = 0.05, poison: float | None = None) -> None:
        self.delay = delay
        self.poison = poison
        self.sizes: list[int] = []
        self.threads: set[int] = set()

    def __call__(self, inputs: Sequence[torch.Tensor]) -> list[Answer]:
        self.sizes.append(len(inputs))
        self.threads.add(threading.get_ident())
        time.sleep(self.delay)
        values = [int(x[0, 0, 0]) for x in inputs]
        if self.poison is not None and self.poison in values:
            raise RuntimeError("bad batch")
        return [Answer(digit=v % 10, confidence=v / 1000, probabilities=[0.1] * 10, model_version="t") for v in values]


def tensor(value: int) -> torch.Tensor:
    return torch.full((1, 28, 28), float(value))


async def crowd(
    model: FakeModel, values: list[int], max_batch: int = 64, alone: bool = False
) -> list[Answer | BaseException]:
    batcher = Batcher(model, max_batch=max_batch, max_wait=0.0, limiter=anyio.CapacityLimiter(1), alone=lambda: alone)
    first = asyncio.create_task(batcher.submit(tensor(values[0])))
    await asyncio.sleep(0.01)  # the first request is alone: its batch starts at once
    rest = [asyncio.create_task(batcher.submit(tensor(v))) for v in values[1:]]
    return await asyncio.gather(first, *rest, return_exceptions=True)


def test_lone_request_goes_alone_and_the_crowd_is_batched() -> None:
    model = FakeModel()
    answers = asyncio.run(crowd(model, list(range(100, 111))))
    assert model.sizes == [1, 10]
    assert [a.confidence for a in answers] == [v / 1000 for v in range(100, 111)]  # type: ignore[union-attr]
    assert threading.get_ident() not in model.threads  # the forward pass ran off the event loop


def test_a_lone_request_in_an_idle_worker_runs_on_the_event_loop() -> None:
    model = FakeModel(delay=0.001)
    answers = asyncio.run(crowd(model, [7], alone=True))
    assert model.threads == {threading.get_ident()}  # no thread hop for a batch of one
    assert [a.digit for a in answers] == [7]  # type: ignore[union-attr]

    model = FakeModel()
    asyncio.run(crowd(model, list(range(1, 6)), alone=True))
    assert model.sizes == [1, 4]
    assert len(model.threads) == 2  # the batch of 4 went to a worker thread


def test_batches_respect_the_maximum() -> None:
    model = FakeModel()
    answers = asyncio.run(crowd(model, list(range(1, 22)), max_batch=8))
    assert model.sizes == [1, 8, 8, 4]
    assert [a.digit for a in answers] == [v % 10 for v in range(1, 22)]  # type: ignore[union-attr]


def test_a_failed_batch_fails_only_its_own_requests() -> None:
    model = FakeModel(poison=5)
    results = asyncio.run(crowd(model, [1, 2, 3, 4, 5, 6, 7, 8, 9], max_batch=4))
    assert model.sizes == [1, 4, 4]  # [1], [2 3 4 5] (poisoned), [6 7 8 9]
    assert isinstance(results[0], Answer)
    assert all(isinstance(r, RuntimeError) for r in results[1:5])
    assert all(isinstance(r, Answer) for r in results[5:])


def test_waiting_for_company_when_asked() -> None:
    model = FakeModel(delay=0.0)

    async def run() -> None:
        batcher = Batcher(model, max_batch=64, max_wait=0.05, limiter=anyio.CapacityLimiter(1))
        first = asyncio.create_task(batcher.submit(tensor(1)))
        await asyncio.sleep(0.01)
        await asyncio.gather(first, *(batcher.submit(tensor(v)) for v in range(2, 6)))

    asyncio.run(run())
    assert model.sizes == [5]
