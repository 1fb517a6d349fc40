"""Request context as pure ASGI middleware: request id, body-size limit, one log line, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.budget import give_back_memory
from app.deadlines import Deadlines
from app.errors import Overloaded, PayloadTooLarge, error_body
from app.metrics import Metrics
from app.responses import encode

log = logging.getLogger("app.access")
REQUEST_ID_HEADER = "x-request-id"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


_ID_PREFIX = os.urandom(4).hex()  # per process: cheaper than a uuid4 a request (bench/LOG.md, "Request ids")
_ID_COUNTER = itertools.count()


def new_request_id() -> str:
    """16 hex digits, unique within the process and, by the random prefix, across processes."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFF:08x}"


#: After an early error response, up to this much of an unread request body is read and dropped
#: (never kept), so that a client still sending gets the response rather than a reset connection.
DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 5.0


#: Routes that answer even when the service is saturated: probes and scrapes must see the truth.
UNLIMITED_PREFIXES = ("/health/", "/metrics")


class InFlight:
    """Requests in flight in one worker, past the back-pressure check, and the bytes of large
    bodies held (one event loop: no lock)."""

    def __init__(self) -> None:
        self.count = 0
        self.large_bytes = 0


class RequestContext:
    """Per request: an id (echoed in X-Request-ID); the body limit, enforced while the body streams
    in; back-pressure (past `max_in_flight` requests at once, 503 with Retry-After at once); a
    deadline (`timeout` seconds, then 503); a generic 500 for anything unexpected; one structured
    log line and the metrics when the response is done."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        body_limits: dict[str, int],
        default_limit: int,
        max_in_flight: int,
        timeout: float,
        in_flight: InFlight | None = None,
        large_bodies: int | None = None,
        too_large: dict[int, str] | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.body_limits = body_limits  # a path, or a prefix ending in "/", -> its body limit
        self.prefix_limits = [(p, n) for p, n in body_limits.items() if p.endswith("/")]
        self.default_limit = default_limit
        # a limit -> the 413's message, naming the setting a person reads about (the default limit
        # is DIGITS_MAX_UPLOAD_BYTES plus room for the multipart wrapping, which is not documented)
        self.too_large = too_large or {}
        self.max_in_flight = max_in_flight
        self.timeout = timeout
        self.deadlines = Deadlines(timeout)
        self.in_flight = in_flight or InFlight()  # shared with the batcher, which reads it
        self.overloaded = f"the service is at its limit of {max_in_flight} requests in flight; retry shortly"
        # bodies over the default limit (batches, the inference protocol's) held at once, in bytes:
        # each is held whole, and copied, until its answer is sent
        self.large_bodies = large_bodies if large_bodies is not None else max(body_limits.values(), default=0)
        self.large_refusal = (
            f"the service holds {self.large_bodies} bytes of large request bodies at most, and has no room "
            "for this one now; retry shortly"
        )

    def body_limit(self, path: str) -> int:
        limit = self.body_limits.get(path)
        if limit is not None:
            return limit
        return next((n for prefix, n in self.prefix_limits if path.startswith(prefix)), self.default_limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _CLIENT_ID.match(given) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        limit = self.body_limit(scope["path"])
        message = self.too_large.get(limit, "")  # (empty: _Exchange says it in bytes)
        exchange = _Exchange(receive, send, request_id, limit, scope["path"], message)
        limited = not scope["path"].startswith(UNLIMITED_PREFIXES)
        try:
            declared = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            declared = 0
        exchange.hold = self._hold
        if declared > exchange.limit:  # refused before a byte of the body is read
            await exchange.send_error(413, PayloadTooLarge.code, exchange.too_large)
        elif limited and not self._hold(exchange, declared):  # no room for it: refused before it is read
            await exchange.send_error(503, Overloaded.code, self.large_refusal, {b"retry-after": b"1"})
        else:
            if limited:
                exchange.admit = self._admit
                if not declared and b"transfer-encoding" not in headers:
                    exchange.body_done = True  # no body to wait for: admitted now
            try:
                if exchange.admit is None or not exchange.body_done or self._admit(exchange):
                    await self._call_app(scope, exchange)
                else:
                    await exchange.send_error(503, Overloaded.code, self.overloaded, {b"retry-after": b"1"})
            finally:
                if exchange.admitted:
                    self.in_flight.count -= 1
        if exchange.held:
            self.in_flight.large_bytes -= exchange.held
            if self.in_flight.large_bytes == 0:  # the last large body gone: its freed pages back to the system
                asyncio.get_running_loop().run_in_executor(None, give_back_memory)
        seconds = time.perf_counter() - t0
        route = getattr(scope.get("route"), "path", None) or _known_path(scope)
        self.metrics.observe_request(route, scope["method"], exchange.status, seconds)
        fields = {
            "request_id": request_id,
            "method": scope["method"],
            "route": route,
            "path": scope["path"],
            "status": exchange.status,
            "latency_ms": round(seconds * 1000, 2),
        }
        log.info("request", extra={"fields": fields})

    def _hold(self, exchange: _Exchange, size: int) -> bool:
        """Count `size` bytes of a large body (over the default limit) as held, if there is room
        under `large_bodies` beside the others; False when there is none."""
        if size <= self.default_limit or size <= exchange.held:
            return True
        if self.in_flight.large_bytes - exchange.held + size > self.large_bodies:
            exchange.refusal = self.large_refusal
            return False
        self.in_flight.large_bytes += size - exchange.held
        exchange.held = size
        return True

    def _admit(self, exchange: _Exchange) -> bool:
        """Count a request in flight once its body is in (a slow upload holds no place the finished
        ones need); False when the worker is at its limit."""
        if self.in_flight.count >= self.max_in_flight:
            exchange.refusal = self.overloaded
            return False
        self.in_flight.count += 1
        exchange.admitted = True
        return True

    async def _call_app(self, scope: Scope, exchange: _Exchange) -> None:
        task = asyncio.current_task()
        assert task is not None  # ASGI apps run in tasks
        deadline = self.deadlines.start(task)
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except asyncio.CancelledError:
            if not deadline[1]:
                raise  # not ours: the server's (shutdown, a client gone), so it goes on
            task.uncancel()
            log.error("request %s timed out after %.1f s", exchange.request_id, self.timeout)
            if not exchange.started:
                message = f"no answer within {self.timeout:g} s; retry shortly"
                await exchange.send_error(503, "timeout", message, {b"retry-after": b"1"})
        except Exception:  # nothing escapes as a bare 500 or a dropped connection
            log.exception("unhandled error on %s %s (request %s)", scope["method"], scope["path"], exchange.request_id)
            if not exchange.started:
                await exchange.send_error(500, "internal_error", "internal server error")
        finally:
            self.deadlines.end(task)


class HeadAsGet:
    """HEAD answered wherever GET is: the request goes on as GET (a copy of the scope: the server
    still knows it as HEAD) and the response keeps its status and headers but sends no body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def _known_path(scope: Scope) -> str:
    """The path, for requests answered before routing (413 from Content-Length), if the API has it."""
    openapi = getattr(scope.get("app"), "openapi", None)
    paths = openapi().get("paths", {}) if openapi else {}  # built once, then cached by FastAPI
    return scope["path"] if scope["path"] in paths else "unmatched"


class _Exchange:
    """One request's receive/send, wrapped: byte counting, the request id header, draining."""

    def __init__(
        self, receive: Receive, send: Send, request_id: str, limit: int, path: str = "", too_large: str = ""
    ) -> None:
        self._receive = receive
        self._send = send
        self.request_id = request_id
        self.path = path
        self.limit = limit
        self.too_large = too_large or f"request body is over the {limit}-byte limit"
        self.received = 0
        self.body_done = False
        self.started = False
        self.status = 500
        self.admit: Callable[[_Exchange], bool] | None = None  # back-pressure, once the body is in
        self.admitted = False
        self.refusal = ""
        self.hold: Callable[[_Exchange, int], bool] | None = None  # room for a large body, as it grows
        self.held = 0  # the bytes of it counted

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.body_done = not message.get("more_body", False)
            if self.received > self.limit:
                raise PayloadTooLarge(self.too_large)
            if self.hold is not None and not self.hold(self, self.received):  # a body longer than announced
                raise Overloaded(self.refusal, headers={"Retry-After": "1"})
            if self.body_done and self.admit is not None and not self.admitted and not self.admit(self):
                raise Overloaded(self.refusal, headers={"Retry-After": "1"})
        elif message["type"] == "http.disconnect":
            self.body_done = True
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status, self.started = message["status"], True
            message["headers"] = [*message.get("headers", []), (b"x-request-id", self.request_id.encode())]
        elif message["type"] == "http.response.body" and not message.get("more_body") and not self.body_done:
            await self._send({**message, "more_body": True})
            await self._drain()
            message = {"type": "http.response.body", "body": b"", "more_body": False}
        await self._send(message)

    async def _drain(self) -> None:
        """Read and drop what is left of the request body, within DRAIN_BYTES and DRAIN_SECONDS."""
        dropped = 0

        async def drop() -> None:
            nonlocal dropped
            while not self.body_done and dropped < DRAIN_BYTES:
                message = await self._receive()
                dropped += len(message.get("body", b""))
                self.body_done = message["type"] == "http.disconnect" or not message.get("more_body", False)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drop(), DRAIN_SECONDS)

    async def send_error(self, status: int, code: str, message: str, extra: dict[bytes, bytes] | None = None) -> None:
        body = encode(error_body(code, message, self.request_id, self.path))
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers += list((extra or {}).items())
        if status == 413:
            headers.append((b"connection", b"close"))
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})
