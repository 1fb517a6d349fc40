"""Every failure as one JSON shape, `{"error": {"code", "message", "request_id"}}`, mapped in one place.

Unexpected exceptions are caught, logged with their traceback and answered with a generic 500 by
`app.middleware.RequestContext`, outside the routing, so they are counted and logged like any request.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.responses import JSONAnswer
from model.imaging.errors import (
    ImageTooLarge,
    NoInk,
    NotADigit,
    PreprocessError,
    SeveralDigits,
    TooManyDigits,
    UnsupportedImage,
)


class ServiceError(Exception):
    """An error with a status, a stable code and a message safe to show the client."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers


class PayloadTooLarge(ServiceError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status, code = 415, "unsupported_media_type"


class MissingFile(ServiceError):
    status, code = 422, "missing_file"


class TooManyFiles(ServiceError):
    status, code = 422, "too_many_files"


class InvalidMultipart(ServiceError):
    status, code = 400, "invalid_multipart"


class Overloaded(ServiceError):
    status, code = 503, "overloaded"


class NotReady(ServiceError):
    status, code = 503, "not_ready"


def preprocess_status(error: PreprocessError) -> int:
    """400 for undecodable images, 413 over the pixel cap, 422 for a valid image with no ink, with
    no digit in it, with several (at /predict) or too many (at /predict/number), or in a colour
    mode the service cannot read."""
    if isinstance(error, ImageTooLarge):
        return 413
    if isinstance(error, NoInk | UnsupportedImage | NotADigit | SeveralDigits | TooManyDigits):
        return 422
    return 400


#: Paths of the Open Inference Protocol (`app/routers/v2.py`), whose errors are its own shape.
PROTOCOL_PREFIX = "/v2"


def error_body(code: str, message: str, request_id: str | None, path: str = "") -> dict[str, Any]:
    """The service's error shape; under PROTOCOL_PREFIX the protocol's, `{"error": message}`."""
    if path == PROTOCOL_PREFIX or path.startswith(PROTOCOL_PREFIX + "/"):
        return {"error": message}
    return {"error": {"code": code, "message": message, "request_id": request_id}}


def mapped(exc: ServiceError | PreprocessError) -> tuple[int, str, str, dict[str, str] | None]:
    """A domain error's (status, code, message, headers): the one mapping, for the handlers below
    and for the ASGI layers that answer without FastAPI."""
    if isinstance(exc, ServiceError):
        return exc.status, exc.code, exc.message, exc.headers
    return preprocess_status(exc), exc.code, str(exc), None


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _respond(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONAnswer:
    body = error_body(code, message, _request_id(request), request.url.path)
    return JSONAnswer(body, status_code=status, headers=headers)


async def _domain_error(request: Request, exc: Exception) -> JSONAnswer:
    assert isinstance(exc, ServiceError | PreprocessError)
    return _respond(request, *mapped(exc))


async def _validation_error(request: Request, exc: Exception) -> JSONAnswer:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return _respond(request, 422, "invalid_request", "; ".join(parts) or "invalid request")


async def _http_error(request: Request, exc: Exception) -> JSONAnswer:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    code = codes.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return _respond(request, exc.status_code, code, message, dict(exc.headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _domain_error)
    app.add_exception_handler(PreprocessError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
