"""app.middleware: request ids, body limits, deadlines, the generic 500, one log line a request."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from app.deadlines import Deadlines
from app.errors import ServiceError
from app.main import create_app
from app.metrics import Metrics
from app.middleware import RequestContext
from app.settings import Settings
from tests.helpers import error, photo_like_jpeg


def test_chunked_body_over_the_limit_is_cut_off(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"x" * 10_000  # 1 MB in all, with no content-length

    r = client.post("/predict", content=chunks(), headers={"content-type": "image/png"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


def test_unexpected_error_is_a_generic_500(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    batcher = client.app.state.engine.batcher  # type: ignore[attr-defined]

    def boom(inputs: object) -> None:
        raise RuntimeError("secret internals")

    original, batcher.run = batcher.run, boom
    with caplog.at_level(logging.ERROR, logger="app.access"):
        r = client.post("/predict", content=photo_like_jpeg(), headers={"content-type": "image/jpeg"})
    assert r.status_code == 500
    assert r.json() == error("internal_error", "internal server error", r)
    assert "secret" not in r.text
    assert any("secret internals" in (rec.exc_text or str(rec.exc_info)) for rec in caplog.records)
    batcher.run = original
    assert client.post("/predict", content=photo_like_jpeg(), headers={"content-type": "image/jpeg"}).status_code == 200


def test_request_id_is_echoed(client: TestClient) -> None:
    r = client.get("/health/live", headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = client.get("/health/live", headers={"x-request-id": "bad id with spaces"})
    assert len(r.headers["x-request-id"]) == 16
    assert " " not in r.headers["x-request-id"]


def test_one_structured_log_line_per_request(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="app.access"):
        r = client.get("/health/live")
    lines = [rec for rec in caplog.records if rec.name == "app.access"]
    assert len(lines) == 1
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["request_id"] == r.headers["x-request-id"]
    assert (fields["method"], fields["route"], fields["status"]) == ("GET", "/health/live", 200)
    assert fields["latency_ms"] >= 0


def test_cors_when_configured(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"cors_origins": ["http://example.test"]}))) as c:
        r = c.options("/predict", headers={"origin": "http://example.test", "access-control-request-method": "POST"})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "http://example.test"


def test_deadlines_cancel_only_the_late_and_leave_other_cancellations_alone() -> None:

    async def run() -> None:
        deadlines = Deadlines(0.05)

        async def request(seconds: float) -> str:
            task = asyncio.current_task()
            assert task is not None
            entry = deadlines.start(task)
            try:
                await asyncio.sleep(seconds)
                return "done"
            except asyncio.CancelledError:
                if not entry[1]:
                    raise
                task.uncancel()
                return "timed out"
            finally:
                deadlines.end(task)

        quick, slow, other = (asyncio.create_task(request(s)) for s in (0.01, 5, 5))
        await asyncio.sleep(0.02)
        other.cancel()  # the server's cancellation (a client gone), before the deadline: not a timeout
        assert await quick == "done"
        assert await slow == "timed out"
        with pytest.raises(asyncio.CancelledError):
            await other
        assert not deadlines._entries  # nothing left tracked

    asyncio.run(run())


def test_large_bodies_are_admitted_by_their_bytes() -> None:
    """Bodies over the default limit count their bytes while their request lasts: one that does not
    fit beside those already held is 503 `overloaded` before it is read, announced or not; small
    ones are not counted; the room comes back when the request ends."""

    async def run() -> None:
        release = asyncio.Event()

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                while (await receive()).get("more_body", False):
                    pass
            except ServiceError as e:  # as the app's error handlers answer it
                await send({"type": "http.response.start", "status": e.status, "headers": []})
                await send({"type": "http.response.body", "body": json.dumps({"error": {"code": e.code}}).encode()})
                return
            if scope["path"] == "/big/wait":
                await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        context = RequestContext(app, Metrics(), {"/big/": 1000}, default_limit=100, max_in_flight=10, timeout=5,
                                 large_bodies=1000)  # fmt: skip

        async def request(path: str, size: int, announced: bool = True) -> tuple[int, bytes]:
            sent: list[Message] = []
            chunks = [{"type": "http.request", "body": b"x" * 50, "more_body": True} for _ in range(size // 50)]
            chunks.append({"type": "http.request", "body": b"", "more_body": False})

            async def receive() -> Message:
                return chunks.pop(0) if chunks else {"type": "http.disconnect"}

            async def send(message: Message) -> None:
                sent.append(message)

            headers = [(b"content-length", str(size).encode())] if announced else []
            scope = {"type": "http", "method": "POST", "path": path, "headers": headers, "query_string": b""}
            await context(scope, receive, send)
            return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

        first = asyncio.create_task(request("/big/wait", 600))
        await asyncio.sleep(0.01)
        assert context.in_flight.large_bytes == 600
        status, body = await request("/big/now", 600)
        assert status == 503
        assert json.loads(body)["error"]["code"] == "overloaded"
        assert "large request bodies" in json.loads(body)["error"]["message"]
        status, body = await request("/big/now", 600, announced=False)  # counted as it streams in
        assert (status, json.loads(body)["error"]["code"]) == (503, "overloaded")
        assert (await request("/big/now", 350))[0] == 200  # fits beside the first
        assert (await request("/small", 100))[0] == 200  # not a large body: not counted
        release.set()
        assert (await first)[0] == 200
        assert context.in_flight.large_bytes == 0
        assert (await request("/big/now", 900))[0] == 200

    asyncio.run(run())
