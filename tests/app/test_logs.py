"""app.logs: JSON lines, written in batches."""

from __future__ import annotations

import io
import json
import logging
import time

from app.logs import BatchingHandler, JsonFormatter


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def logger_with(handler: logging.Handler) -> logging.Logger:
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger(f"test-batching-{id(handler)}")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log


def test_lines_are_written_in_one_batch_within_the_flush_period() -> None:
    stream = CountingStream()
    handler = BatchingHandler(stream)
    log = logger_with(handler)
    for i in range(500):
        log.info("request", extra={"fields": {"n": i}})
    assert stream.writes == 0  # held, under FLUSH_BYTES
    time.sleep(BatchingHandler.FLUSH_SECONDS * 3)
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["n"] for line in lines] == list(range(500))
    assert stream.writes == 1
    handler.close()


def test_a_warning_is_written_at_once_after_what_came_before() -> None:
    stream = CountingStream()
    handler = BatchingHandler(stream)
    log = logger_with(handler)
    log.info("first")
    log.warning("trouble")
    assert [json.loads(line)["msg"] for line in stream.getvalue().splitlines()] == ["first", "trouble"]
    handler.close()


def test_a_full_batch_and_close_write_what_is_held() -> None:
    stream = CountingStream()
    handler = BatchingHandler(stream)
    log = logger_with(handler)
    long = "x" * 1000
    for _ in range(BatchingHandler.FLUSH_BYTES // 1000 + 1):
        log.info(long)
    assert stream.writes == 1  # the batch reached FLUSH_BYTES
    log.info("last")
    handler.close()
    assert json.loads(stream.getvalue().splitlines()[-1])["msg"] == "last"
