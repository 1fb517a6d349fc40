"""app.engine: where work runs (the event loop or a thread) and the shared forward passes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

import anyio
import anyio.to_thread
import pytest
from fastapi.testclient import TestClient

from app.engine import run_to_completion
from app.main import create_app
from app.settings import Settings
from tests.helpers import draw_seven, encode


def test_a_lone_request_runs_its_forward_pass_on_the_event_loop(
    real_client: TestClient, mnist_png: tuple[bytes, int]
) -> None:
    batcher = real_client.app.state.engine.batcher  # type: ignore[attr-defined]
    run, where = batcher.run, []

    def spy(items: list[object]) -> object:
        try:
            asyncio.get_running_loop()
            where.append("loop")
        except RuntimeError:
            where.append("thread")
        return run(items)

    batcher.run = spy
    response = real_client.post("/predict", content=mnist_png[0], headers={"content-type": "image/png"})
    assert response.status_code == 200
    assert response.json()["digit"] == mnist_png[1]
    assert where == ["loop"]  # alone in the worker: no hand-off to a thread and back
    assert batcher.alone()  # and the in-flight count is back to zero


def test_with_several_torch_threads_the_forward_pass_stays_on_a_thread(settings: Settings) -> None:
    settings = settings.model_copy(update={"torch_threads": 2})  # measured slower on the event loop
    with TestClient(create_app(settings)) as client:
        assert not client.app.state.engine.batcher.alone()  # type: ignore[attr-defined]


def test_work_on_a_thread_keeps_its_place_until_it_ends_even_when_the_request_gives_up() -> None:
    """A thread cannot be stopped: the request that gave up on it waits for it, so the work limit
    counts work that is really running."""
    limiter = anyio.CapacityLimiter(1)
    release = threading.Event()

    async def scenario() -> tuple[float, float]:
        task = asyncio.ensure_future(run_to_completion(anyio.to_thread.run_sync(release.wait, limiter=limiter)))
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.sleep(0.1)
        held_while_running = limiter.borrowed_tokens
        assert not task.done()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        return held_while_running, limiter.borrowed_tokens

    assert asyncio.run(scenario()) == (1, 0)


def test_the_works_error_is_raised_and_let_go_without_a_reference_cycle() -> None:
    """An upload the work could not read is freed as soon as its error has been answered, not at
    the next full collection: the error, raised to the request, must not tie the frame that awaited
    it into a reference cycle (the upload, in its traceback's frames, would wait with it)."""

    class Upload:
        pass

    def unreadable(upload: Upload) -> None:
        raise ValueError("unreadable")

    async def scenario() -> weakref.ref[Upload]:
        upload = Upload()
        held = weakref.ref(upload)
        with ThreadPoolExecutor(1) as pool:
            work = asyncio.get_running_loop().run_in_executor(pool, unreadable, upload)
            del upload
            with contextlib.suppress(ValueError):
                await run_to_completion(work)
            del work
        return held

    gc.collect()
    gc.disable()
    try:
        held = asyncio.run(scenario())
        left = held() is not None
    finally:
        gc.enable()
    assert not left


def test_a_number_is_segmented_on_a_decoding_thread_however_small(client: TestClient) -> None:
    """Segmentation of a small image full of specks costs tens of ms: never on the event loop."""
    predictor = client.app.state.engine.predictor  # type: ignore[attr-defined]
    threads: list[str] = []
    original = predictor.preprocess_number

    def recording(*args: object) -> object:
        threads.append(threading.current_thread().name)
        return original(*args)

    predictor.preprocess_number = recording
    r = client.post(
        "/predict/number", content=encode(draw_seven().resize((60, 60))), headers={"content-type": "image/png"}
    )
    assert r.status_code in (200, 422)
    assert len(threads) == 1
    assert threads[0].startswith("digits-decode")
