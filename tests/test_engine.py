"""app.engine: where work runs (the event loop or a thread) and the shared forward passes."""

from __future__ import annotations

import asyncio

from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings


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
