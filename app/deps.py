"""Typed dependencies for the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.errors import NotReady
from app.metrics import Metrics
from app.predictor import Predictor
from app.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_predictor(request: Request) -> Predictor:
    """The loaded model; 503 until the lifespan has loaded, verified and warmed it up."""
    predictor: Predictor | None = getattr(request.app.state, "predictor", None)
    if predictor is None or not request.app.state.ready:
        raise NotReady("the model is not loaded yet; retry shortly", headers={"Retry-After": "1"})
    return predictor


def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
