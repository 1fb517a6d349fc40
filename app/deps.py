"""Typed dependencies for the routers, and the one accessor of the app's engine.

`async def` on purpose: FastAPI runs a plain `def` dependency on a worker thread, two thread hops
a request (bench/LOG.md, "Async dependencies")."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.types import ASGIApp

from app.engine import Engine
from app.errors import NotReady
from app.metrics import Metrics
from app.settings import Settings


def ready_engine(app: ASGIApp) -> Engine | None:
    """The engine once the lifespan has loaded, verified and warmed up the model; None before
    that and while shutting down."""
    state = app.state  # type: ignore[attr-defined]
    engine: Engine | None = state.engine
    return engine if state.ready else None


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> Engine:
    """The loaded model and its batcher; 503 until the lifespan has loaded, verified and warmed it up."""
    engine = ready_engine(request.app)
    if engine is None:
        raise NotReady("the model is not loaded yet; retry shortly", headers={"Retry-After": "1"})
    return engine


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
