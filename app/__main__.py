"""`python -m app`: check the settings and the checkpoint once, then become the server.

The checks import torch; `exec` then replaces this process (same PID, so SIGTERM still reaches it)
with `app/serve.py`: uvicorn with the HTTP limits of `app/protocol.py`, and for several workers a
supervisor that holds no torch and gives each worker its own listening socket.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from app.logs import configure_logging
from app.settings import load_settings
from model.checkpoint import CheckpointError, load_checkpoint

log = logging.getLogger("app")
LOG_CONFIG = Path(__file__).resolve().parent / "log_config.json"


def main() -> int:
    settings = load_settings()
    configure_logging(settings.log_level)
    try:
        load_checkpoint(settings.checkpoint)  # fail fast, with one line, before any worker starts
    except CheckpointError as e:
        log.error("cannot start: %s", e)
        return 1
    if settings.feedback_db is not None:  # a URL of another database: said once, not by each worker
        from app.feedback.db import BadDatabaseURL, normalised_url

        try:
            normalised_url(settings.feedback_db.get_secret_value())
        except BadDatabaseURL as e:
            log.error("cannot start: DIGITS_FEEDBACK_DB=(hidden): %s", e)
            return 1
    # the workers read it: each then knows how many share the CPUs, without guessing
    os.environ["DIGITS_WORKERS"] = str(settings.worker_count)
    if settings.worker_count == 1:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # (several workers: app/serve.py makes one)
    # glibc gives every thread its own malloc arena and keeps freed memory in them; two arenas keep
    # a worker's RSS flat under a crowd of image uploads (set before exec, so uvicorn starts with it)
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    # blocks of 8 MB and more (a large upload's pixels) mapped apart and given back when freed:
    # glibc's moving threshold would otherwise keep them in the heap, and the worker that large.
    # Fixing it fixes the trim threshold too, at 128 kB, and the heap is then given back and faulted
    # in again on every request: that one is set as glibc's own would move it (bench/LOG.md,
    # "How the last figures were reached")
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(8 * 1024 * 1024))
    os.environ.setdefault("MALLOC_TRIM_THRESHOLD_", str(32 * 1024 * 1024))
    common = [
        "--host", settings.host,
        "--port", str(settings.port),
        "--log-config", str(LOG_CONFIG),
        "--log-level", settings.log_level,
        "--timeout-graceful-shutdown", str(settings.graceful_shutdown),
    ]  # fmt: skip
    # app/serve.py: uvicorn with the HTTP limits of app/protocol.py; for several workers, a
    # supervisor and a socket per worker, not uvicorn's shared one
    argv = [sys.executable, "-m", "app.serve", "--workers", str(settings.worker_count), *common]
    logging.shutdown()
    os.execv(sys.executable, argv)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
