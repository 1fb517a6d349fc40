"""The Open Inference Protocol (KServe v2 REST) beside the service's own API, on the same port and
model: health, server and model metadata, readiness and infer (`app/inference_protocol.py`).

Errors are the protocol's `{"error": "..."}`: 400 for a request the model cannot take, 404 for
another model or version, 503 before the model is ready. Infer's images share forward passes with
/predict's (the engine's batcher)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from starlette.types import ASGIApp

from app.deps import ready_engine
from app.engine import Engine, ImageUnreadable
from app.inference_protocol import (
    HEADER_LENGTH,
    ProtocolError,
    check_json_values,
    encode_answers,
    json_values,
    model_metadata,
    parse_infer,
)
from app.responses import JSONAnswer
from app.settings import Settings

router = APIRouter(prefix="/v2", tags=["open inference protocol"])

_ERROR = {"content": {"application/json": {"example": {"error": "unknown model 'mnist'; this server serves 'digits'"}}}}
_EMPTY: dict[str, Any] = {"description": "Ready (empty body)"}
#: Request bodies up to this size are parsed on the event loop (a thread's hand-over costs more).
INLINE_BODY_BYTES = 64 * 1024
_BYTES_EXAMPLE = "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAA..."


def _engine(app: ASGIApp) -> Engine:
    engine = ready_engine(app)
    if engine is None:
        raise ProtocolError("the model is not loaded yet; retry shortly", 503)
    return engine


def _model(request: Request, name: str, version: str | None) -> Engine:
    settings: Settings = request.app.state.settings
    if name != settings.oip_model_name:
        raise ProtocolError(f"unknown model '{name}'; this server serves '{settings.oip_model_name}'", 404)
    engine = _engine(request.app)
    if version is not None and version != engine.version:
        raise ProtocolError(f"unknown version '{version}' of '{name}'; the loaded one is '{engine.version}'", 404)
    return engine


@router.get(
    "/health/live", response_class=Response, responses={200: {"description": "The server is live (empty body)"}}
)
async def live() -> Response:
    """200 while the process answers."""
    return Response(status_code=200)


@router.get(
    "/health/ready",
    response_class=Response,
    responses={200: {"description": "Ready (empty body)"}, 503: {"description": "Not yet (empty body)"}},
)
async def ready(request: Request) -> Response:
    """200 once the model is loaded, verified and warmed up; 503 before."""
    return Response(status_code=200 if ready_engine(request.app) is not None else 503)


@router.get("", responses={200: {"content": {"application/json": {"example": {
    "name": "digit-service", "version": "0.1.0", "extensions": ["binary_tensor_data"]}}}}})  # fmt: skip
async def server_metadata(request: Request) -> JSONAnswer:
    """Server metadata: name, version and the protocol extensions it implements."""
    return JSONAnswer({"name": "digit-service", "version": request.app.version, "extensions": ["binary_tensor_data"]})


def _metadata(request: Request, name: str, version: str | None) -> JSONAnswer:
    engine = _model(request, name, version)
    return JSONAnswer(model_metadata(name, engine.version))


_METADATA_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"example": model_metadata("digits", "a2c518731b9c")}}},
    404: _ERROR,
    503: _ERROR,
}


@router.get("/models/{name}", responses=_METADATA_RESPONSES)
async def model(request: Request, name: str) -> JSONAnswer:
    """Model metadata: inputs `image` (BYTES [N]) or `pixels` (FP32 [N, 28, 28]), outputs `digit`,
    `confidence`, `probabilities`; the version is the checkpoint's SHA-256 prefix."""
    return _metadata(request, name, None)


@router.get("/models/{name}/versions/{version}", responses=_METADATA_RESPONSES)
async def model_version(request: Request, name: str, version: str) -> JSONAnswer:
    """Model metadata of one version (only the loaded one exists)."""
    return _metadata(request, name, version)


@router.get("/models/{name}/ready", response_class=Response, responses={200: _EMPTY, 404: _ERROR, 503: _ERROR})
async def model_ready(request: Request, name: str) -> Response:
    """200 when the model is ready (empty body)."""
    _model(request, name, None)
    return Response(status_code=200)


@router.get(
    "/models/{name}/versions/{version}/ready",
    response_class=Response,
    responses={200: _EMPTY, 404: _ERROR, 503: _ERROR},
)
async def model_version_ready(request: Request, name: str, version: str) -> Response:
    """200 when that version is loaded and ready (empty body)."""
    _model(request, name, version)
    return Response(status_code=200)


_INFER_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The protocol's inference request: one input, `image` (BYTES [N], each an encoded image, "
        "base64 in JSON) or `pixels` (FP32 [N, 28, 28] or [N, 1, 28, 28], 0..1, white on black); optional "
        "`outputs` with `binary_data`. With the binary-data extension the JSON is the first "
        "`Inference-Header-Content-Length` bytes and the tensors follow.",
        "content": {
            "application/json": {
                "example": {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [_BYTES_EXAMPLE]}]}
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "application/json": {
                "example": {
                    "model_name": "digits",
                    "model_version": "a2c518731b9c",
                    "outputs": [
                        {"name": "digit", "datatype": "INT64", "shape": [1], "data": [7]},
                        {"name": "confidence", "datatype": "FP32", "shape": [1], "data": [0.9998]},
                        {
                            "name": "probabilities",
                            "datatype": "FP32",
                            "shape": [1, 10],
                            "data": [0.0] * 7 + [0.9998, 0, 0],
                        },
                    ],
                }
            }
        }
    },
    400: {"content": {"application/json": {"example": {"error": "image 0: the image has no ink (blank or uniform)"}}}},
    404: _ERROR,
    503: _ERROR,
}


async def _body(request: Request, header_length: str | None, max_items: int) -> bytes:
    """The request body, its JSON's values counted as it arrives: a body holding more than
    `max_items` images can need is refused (400) before the rest is read and joined."""
    json_length = int(header_length) if header_length is not None and header_length.isdigit() else None
    chunks: list[bytes] = []
    seen = values = 0
    async for chunk in request.stream():
        text = chunk if json_length is None else chunk[: max(0, json_length - seen)]
        values += json_values(text)
        check_json_values(values, max_items)
        seen += len(chunk)
        chunks.append(chunk)
    return b"".join(chunks)


async def _infer(request: Request, name: str, version: str | None) -> Response:
    engine = _model(request, name, version)
    settings: Settings = request.app.state.settings
    header_length = request.headers.get(HEADER_LENGTH)
    body = await _body(request, header_length, settings.max_batch_files)
    args = (body, header_length, settings.max_batch_files, settings.max_upload_bytes)
    # a large body is parsed on a decoding thread: its JSON may take most of a second to parse
    infer = parse_infer(*args) if len(body) <= INLINE_BODY_BYTES else await engine.off_loop(parse_infer, *args)
    try:
        if infer.images is not None:
            answers = await engine.predict_encoded(infer.images)
        else:
            answers = await engine.predict_pixels(infer.pixels)  # type: ignore[arg-type]
    except ImageUnreadable as e:
        raise ProtocolError(str(e)) from None
    body, headers = encode_answers(answers, infer, name, answers[0].model_version)
    return Response(body, status_code=200, headers=headers, media_type=None)


@router.post("/models/{name}/infer", responses=_INFER_RESPONSES, openapi_extra=_INFER_DOC)
async def infer(request: Request, name: str) -> Response:
    """Read the digits of N images (encoded, or preprocessed pixels), in forward passes shared
    with /predict."""
    return await _infer(request, name, None)


@router.post("/models/{name}/versions/{version}/infer", responses=_INFER_RESPONSES, openapi_extra=_INFER_DOC)
async def infer_version(request: Request, name: str, version: str) -> Response:
    """Infer with one version (only the loaded one exists)."""
    return await _infer(request, name, version)


async def _protocol_error(request: Request, exc: Exception) -> JSONAnswer:
    assert isinstance(exc, ProtocolError)
    return JSONAnswer({"error": exc.message}, status_code=exc.status)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.add_exception_handler(ProtocolError, _protocol_error)
