"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import EngineDep
from app.schemas import NOT_READY_RESPONSE, Liveness, Readiness

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=Liveness)
async def live() -> Liveness:
    """The process is up and answering (says nothing about the model)."""
    return Liveness(status="alive")


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: NOT_READY_RESPONSE},
)
async def ready(engine: EngineDep) -> Readiness:
    """200 once the checkpoint is loaded, verified and warmed up; 503 before."""
    return Readiness(status="ready", model_version=engine.version)
