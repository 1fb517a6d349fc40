"""Logging: one JSON object a line. Torch-free, so the workers' supervisor (app/serve.py) can use it too."""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
from typing import IO, Any

import orjson


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, and any `extra={"fields": {...}}`."""

    converter = time.gmtime  # type: ignore[assignment]  # typeshed: gmtime's argument is optional
    _second = -1
    _stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # strftime once a second, not once a line
            self._second, self._stamp = second, self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        entry: dict[str, Any] = {
            "ts": f"{self._stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def skip_unused_record_fields() -> None:
    """Records need not look up the caller's file and line, the thread or the process: no line shows
    them (the logging HOWTO's "Optimization" section). Saves a few microseconds a request."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


class BatchingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that writes its lines in batches: at most every FLUSH_SECONDS, at once when a
    batch reaches FLUSH_BYTES or a record is a warning or worse, and at exit.

    Under load the access lines come thousands a second; one write each, into the pipe a container
    runtime reads, cost the runtime a wake-up and a read per line on the same CPUs (bench/LOG.md,
    "Logs in the container"). A batch costs one."""

    FLUSH_SECONDS = 0.1
    FLUSH_BYTES = 64 * 1024

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__(stream or sys.stderr)
        self._lines: list[str] = []
        self._size = 0
        self._batch_lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._flush_every, name="log-flush", daemon=True).start()
        atexit.register(self.flush)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001  (as logging.StreamHandler.emit: a bad record must not fail the caller)
            self.handleError(record)
            return
        with self._batch_lock:
            self._lines.append(line)
            self._size += len(line) + 1
            if self._size < self.FLUSH_BYTES and record.levelno < logging.WARNING:
                return
        self.flush()

    def flush(self) -> None:
        with self._batch_lock:
            if not self._lines:
                return
            text = "\n".join(self._lines) + "\n"
            self._lines, self._size = [], 0
        with self.lock:  # type: ignore[union-attr]  # the handler's own lock: one writer at a time
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):  # stderr closed (shutdown): nothing to write to
                pass

    def _flush_every(self) -> None:
        while not self._stop.wait(self.FLUSH_SECONDS):
            self.flush()

    def close(self) -> None:
        self.flush()
        self._stop.set()
        super().close()


def configure_logging(level: str) -> None:
    """JSON lines on stderr for everything, uvicorn's own loggers included, written in batches; our
    access line replaces uvicorn's."""
    skip_unused_record_fields()
    handler = BatchingHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in root.handlers:
        old.close()  # a batching one writes what it holds and stops its thread (stderr stays open)
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our own access line replaces it
