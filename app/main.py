"""The app factory: settings, lifespan (load, verify, warm up), middleware, routers, error handlers."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import cv2
import torch
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from app.engine import Engine, Reloaded
from app.errors import install_error_handlers
from app.fastpath import FastPredict
from app.feedback.correction import Unavailable
from app.logs import configure_logging
from app.metrics import Metrics
from app.middleware import HeadAsGet, InFlight, RequestContext
from app.reload import chosen_checkpoint, listen_for_sighup
from app.responses import JSONAnswer
from app.routers import admin, docs, feedback, health, info, number, page, predict, v2
from app.settings import Settings, SettingsError, available_cpus, load_settings
from model.checkpoint import CheckpointError

if TYPE_CHECKING:
    from app.feedback.service import Feedback

log = logging.getLogger("app")
MULTIPART_OVERHEAD = 64 * 1024

DESCRIPTION = """
Reads the handwritten digit in an image. POST an image to `/predict` (multipart field `file`, or the
raw body with an `image/*` content type) and get the digit, its calibrated confidence and all ten
probabilities. Photos of paper, canvas drawings, scans and MNIST samples are all read: the image is
turned into an MNIST-style 28x28 input (ink cropped, fitted to 20x20, centred by mass) first.

Every error has the same JSON shape: `{"error": {"code", "message", "request_id"}}`. The Open Inference
Protocol (KServe v2 REST) is served beside this API under `/v2`, with that protocol's error shape.
"""


def set_torch_threads(threads: int) -> None:
    """torch's threads, and OpenCV's (the image path's) as many: a worker's threads stay its own."""
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    with contextlib.suppress(RuntimeError):  # already set in this process (several apps in one test run)
        torch.set_num_interop_threads(1)


def tune_gc() -> None:
    """Keep the cyclic garbage collector out of the tail latency: start-up leaves hundreds of
    thousands of long-lived objects (torch, FastAPI, the model) that every full collection walked;
    frozen, they are skipped (bench/LOG.md, "GC freeze"). The thresholds stay at Python's
    defaults, so cyclic garbage (tracebacks, Pillow images) is still collected."""
    gc.collect()
    gc.freeze()


def reloaded(metrics: Metrics, done: Reloaded | None, outcome: str) -> None:
    metrics.observe_reload(outcome)
    if done is not None and done.changed:
        metrics.model_loaded(done.version, done.previous_version)


def feedback_of(settings: Settings) -> Feedback | None:
    """The feedback store's holder when DIGITS_FEEDBACK_DB is set (SQLAlchemy and Alembic imported
    only then); a SettingsError for a URL that is not SQLite's or PostgreSQL's."""
    if settings.feedback_db is None:
        return None
    from app.feedback.db import BadDatabaseURL, normalised_url
    from app.feedback.service import Feedback

    try:
        normalised_url(settings.feedback_db.get_secret_value())
    except BadDatabaseURL as e:
        raise SettingsError(f"invalid settings: DIGITS_FEEDBACK_DB=(hidden): {e}") from None
    return Feedback(settings)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    metrics = Metrics()
    in_flight = InFlight()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        set_torch_threads(settings.effective_torch_threads)
        try:
            engine = await Engine.start(
                settings, metrics.observe_inference, lambda: in_flight.count, chosen_checkpoint(settings)
            )
        except CheckpointError as e:
            log.error("cannot start: %s", e)
            raise
        engine.on_reload = lambda done, outcome: reloaded(metrics, done, outcome)
        metrics.model_loaded(engine.version)

        async def on_sighup() -> None:
            path = chosen_checkpoint(settings)
            try:
                done = await engine.reload(path)
            except CheckpointError as e:
                log.error("reload refused (SIGHUP): %s; still serving %s", e, engine.version)
                return
            if done.changed:
                log.info("reload (SIGHUP): %s -> %s from %s", done.previous_version, done.version, path)
            else:
                log.info("reload (SIGHUP): already serving %s from %s", done.version, path)

        listen_for_sighup(on_sighup)
        app.state.engine = engine
        if app.state.feedback is not None:  # a database down now is tried again on the first correction
            with contextlib.suppress(Unavailable):
                await run_in_threadpool(app.state.feedback.open)
        if settings.gc_freeze:
            tune_gc()
        app.state.ready = True
        workers, source = settings.worker_processes
        log.info(
            "ready: model %s (test accuracy %s), %d torch threads (%s; %s worker processes: %s)",
            engine.version,
            engine.model.meta.get("metrics", {}).get("test_accuracy"),
            settings.effective_torch_threads,
            "DIGITS_TORCH_THREADS" if settings.torch_threads else f"{available_cpus()} CPUs shared",
            workers or "unknown",
            source,
        )
        yield
        app.state.ready = False
        engine.close()
        if app.state.feedback is not None:
            app.state.feedback.close()

    app = FastAPI(
        title="Digit classifier",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=JSONAnswer,
        docs_url=None,  # FastAPI's /docs and /redoc load from a CDN: app/routers/docs.py serves its own
        redoc_url=None,
        # off by default: the access line and /metrics are this service's telemetry, and the check
        # for configured providers costs a worker's time on every request (bench/LOG.md, "Telemetry")
        telemetry={"tracing": settings.otel, "metrics": settings.otel, "logs": settings.otel},
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.engine = None
    app.state.ready = False
    app.state.feedback = feedback_of(settings)
    install_error_handlers(app)
    app.include_router(predict.router)
    app.include_router(number.router)
    app.include_router(health.router)
    app.include_router(info.router)
    app.include_router(page.router)
    app.include_router(feedback.router)
    app.include_router(feedback.admin_router, include_in_schema=settings.admin_token is not None)
    # off without a token: it still answers, 404 with how to turn it on, but is not documented
    app.include_router(admin.router, include_in_schema=settings.admin_token is not None)
    v2.install(app)
    docs.install(app)  # (its assets' mount, /static/api-docs, before /static)
    app.mount("/static", page.PageFiles(directory=page.STATIC_DIR), name="static")
    report = settings.checkpoint.parent / "report"  # what model.evaluate --plots drew for this checkpoint
    if report.is_dir():
        app.mount("/report", StaticFiles(directory=report), name="report")
    # innermost: inside CORS and the request context, so its answers get both like any route's
    app.add_middleware(FastPredict, max_upload_bytes=settings.max_upload_bytes)
    app.add_middleware(HeadAsGet)  # outside the fast path and the routes, inside the request context
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
        body_limits={"/predict/batch": settings.max_batch_bytes, "/v2/models/": settings.max_batch_bytes},
        default_limit=settings.max_upload_bytes + MULTIPART_OVERHEAD,
        max_in_flight=settings.max_in_flight,
        timeout=settings.request_timeout,
        in_flight=in_flight,
        large_bodies=settings.max_batch_bytes,  # one largest batch at a time, beside any single uploads
        too_large={
            settings.max_upload_bytes + MULTIPART_OVERHEAD: (
                f"the upload is over the {settings.max_upload_bytes}-byte limit (DIGITS_MAX_UPLOAD_BYTES)"
            ),
            settings.max_batch_bytes: (
                f"the request body is over the {settings.max_batch_bytes}-byte limit (DIGITS_MAX_BATCH_BYTES)"
            ),
        },
    )
    return app


def _app_from_environment() -> FastAPI:
    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings)


app = _app_from_environment()
