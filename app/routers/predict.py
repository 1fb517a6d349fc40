"""POST /predict and /predict/batch."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from app.deps import EngineDep, SettingsDep
from app.errors import ServiceError, error_body
from app.responses import JSONAnswer, accepted, prediction_body
from app.schemas import (
    PREDICT_EXAMPLE,
    BatchResponse,
    ErrorResponse,
    ExplainedPrediction,
    error_example,
)
from app.uploads import read_batch, read_single
from model.imaging.errors import PreprocessError

#: ?refuse=, documented once for /predict and /predict/batch.
REFUSE_DOC = (
    "true (the default): an image whose refusal score (the digit gate's probability of a digit, model.gate) is "
    "under the refusal threshold is answered 422 `not_a_digit` (in a batch, in its slot); false: the best digit "
    "anyway, with `refusal`: whether it would have been refused, its score and the threshold"
)

router = APIRouter(tags=["predict"])

_IMAGE_SCHEMA = {"type": "string", "format": "binary"}


def _errors(*cases: tuple[int, str, str, str]) -> dict[int | str, dict[str, Any]]:
    responses: dict[int | str, dict[str, Any]] = {}
    for status, description, code, message in cases:
        entry = responses.setdefault(
            status,
            {"model": ErrorResponse, "description": description, "content": {"application/json": {"examples": {}}}},
        )
        entry["content"]["application/json"]["examples"][code] = {"value": error_example(code, message)}
    return responses


COMMON_ERRORS = [
    (
        413,
        "Upload over the size limit, or an image over the pixel cap",
        "payload_too_large",
        "request body is over the 5308416-byte limit",
    ),
    (
        413,
        "Upload over the size limit, or an image over the pixel cap",
        "image_too_large",
        "image is 100000x100000 = 10000000000 pixels; the limit is 25000000",
    ),
    (
        415,
        "Content type not accepted",
        "unsupported_media_type",
        "content type 'text/plain' is not accepted; send multipart/form-data (field 'file') or a raw body "
        "with an image/* content type",
    ),
    (
        503,
        "Not ready, overloaded or timed out; retry after Retry-After seconds",
        "not_ready",
        "the model is not loaded yet; retry shortly",
    ),
    (
        503,
        "Not ready, overloaded or timed out; retry after Retry-After seconds",
        "overloaded",
        "the service is at its limit of 256 requests in flight; retry shortly",
    ),
    (
        503,
        "Not ready, overloaded or timed out; retry after Retry-After seconds",
        "timeout",
        "no answer within 30 s; retry shortly",
    ),
]


def one_image(description: str) -> dict[str, Any]:
    """The OpenAPI request body of an endpoint that takes one image, as multipart field `file` or as
    a raw `image/*` body (`app.uploads.read_single`)."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "required": ["file"], "properties": {"file": _IMAGE_SCHEMA}}
                },
                "image/*": {"schema": _IMAGE_SCHEMA},
            },
        }
    }


#: The 400s of an upload whose bytes are not a readable image, for /predict and /predict/number.
UNREADABLE = [
    (
        400,
        "The bytes are not a readable image",
        "not_an_image",
        "not an image in a supported format (PNG, JPEG, GIF, BMP, WEBP, TIFF)",
    ),
    (400, "The bytes are not a readable image", "truncated_image", "image data is truncated or corrupt"),
    (400, "The bytes are not a readable image", "empty_image", "the upload is empty (0 bytes)"),
    (
        400,
        "The bytes are not a readable image",
        "invalid_multipart",
        "malformed multipart body: the body ends before its closing boundary",
    ),
]


@router.post(
    "/predict",
    response_model=ExplainedPrediction,
    response_model_exclude_none=True,
    responses={
        200: {"content": {"application/json": {"example": PREDICT_EXAMPLE}}},
        **_errors(
            *UNREADABLE,
            *COMMON_ERRORS,
            (
                422,
                "No image, an image with no ink or with no digit",
                "missing_file",
                "multipart field 'file' with an image file is required",
            ),
            (422, "No image, an image with no ink or with no digit", "no_ink", "the image is blank: no ink found"),
            (
                422,
                "No image, an image with no ink or with no digit",
                "not_a_digit",
                "this image does not look like a digit: its refusal score 0.004 is under the threshold 0.107 (the best "
                "guess would be 4, confidence 0.610); send ?refuse=false for the best guess anyway",
            ),
            (
                422,
                "No image, an image with no ink or with no digit",
                "several_digits",
                "this image holds 4 digits side by side, not one; send it to /predict/number to read the number",
            ),
            (
                422,
                "No image, an image with no ink or with no digit",
                "unsupported_image",
                "images in colour mode P;4 are not supported",
            ),
            (
                422,
                "No image, an image with no ink or with no digit",
                "too_many_files",
                "send one image in field 'file'; use /predict/batch for several",
            ),
        ),
    },
    openapi_extra=one_image(
        "The image as multipart field `file`, or as the raw body with an `image/*` type. PNG, JPEG, GIF, BMP, "
        "WebP or TIFF, any size and colour mode; dark ink on light paper, light ink on dark, and transparent "
        "canvases are all read."
    ),
)
async def predict(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    explain: Annotated[
        bool,
        Query(
            description="also return the 28x28 image the model saw and a gradient x input saliency map, as "
            "PNG data URLs in `explanation` (costs a backward pass; off by default)"
        ),
    ] = False,
    refuse: Annotated[bool, Query(description=REFUSE_DOC)] = True,
) -> JSONAnswer:
    """Read the digit in one image."""
    upload = read_single(request.headers.get("content-type", ""), await request.body(), settings.max_upload_bytes)
    if not explain:
        answer = await engine.predict(upload.data)
        return JSONAnswer(prediction_body(accepted(answer) if refuse else answer, refusal=not refuse))
    answer, why = await engine.explain(upload.data)
    explanation = {"input_png": _data_url(why.input_png), "saliency_png": _data_url(why.saliency_png)}
    body = prediction_body(accepted(answer) if refuse else answer, refusal=not refuse)
    return JSONAnswer({**body, "explanation": explanation})


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@router.post(
    "/predict/batch",
    response_model=BatchResponse,
    responses=_errors(
        (400, "The body is not valid multipart", "invalid_multipart", "malformed multipart body"),
        *COMMON_ERRORS,
        (
            422,
            "No files, or too many",
            "missing_file",
            "multipart field 'files' with at least one image file is required",
        ),
        (422, "No files, or too many", "too_many_files", "at most 64 files per request"),
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "Several images as repeated multipart field `files` (at most DIGITS_MAX_BATCH_FILES, "
            "default 64). Answers come back in the same order; an unreadable image gets an `error` in its slot.",
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["files"],
                        "properties": {"files": {"type": "array", "items": _IMAGE_SCHEMA, "minItems": 1}},
                    }
                }
            },
        }
    },
)
async def predict_batch(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    refuse: Annotated[bool, Query(description=REFUSE_DOC)] = True,
) -> JSONAnswer:
    """Read the digits in several images with one forward pass, answered in order."""
    content_type = request.headers.get("content-type", "")
    uploads = read_batch(content_type, await request.body(), settings.max_upload_bytes, settings.max_batch_files)
    readable = [(i, u) for i, u in enumerate(uploads) if not isinstance(u, ServiceError)]
    answers = await engine.predict_many([u.data for _, u in readable])
    request_id = getattr(request.state, "request_id", None)
    items: list[dict[str, Any]] = []
    for i, u in enumerate(uploads):  # every item has the four keys of `BatchItem`, null where they do not apply
        item: dict[str, Any] = {"index": i, "filename": None, "prediction": None, "error": None}
        if isinstance(u, ServiceError):
            item["error"] = error_body(u.code, u.message, request_id)["error"]
        items.append(item)
    for (i, u), answer in zip(readable, answers, strict=True):
        items[i]["filename"] = u.filename
        # an unreadable image's error is answered in its slot, never raised here: raised, it would
        # take this frame into its traceback while `answers` holds it, a reference cycle that keeps
        # the body and every upload until a full collection
        if isinstance(answer, PreprocessError):
            items[i]["error"] = error_body(answer.code, str(answer), request_id)["error"]
            continue
        try:
            items[i]["prediction"] = prediction_body(accepted(answer) if refuse else answer, refusal=not refuse)
        except PreprocessError as e:  # with refuse, not a digit: in its slot
            items[i]["error"] = error_body(e.code, str(e), request_id)["error"]
    # the model that answered: a reload between this batch's pass and now changes engine.version
    version = next((a.model_version for a in answers if not isinstance(a, PreprocessError)), engine.version)
    return JSONAnswer({"results": items, "model_version": version})
