"""uvicorn's httptools protocol with the limits production HTTP servers have.

uvicorn bounds none of these on its httptools protocol: header and URL sizes, how long a client
may take to send its headers or its body, how many connections a worker holds, and a connection
that never sends a byte stays open for good. Here, per worker (`python -m app` runs it):

- request line and headers over `max_header_bytes`: 431 (a URL over `max_url_bytes`: 414);
- headers not complete `header_timeout` seconds after the connection opened or the request began:
  408 and closed (a connection that sent nothing is just closed);
- a body not complete `body_timeout` seconds after its headers: 408 and closed;
- past `max_connections` open connections: 503 `overloaded` and closed at once;
- malformed HTTP: 400 `invalid_http` in the service's JSON error shape, with a request id;
- on shutdown, an idle keep-alive connection is not closed under a request that may be on its way:
  for SHUTDOWN_GRACE seconds a request that arrives is answered (with `connection: close`).

Every such answer has the JSON shape of `app.errors` and closes the connection.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.errors import error_body
from app.middleware import new_request_id
from app.responses import encode
from app.settings import Settings

log = logging.getLogger("app.protocol")

SHUTDOWN_GRACE = 1.0
#: After refusing a request whose body may still be arriving, its bytes are read and dropped for
#: up to this long before the connection closes: closing with unread data resets it, and the
#: client may then never read the answer.
LINGER = 2.0

REASONS = {400: b"Bad Request", 408: b"Request Timeout", 414: b"URI Too Long", 431: b"Request Header Fields Too Large",
           503: b"Service Unavailable"}  # fmt: skip


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int
    max_url_bytes: int
    header_timeout: float
    body_timeout: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            settings.max_header_bytes,
            settings.max_url_bytes,
            settings.header_timeout,
            settings.body_timeout,
            settings.max_connections,
        )


class _Refused(Exception):
    """Raised from a parser callback; `send_400_response`, which uvicorn then calls, answers it."""


def bare_response(status: int, code: str, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """A whole HTTP/1.1 response with the service's JSON error body, closing the connection."""
    request_id = new_request_id()
    body = encode(error_body(code, message, request_id))
    head = [b"HTTP/1.1 %d %s" % (status, REASONS[status]), b"content-type: application/json",
            b"content-length: %d" % len(body), b"x-request-id: " + request_id.encode(), b"connection: close",
            *(name + b": " + value for name, value in extra or [])]  # fmt: skip
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[HttpLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str, str] | None = None
        self._request_begun = False
        self._closing = False
        self._in_head = True  # between a message's start and its headers' end
        self._head_bytes = 0
        self._lingering = False

    @classmethod
    def with_limits(cls, limits: HttpLimits) -> type[GuardedHttpToolsProtocol]:
        return type(cls.__name__, (cls,), {"limits": limits})

    # timers
    def _arm(self, seconds: float, why: str) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._timer_fired, why)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timer_fired(self, why: str) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if why in ("shutdown", "linger"):
            self.transport.close()
            return
        answering = self.cycle is not None and self.cycle.response_started and not self.cycle.response_complete
        if self._request_begun and not answering:
            limit = self.limits.header_timeout if why == "headers" else self.limits.body_timeout
            message = f"the request's {why} did not arrive within {limit:g} s"
            self.transport.write(bare_response(408, "request_timeout", message))
            log.warning("closed a connection: %s", message)
        self.transport.close()

    # connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            message = f"the service is at its limit of {self.limits.max_connections} connections; retry shortly"
            transport.write(bare_response(503, "overloaded", message, [(b"retry-after", b"1")]))
            transport.close()
            return
        self._arm(self.limits.header_timeout, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self._closing = True  # idle: a request may already be on its way; let it in, briefly
            self._unset_keepalive_if_required()
            self._arm(SHUTDOWN_GRACE, "shutdown")
        else:
            self.cycle.keep_alive = False

    def data_received(self, data: bytes) -> None:
        """Bytes of a request's head are counted as they arrive, before the parser sees them: it
        gathers a header's value by concatenation, at a cost growing with its length, before any
        callback could refuse it."""
        if self._lingering:
            return  # a refused request's rest, dropped
        if self._in_head:
            room = self.limits.max_header_bytes + 4 - self._head_bytes  # (+4: the blank line's CRLFs)
            if len(data) > room and b"\r\n\r\n" not in data[: max(room, 0)]:
                self._refusal = self._too_large_head()
                self.send_400_response("")
                return
            self._head_bytes += len(data)
        super().data_received(data)

    def _too_large_head(self) -> tuple[int, str, str]:
        limit = self.limits.max_header_bytes
        return (431, "headers_too_large", f"the request line and headers are over the {limit}-byte limit")

    def send_400_response(self, msg: str) -> None:
        status, code, message = self._refusal or (400, "invalid_http", "the request is not valid HTTP/1.1")
        self.transport.write(bare_response(status, code, message))
        self._lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the answer, then FIN; what the client still sends is dropped
        self._arm(LINGER, "linger")

    # parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_begun = True
        self._arm(self.limits.header_timeout, "headers")

    def on_url(self, url: bytes) -> None:
        if len(self.url) + len(url) > self.limits.max_url_bytes:
            limit = self.limits.max_url_bytes
            self._refusal = (414, "uri_too_long", f"the request target is over the {limit}-byte limit")
            raise _Refused
        super().on_url(url)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        super().on_headers_complete()
        if self._closing and self.cycle is not None:
            self.cycle.keep_alive = False  # the last request on this connection
        if self._expects_body():
            self._arm(self.limits.body_timeout, "body")

    def _expects_body(self) -> bool:
        for name, value in self.headers:
            if name == b"content-length":
                return value.strip() not in (b"0", b"")
            if name == b"transfer-encoding":
                return True
        return False

    def on_message_complete(self) -> None:
        self._disarm()
        self._request_begun = False
        self._in_head, self._head_bytes = True, 0
        super().on_message_complete()
