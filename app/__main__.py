"""`python -m app`: check the settings and the checkpoint, then serve with uvicorn (workers from settings)."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile

import uvicorn

from app.middleware import configure_logging
from app.settings import load_settings
from model.checkpoint import CheckpointError, load_checkpoint

log = logging.getLogger("app")


def main() -> int:
    settings = load_settings()
    configure_logging(settings.log_level)
    try:
        load_checkpoint(settings.checkpoint)  # fail fast, once, before any worker starts
    except CheckpointError as e:
        log.error("cannot start: %s", e)
        return 1
    if settings.workers > 1:
        # metrics summed across workers; a fresh folder so counts start at zero
        folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="digits-metrics-")
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    uvicorn.run(
        "app.main:app",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
