"""POST /predict without FastAPI's routing and dependency solving: its most common request,
answered by the same pieces the route calls (`app.uploads`, the engine, `app.responses`).

Routing and dependency solving cost several times a 28x28 upload's preprocessing (bench/LOG.md,
"The fast path"). This pure ASGI layer takes POST /predict with no query string once the model is
ready; everything else (`?explain=true`, any other query, requests before the model is ready, every
other route) goes on to FastAPI unchanged.
"""

from __future__ import annotations

from types import SimpleNamespace

from starlette.types import ASGIApp, Receive, Scope, Send

from app.deps import ready_engine
from app.errors import ServiceError, error_body, mapped
from app.responses import accepted, prediction_body, send_json
from app.uploads import read_single
from model.imaging.errors import PreprocessError

PATH = "/predict"
ROUTE = SimpleNamespace(path=PATH)  # what the router puts in the scope; metrics and logs read its path


class FastPredict:
    def __init__(self, app: ASGIApp, max_upload_bytes: int) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST" or scope["query_string"]:
            await self.app(scope, receive, send)
            return
        engine = ready_engine(scope["app"])
        if engine is None:
            await self.app(scope, receive, send)  # the route answers 503 not_ready
            return
        scope["route"] = ROUTE
        request_id = scope["state"].get("request_id")
        try:
            body = await _read_body(receive)
            if body is None:
                return  # the client went away
            upload = read_single(_header(scope, b"content-type"), body, self.max_upload_bytes)
            answer = accepted(await engine.predict(upload.data))
        except (ServiceError, PreprocessError) as e:
            status, code, message, headers = mapped(e)
            raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
            await send_json(send, status, error_body(code, message, request_id), raw)
            return
        await send_json(send, 200, prediction_body(answer))


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return ""


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body (its size is bounded by `RequestContext`), or None if the client disconnected."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
