"""app.protocol: the HTTP limits of a production server, against a real `python -m app` process."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from tests.helpers import Server, draw_seven, encode, start, stop

pytestmark = pytest.mark.slow

SEVEN = encode(draw_seven())


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = start(
        {
            "DIGITS_HEADER_TIMEOUT": "0.5",
            "DIGITS_BODY_TIMEOUT": "0.5",
            "DIGITS_MAX_CONNECTIONS": "20",
            "DIGITS_MAX_IN_FLIGHT": "3",
        }
    )
    yield s
    stop(s)


Connect = Callable[[], socket.socket]


@pytest.fixture
def connect(server: Server) -> Iterator[Connect]:
    """Opens connections to the server; each is closed after the test."""
    opened: list[socket.socket] = []

    def open_one() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        opened.append(sock)
        return sock

    yield open_one
    for sock in opened:
        sock.close()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], dict[str, object]]:
    """The status, headers and JSON body of one response; the server closes the connection after."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def predict_request(body: bytes = SEVEN) -> bytes:
    """A whole /predict request, the last on its connection."""
    head = b"POST /predict HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: image/png\r\n"
    return head + b"content-length: %d\r\n\r\n" % len(body) + body


def test_oversized_headers_are_431(connect: Connect) -> None:
    sock = connect()
    sock.sendall(b"GET /health/live HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 20_000 + b"\r\n\r\n")
    status, headers, body = read_response(sock)
    assert status == 431
    assert body == {"error": {"code": "headers_too_large", "request_id": headers["x-request-id"],
                              "message": "the request line and headers are over the 16384-byte limit"}}  # fmt: skip
    assert headers["connection"] == "close"


def test_an_oversized_url_is_414(connect: Connect) -> None:
    sock = connect()
    sock.sendall(b"GET /health/live?" + b"a" * 9000 + b" HTTP/1.1\r\nhost: x\r\n\r\n")
    status, _, body = read_response(sock)
    assert status == 414
    assert body["error"]["code"] == "uri_too_long"  # type: ignore[index]


def test_malformed_http_gets_the_json_error_shape(connect: Connect) -> None:
    sock = connect()
    sock.sendall(b"POST /predict HTTP/1.1\r\ncontent-length: 3\r\ncontent-length: 5\r\n\r\nabc")
    status, headers, body = read_response(sock)
    assert status == 400
    assert body == {"error": {"code": "invalid_http", "message": "the request is not valid HTTP/1.1",
                              "request_id": headers["x-request-id"]}}  # fmt: skip


def test_slow_headers_are_408_and_closed(connect: Connect) -> None:
    sock = connect()
    sock.sendall(b"GET /health/live HTTP/1.1\r\nhost: x\r\n")  # and never the blank line
    t0 = time.monotonic()
    status, _, body = read_response(sock)
    assert status == 408
    assert body["error"]["code"] == "request_timeout"  # type: ignore[index]
    assert time.monotonic() - t0 > 0.4  # after the header timeout, not at once (a hang is the socket's timeout)


def test_a_connection_that_sends_nothing_is_closed(connect: Connect) -> None:
    sock = connect()
    t0 = time.monotonic()
    assert sock.recv(100) == b""  # closed without a word
    assert time.monotonic() - t0 > 0.4  # after the header timeout, not at once (a hang is the socket's timeout)


def test_a_slow_body_is_408_and_holds_no_place_in_flight(connect: Connect) -> None:
    """Five uploads that stall mid-body, against a limit of 3 requests in flight: a complete
    request is still answered, and each stalled one gets 408 once its body is overdue."""
    stalled = [connect() for _ in range(5)]
    for sock in stalled:
        sock.sendall(predict_request()[:-100])
    time.sleep(0.1)
    ok = connect()
    ok.sendall(predict_request())
    status, _, body = read_response(ok)
    assert status == 200, body
    for sock in stalled:
        status, _, body = read_response(sock)
        assert status == 408
        assert body["error"]["message"] == "the request's body did not arrive within 0.5 s"  # type: ignore[index]


def test_past_the_connection_cap_a_new_one_is_503(connect: Connect) -> None:
    held = [connect() for _ in range(20)]
    time.sleep(0.1)
    extra = connect()
    status, headers, body = read_response(extra)
    assert status == 503
    assert body["error"]["code"] == "overloaded"  # type: ignore[index]
    assert headers["retry-after"] == "1"
    for sock in held:
        sock.close()
    time.sleep(0.2)
    again = connect()
    again.sendall(b"GET /health/live HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    assert read_response(again)[0] == 200
