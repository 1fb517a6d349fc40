"""POST /feedback (a correction of an answer), GET /feedback/status (whether it is on) and GET
/feedback/summary (how often the model was right, admin token). Off unless DIGITS_FEEDBACK_DB is set."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool

from app.deps import EngineDep, MetricsDep, SettingsDep
from app.errors import ServiceError
from app.feedback.correction import Correction, StoreFull, Unavailable
from app.feedback.reading import NOT_A_DIGIT, read
from app.responses import JSONAnswer
from app.routers.admin import bearer, require_admin
from app.routers.predict import COMMON_ERRORS, UNREADABLE, _errors
from app.schemas import FeedbackCreated, FeedbackState, FeedbackSummary
from app.uploads import read_form
from model.imaging.number import MAX_DIGITS

if TYPE_CHECKING:  # the database code is imported only when feedback is on
    from app.feedback.service import Feedback

router = APIRouter(tags=["feedback"])
#: GET /feedback/summary: in the schema only when DIGITS_ADMIN_TOKEN is set, as /admin/reload is
admin_router = APIRouter(tags=["feedback"])

ENDPOINTS = ("predict", "number")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class FeedbackOff(ServiceError):
    status, code = 404, "feedback_off"


class InvalidLabel(ServiceError):
    status, code = 422, "invalid_label"


class InvalidField(ServiceError):
    status, code = 422, "invalid_field"


class TooManyCorrections(ServiceError):
    status, code = 429, "too_many_requests"


class FeedbackFull(ServiceError):
    status, code = 507, "feedback_full"


class FeedbackUnavailable(ServiceError):
    status, code = 503, "feedback_unavailable"


def _feedback(request: Request) -> Feedback:
    feedback: Feedback | None = request.app.state.feedback
    if feedback is None:
        raise FeedbackOff("feedback is off; set DIGITS_FEEDBACK_DB to turn it on")
    return feedback


def parse_fields(fields: dict[str, str]) -> tuple[str, str, str | None]:
    """(endpoint, label, request_id) from the form's text fields, each checked; the endpoint, when not
    sent, is `number` for a label of two or more digits, else `predict`."""
    label = fields.get("label", "").strip()
    endpoint = fields.get("endpoint", "").strip() or ("number" if len(label) > 1 and label.isdigit() else "predict")
    if endpoint not in ENDPOINTS:
        raise InvalidField(f"endpoint must be one of {', '.join(ENDPOINTS)}, not {endpoint[:40]!r}")
    if not label:
        raise InvalidLabel("multipart field 'label' is required: a digit 0-9, a number, or not_a_digit")
    is_number = label.isascii() and label.isdigit() and len(label) <= MAX_DIGITS
    if label != NOT_A_DIGIT and not (is_number and (endpoint == "number" or len(label) == 1)):
        wanted = f"a number of 1 to {MAX_DIGITS} digits" if endpoint == "number" else "one digit 0-9"
        raise InvalidLabel(f"label must be {wanted} or not_a_digit, not {label[:40]!r}")
    request_id = fields.get("request_id", "").strip() or None
    if request_id is not None and not _REQUEST_ID.match(request_id):
        raise InvalidField("request_id must be 1-128 characters of letters, digits and . _ : -")
    return endpoint, label, request_id


@router.get("/feedback/status", response_model=FeedbackState)
async def feedback_state(request: Request, settings: SettingsDep) -> FeedbackState:
    """Whether corrections are taken (DIGITS_FEEDBACK_DB is set), and their rate limit."""
    on = request.app.state.feedback is not None
    return FeedbackState(enabled=on, per_minute=settings.feedback_per_minute if on else None)


@router.post(
    "/feedback",
    status_code=201,
    response_model=FeedbackCreated,
    responses=_errors(
        *UNREADABLE,
        *COMMON_ERRORS,
        (404, "Feedback is off (DIGITS_FEEDBACK_DB unset)", "feedback_off", "feedback is off; set DIGITS_FEEDBACK_DB"),
        (
            422,
            "A bad label or field, or an image the model cannot read",
            "invalid_label",
            "label must be one digit 0-9 or not_a_digit, not 'seven'",
        ),
        (422, "A bad label or field, or an image the model cannot read", "no_ink", "the image is blank: no ink found"),
        (
            429,
            "Too many corrections from this client; retry after Retry-After seconds",
            "too_many_requests",
            "more than 30 corrections a minute from this client; retry in 2 s",
        ),
        (
            503,
            "Not ready, overloaded or timed out; retry after Retry-After seconds",
            "feedback_unavailable",
            "the feedback database could not be reached; retry shortly",
        ),
        (
            507,
            "The store holds DIGITS_FEEDBACK_MAX_RECORDS records: nothing more is stored",
            "feedback_full",
            "the feedback store holds its limit of 100000 records",
        ),
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", "label"],
                        "properties": {
                            "file": {"type": "string", "format": "binary", "description": "the image as sent"},
                            "label": {"type": "string", "description": "0-9, a number, or not_a_digit"},
                            "endpoint": {"type": "string", "enum": list(ENDPOINTS)},
                            "request_id": {"type": "string", "description": "X-Request-ID of the answer corrected"},
                        },
                    }
                }
            },
        }
    },
)
async def post_feedback(request: Request, engine: EngineDep, settings: SettingsDep, metrics: MetricsDep) -> JSONAnswer:
    """A correction: the image (as sent to /predict or /predict/number) and what it really shows. The
    model reads it again (its answer is not taken from the client), and the record (the label, that
    answer, the model version, the 28x28 inputs, and the upload when DIGITS_FEEDBACK_KEEP_UPLOADS is on)
    is on disk before the 201. Feedback never changes the served model by itself."""
    feedback = _feedback(request)
    client = request.client.host if request.client else "unknown"
    wait = feedback.limit.retry_after(client)
    if wait is not None:
        raise TooManyCorrections(
            f"more than {settings.feedback_per_minute} corrections a minute from this client; retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    upload, fields = read_form(request.headers.get("content-type", ""), await request.body(), settings.max_upload_bytes)
    endpoint, label, request_id = parse_fields(fields)
    reading = await engine.off_loop(read, engine.predictor, upload.data, endpoint)
    keep = feedback.keep_uploads and len(upload.data) <= feedback.max_kept_bytes
    correction = Correction(endpoint, label, reading.predicted, reading.confidence, reading.model_version,
                            reading.inputs, reading.count, request_id, upload.data if keep else None,
                            upload.content_type if keep else None)  # fmt: skip
    try:
        record = await run_in_threadpool(feedback.add, correction)
    except StoreFull as e:
        raise FeedbackFull(str(e)) from None
    except Unavailable:
        raise FeedbackUnavailable(
            "the feedback database could not be reached; retry shortly", headers={"Retry-After": "5"}
        ) from None
    metrics.observe_feedback(reading.model_version, correction.right)
    body = {"id": record, "label": label, "predicted": reading.predicted, "right": correction.right,
            "confidence": reading.confidence, "model_version": reading.model_version, "upload_kept": keep}  # fmt: skip
    return JSONAnswer(body, status_code=201)


@admin_router.get(
    "/feedback/summary",
    response_model=FeedbackSummary,
    responses=_errors(
        (401, "No bearer token, or not DIGITS_ADMIN_TOKEN", "unauthorized", "a valid bearer token is needed"),
        (404, "The admin endpoints or feedback are off", "feedback_off", "feedback is off; set DIGITS_FEEDBACK_DB"),
        (
            503,
            "The feedback database cannot be reached; retry after Retry-After seconds",
            "feedback_unavailable",
            "the feedback database could not be reached; retry shortly",
        ),
    ),
)
async def feedback_summary(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Any:
    """Per model version, how many corrections and the share the model had right; the commonest
    confusions (label, what the model said); corrections per label. Needs DIGITS_ADMIN_TOKEN."""
    require_admin(settings, credentials)
    feedback = _feedback(request)
    try:
        return await run_in_threadpool(feedback.summary)
    except Unavailable:
        raise FeedbackUnavailable(
            "the feedback database could not be reached; retry shortly", headers={"Retry-After": "5"}
        ) from None
