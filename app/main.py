"""The app factory: settings, lifespan (load, verify, warm up), middleware, routers, error handlers."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import torch
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from app.batcher import Batcher
from app.errors import install_error_handlers
from app.fastpath import FastPredict
from app.logs import configure_logging
from app.metrics import Metrics
from app.middleware import InFlight, RequestContext
from app.predictor import Predictor
from app.routers import health, info, page, predict
from app.settings import Settings, load_settings
from model.checkpoint import CheckpointError

log = logging.getLogger("app")
MULTIPART_OVERHEAD = 64 * 1024

DESCRIPTION = """
Reads the handwritten digit in an image. POST an image to `/predict` (multipart field `file`, or the
raw body with an `image/*` content type) and get the digit, its calibrated confidence and all ten
probabilities. Photos of paper, canvas drawings, scans and MNIST samples are all read: the image is
turned into an MNIST-style 28x28 input (ink cropped, fitted to 20x20, centred by mass) first.

Every error has the same JSON shape: `{"error": {"code", "message", "request_id"}}`.
"""


def set_torch_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set in this process (several apps in one test run)
        torch.set_num_interop_threads(1)


def tune_gc() -> None:
    """Keep the cyclic garbage collector out of the tail latency.

    Start-up leaves hundreds of thousands of long-lived objects (torch, FastAPI, the model); every
    full collection walked them all. Frozen, they are skipped. Measured with wrk at c=64 on 28x28
    PNGs, 2 workers: p99 149 -> 48 ms. The thresholds stay at Python's defaults: raised to
    (20000, 50, 100) they gained no throughput, and cyclic garbage (exceptions' tracebacks, Pillow
    images) then piled up: bench/soak.py grew a worker by 24 MB in 60 s instead of 2.
    """
    gc.collect()
    gc.freeze()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    metrics = Metrics()
    in_flight = InFlight()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        set_torch_threads(settings.effective_torch_threads)
        try:
            predictor = await run_in_threadpool(
                Predictor.load, settings.checkpoint, settings.max_pixels, metrics.observe_inference
            )
        except CheckpointError as e:
            log.error("cannot start: %s", e)
            raise
        app.state.work_limiter = anyio.CapacityLimiter(settings.work_threads)
        app.state.batcher = Batcher(
            predictor.predict_images,
            settings.max_batch_size,
            settings.batch_wait_ms / 1000,
            app.state.work_limiter,
            # a lone request's forward pass on the event loop: measured faster with 1 torch thread a
            # worker (c=1 p50 1.85 -> 1.54 ms) but slower with 2 (1.45 -> 1.9 ms: bench/README.md)
            alone=(lambda: in_flight.count <= 1) if settings.effective_torch_threads == 1 else (lambda: False),
        )
        app.state.predictor = predictor
        if settings.gc_freeze:
            tune_gc()
        app.state.ready = True
        log.info(
            "ready: model %s (test accuracy %s), %d torch threads",
            predictor.version,
            predictor.model.meta.get("metrics", {}).get("test_accuracy"),
            settings.effective_torch_threads,
        )
        yield
        app.state.ready = False

    app = FastAPI(
        title="Digit classifier",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # off by default: the access line and /metrics are this service's telemetry, and the check for
        # configured providers cost 2-3% of a worker's Python time per request (py-spy --gil, c=64)
        telemetry={"tracing": settings.otel, "metrics": settings.otel, "logs": settings.otel},
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.predictor = None
    app.state.ready = False
    install_error_handlers(app)
    app.include_router(predict.router)
    app.include_router(health.router)
    app.include_router(info.router)
    app.include_router(page.router)
    app.mount("/static", StaticFiles(directory=page.STATIC_DIR), name="static")
    report = settings.checkpoint.parent / "report"  # what model.evaluate --plots drew for this checkpoint
    if report.is_dir():
        app.mount("/report", StaticFiles(directory=report), name="report")
    # innermost: inside CORS and the request context, so its answers get both like any route's
    app.add_middleware(FastPredict, max_upload_bytes=settings.max_upload_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID"],
        )
    app.add_middleware(
        RequestContext,
        metrics=metrics,
        body_limits={"/predict/batch": settings.max_batch_bytes},
        default_limit=settings.max_upload_bytes + MULTIPART_OVERHEAD,
        max_in_flight=settings.max_in_flight,
        timeout=settings.request_timeout,
        in_flight=in_flight,
    )
    return app


def _app_from_environment() -> FastAPI:
    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings)


app = _app_from_environment()
