"""POST /predict/number: the digits of a written number, left to right."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Query, Request

from app.deps import EngineDep, MetricsDep, SettingsDep
from app.responses import JSONAnswer, accepted, prediction_body
from app.routers.predict import COMMON_ERRORS, REFUSE_DOC, UNREADABLE, _errors, one_image
from app.schemas import NUMBER_EXAMPLE, NumberPrediction
from app.uploads import read_single
from model.imaging.errors import NotADigit
from model.imaging.number import MAX_DIGITS

router = APIRouter(tags=["predict"])

_NO_DIGITS = "No image, no ink, a digit that is not one, or too many digits"


@router.post(
    "/predict/number",
    response_model=NumberPrediction,
    response_model_exclude_none=True,
    responses={
        200: {"content": {"application/json": {"example": NUMBER_EXAMPLE}}},
        **_errors(
            *UNREADABLE,
            *COMMON_ERRORS,
            (422, _NO_DIGITS, "missing_file", "multipart field 'file' with an image file is required"),
            (422, _NO_DIGITS, "no_ink", "the image is blank: no ink found"),
            (
                422,
                _NO_DIGITS,
                "not_a_digit",
                "digit 2 of 3 does not look like a digit: its refusal score 0.004 is under the threshold 0.107 "
                "(the best guess would be 4, confidence 0.610); send ?refuse=false for the best guess anyway",
            ),
            (
                422,
                _NO_DIGITS,
                "too_many_digits",
                f"{MAX_DIGITS + 3} digits found; at most {MAX_DIGITS} are read in one image",
            ),
            (422, _NO_DIGITS, "unsupported_image", "images in colour mode P;4 are not supported"),
            (422, _NO_DIGITS, "too_many_files", "send one image in field 'file'; use /predict/batch for several"),
        ),
    },
    openapi_extra=one_image(
        "The image as multipart field `file`, or as the raw body with an `image/*` type, as for /predict: a number "
        "written, printed or drawn in one row, its digits side by side (gaps of any width, sizes and a sloping "
        f"baseline are fine). At most {MAX_DIGITS} digits."
    ),
)
async def predict_number(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    refuse: Annotated[
        bool, Query(description=REFUSE_DOC.replace("an image whose", "a number one of whose digits"))
    ] = True,
) -> JSONAnswer:
    """Read the number in one image: its digits found, ordered left to right, each read through the same
    preprocessing and model as /predict, with its box in the upload's pixels. One digit is a number too."""
    upload = read_single(request.headers.get("content-type", ""), await request.body(), settings.max_upload_bytes)
    found = await engine.predict_number(upload.data)
    digits = []
    for k, (digit, answer) in enumerate(found, start=1):
        if refuse:
            try:
                accepted(answer)
            except NotADigit as e:
                raise NotADigit(f"digit {k} of {len(found)} {str(e).removeprefix('this image ')}") from None
        body = prediction_body(answer, refusal=not refuse)
        del body["model_version"]
        digits.append({**body, "box": list(digit.box)})
    metrics.observe_number(len(digits))
    return JSONAnswer(
        {
            "number": "".join(str(d["digit"]) for d in digits),
            "confidence": math.prod(d["confidence"] for d in digits),
            "digits": digits,
            "model_version": found[0][1].model_version,
        }
    )
