"""Logging: one JSON object a line. Torch-free, so the workers' supervisor (app/serve.py) can use it too."""

from __future__ import annotations

import logging
import time
from typing import Any

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


def configure_logging(level: str) -> None:
    """JSON lines on stderr for everything, uvicorn's own loggers included; our access line replaces
    uvicorn's."""
    skip_unused_record_fields()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our own access line replaces it
