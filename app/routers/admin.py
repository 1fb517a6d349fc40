"""POST /admin/reload: a new checkpoint without a restart. Off unless DIGITS_ADMIN_TOKEN is set."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError

from app.deps import EngineDep, SettingsDep
from app.errors import ServiceError
from app.reload import PathNotAllowed, resolve_in_folder, share_choice, token_matches
from app.schemas import ErrorResponse, ReloadRequest, ReloadResult, error_example
from app.settings import Settings
from model.checkpoint import CheckpointError

log = logging.getLogger("app.admin")
router = APIRouter(prefix="/admin", tags=["admin"])
bearer = HTTPBearer(auto_error=False, description="the value of DIGITS_ADMIN_TOKEN")

#: Largest reload request body: a JSON object with one path.
MAX_BODY = 4096


class AdminOff(ServiceError):
    status, code = 404, "not_found"


class Unauthorized(ServiceError):
    status, code = 401, "unauthorized"


class PathForbidden(ServiceError):
    status, code = 403, "path_not_allowed"


class BadCheckpoint(ServiceError):
    status, code = 422, "bad_checkpoint"


class InvalidRequest(ServiceError):
    status, code = 422, "invalid_request"


def require_admin(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> None:
    """404 while DIGITS_ADMIN_TOKEN is unset, 401 without that bearer token."""
    if settings.admin_token is None:
        raise AdminOff("the admin endpoints are off; set DIGITS_ADMIN_TOKEN to turn them on")
    given = credentials.credentials if credentials is not None else None
    if not token_matches(given, settings.admin_token.get_secret_value()):
        raise Unauthorized("a valid bearer token is needed", headers={"WWW-Authenticate": "Bearer"})


def _response(status: int, description: str, code: str, message: str) -> dict[Any, Any]:
    return {
        status: {
            "model": ErrorResponse,
            "description": description,
            "content": {"application/json": {"example": error_example(code, message)}},
        }
    }


@router.post(
    "/reload",
    response_model=ReloadResult,
    responses={
        **_response(
            401, "No bearer token, or not DIGITS_ADMIN_TOKEN", "unauthorized", "a valid bearer token is needed"
        ),
        **_response(
            403,
            "The path is outside DIGITS_CHECKPOINT_DIR",
            "path_not_allowed",
            "'../x.pt' is not a file inside the allowed folder (DIGITS_CHECKPOINT_DIR)",
        ),
        **_response(
            404,
            "DIGITS_ADMIN_TOKEN is not set: the endpoint is off",
            "not_found",
            "the admin endpoints are off; set DIGITS_ADMIN_TOKEN to turn them on",
        ),
        **_response(
            422,
            "The checkpoint failed a check (missing, SHA-256, format, preprocessing); the old model keeps serving",
            "bad_checkpoint",
            "/models/v2.pt: SHA-256 is 1f2e..., the recorded value is "
            "9a8b... (file truncated, swapped or tampered with)",
        ),
    },
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": ReloadRequest.model_json_schema()}},
        }
    },
)
async def reload(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ReloadResult:
    """Load, verify (SHA-256, format, preprocessing) and warm up a checkpoint while the current one
    answers, then swap it in at once; under `python -m app` every worker follows. A checkpoint that
    fails a check is refused and the current one keeps serving."""
    require_admin(settings, credentials)
    body = await request.body()  # read only once the token is right
    if len(body) > MAX_BODY:
        raise InvalidRequest(f"the request body is over {MAX_BODY} bytes")
    try:
        wanted = ReloadRequest.model_validate_json(body) if body.strip() else ReloadRequest()
    except ValidationError as e:
        raise InvalidRequest("; ".join(str(err["msg"]) for err in e.errors())) from None
    try:
        path = resolve_in_folder(settings, wanted.checkpoint) if wanted.checkpoint else settings.checkpoint
    except PathNotAllowed as e:
        raise PathForbidden(str(e)) from None
    try:
        done = await engine.reload(path)
    except CheckpointError as e:
        log.error("reload refused (POST /admin/reload): %s; still serving %s", e, engine.version)
        raise BadCheckpoint(str(e)) from None
    everyone = share_choice(path)
    log.info("reload (POST /admin/reload): %s -> %s from %s", done.previous_version, done.version, path)
    return ReloadResult(
        model_version=done.version,
        previous_version=done.previous_version,
        changed=done.changed,
        checkpoint=str(path),
        scope="all workers" if everyone else "this worker",
    )
