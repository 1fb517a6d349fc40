"""Response bodies, as documented in OpenAPI."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, machine-readable error code", examples=["not_an_image"])
    message: str = Field(description="what went wrong, for people", examples=["not an image in a supported format"])
    request_id: str | None = Field(None, description="the X-Request-ID of the request")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Prediction(BaseModel):
    digit: int = Field(ge=0, le=9, description="the most probable digit", examples=[7])
    confidence: float = Field(
        ge=0, le=1, description="probability of `digit` (temperature-calibrated)", examples=[0.997]
    )
    probabilities: list[float] = Field(
        min_length=10, max_length=10, description="probability of each digit 0-9, summing to 1"
    )
    model_version: str = Field(description="first 12 hex digits of the checkpoint's SHA-256", examples=["3b073861e954"])


class RefusalInfo(BaseModel):
    refused: bool = Field(description="whether the service would have answered 422 not_a_digit")
    score: float = Field(
        description="the refusal score: the digit gate's probability of a digit (model.gate), or, "
        "for a checkpoint without a gate, the answer's confidence"
    )
    threshold: float | None = Field(description="refused under this score; null when the checkpoint refuses nothing")


class Explanation(BaseModel):
    input_png: str = Field(description="the 28x28 image the model saw (white ink on black), as a PNG data URL")
    saliency_png: str = Field(
        description="gradient x input for the answer, 28x28, as a PNG data URL: red pixels pushed towards the "
        "answer, blue ones away from it"
    )


class ExplainedPrediction(Prediction):
    explanation: Explanation | None = Field(None, description="only with ?explain=true")
    refusal: RefusalInfo | None = Field(None, description="only with ?refuse=false")


class NumberDigit(BaseModel):
    digit: int = Field(ge=0, le=9, description="the digit read here", examples=[2])
    confidence: float = Field(ge=0, le=1, description="probability of `digit` (temperature-calibrated)")
    probabilities: list[float] = Field(min_length=10, max_length=10, description="probability of each digit 0-9")
    box: list[int] = Field(
        min_length=4,
        max_length=4,
        description="where it is: [x0, y0, x1, y1] in the upload's own pixels (after EXIF orientation), x1 and y1 "
        "exclusive",
        examples=[[12, 30, 58, 96]],
    )
    refusal: RefusalInfo | None = Field(None, description="only with ?refuse=false")


class NumberPrediction(BaseModel):
    number: str = Field(description="the digits read, left to right (a string: it may start with 0)", examples=["2026"])
    confidence: float = Field(ge=0, le=1, description="of the whole reading: the product of the digits' confidences")
    digits: list[NumberDigit]
    model_version: str = Field(description="first 12 hex digits of the checkpoint's SHA-256", examples=["3b073861e954"])


class BatchItem(BaseModel):
    index: int = Field(description="position of the file in the request")
    filename: str | None = Field(None, description="the part's file name, as sent")
    prediction: Prediction | None = Field(None, description="the answer, when the image could be read")
    error: ErrorDetail | None = Field(None, description="why this image has no answer; the others are unaffected")


class BatchResponse(BaseModel):
    results: list[BatchItem]
    model_version: str


class ReloadRequest(BaseModel):
    checkpoint: str | None = Field(
        None,
        description="the checkpoint file, relative to DIGITS_CHECKPOINT_DIR (or absolute, inside it), with its "
        ".sha256 beside it; omitted: whatever file is at DIGITS_CHECKPOINT now",
        examples=["mnist_cnn_v2.pt"],
    )

    @field_validator("checkpoint")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("checkpoint: a path cannot hold a NUL byte")
        return value


class ReloadResult(BaseModel):
    model_version: str = Field(description="the version now answering", examples=["9c2e1f4b7a10"])
    previous_version: str = Field(description="the version it replaced", examples=["3b073861e954"])
    changed: bool = Field(description="false when that file was already serving (nothing was swapped)")
    checkpoint: str = Field(description="the file loaded", examples=["/models/mnist_cnn_v2.pt"])
    scope: str = Field(
        description="`all workers` (python -m app: every worker was told and loads it, new ones start with it) "
        "or `this worker` (one worker process, or under `uvicorn --workers`, which this endpoint cannot reach)",
        examples=["all workers"],
    )


class Liveness(BaseModel):
    status: str = Field(examples=["alive"])


class Readiness(BaseModel):
    status: str = Field(examples=["ready"])
    model_version: str


class ModelInfo(BaseModel):
    refusal: dict[str, Any] | None = Field(
        None,
        description="how images with no digit are refused (method, score, what the thresholds were fitted on, the "
        "stored operating points: `thresholds`, and per input lane, `lanes`; `rates`: the operating point in use in "
        "each lane, DIGITS_REFUSAL_RATE or the checkpoint's `default_rates`; `lane_thresholds`: the threshold in use "
        "in each lane, `threshold` the clean lane's); null when the checkpoint refuses nothing",
    )
    architecture: dict[str, Any] = Field(description="network config and layer list")
    parameters: int = Field(description="trainable parameters", examples=[242062])
    checkpoint: dict[str, Any] = Field(description="file name (not its folder), SHA-256, version, format version")
    metrics: dict[str, Any] = Field(description="accuracy and calibration measured when it was trained")
    train_config: dict[str, Any]
    distilled_from: list[str] | None = Field(
        None,
        description="SHA-256 of each network it was distilled from (train_config.teachers, model/train/distill.py); "
        "null when it learnt from the labels alone",
    )
    finetuned: dict[str, Any] | None = Field(
        None,
        description="what it was fine-tuned from and on (model/train/finetune.py: the source version, the extra "
        "images, the share held out, MNIST and the held-out images before and after); null when trained whole",
    )
    gate_from: str | None = Field(
        None,
        description="the version of the checkpoint whose digit gate and refusal thresholds this one carries "
        "unchanged (python -m model.train.gate --carry; the gate never reads the CNN); null when its own",
        examples=["eca113892795"],
    )
    preprocess: dict[str, Any]
    created_at: str | None
    torch_version: str | None


PREDICT_EXAMPLE = {
    "digit": 7,
    "confidence": 0.9991,
    "probabilities": [0.0, 0.0001, 0.0004, 0.0002, 0.0, 0.0, 0.0, 0.9991, 0.0, 0.0002],
    "model_version": "3b073861e954",
}


NUMBER_EXAMPLE = {
    "number": "42",
    "confidence": 0.9968,
    "digits": [
        {
            "digit": 4,
            "confidence": 0.9979,
            "probabilities": [0.0, 0.0, 0.0002, 0.0, 0.9979, 0.0, 0.0001, 0.0015, 0.0, 0.0003],
            "box": [40, 62, 131, 190],
        },
        {
            "digit": 2,
            "confidence": 0.9989,
            "probabilities": [0.0, 0.0004, 0.9989, 0.0003, 0.0, 0.0, 0.0, 0.0004, 0.0, 0.0],
            "box": [172, 58, 251, 186],
        },
    ],
    "model_version": "3b073861e954",
}


def error_example(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "request_id": "5f0c6d0e9a7b4c1d"}}


NOT_READY_RESPONSE: dict[str, Any] = {
    "model": ErrorResponse,
    "description": "The model is not loaded, verified and warmed up yet",
    "content": {
        "application/json": {"example": error_example("not_ready", "the model is not loaded yet; retry shortly")}
    },
}


class FeedbackState(BaseModel):
    enabled: bool = Field(description="whether POST /feedback takes corrections (DIGITS_FEEDBACK_DB is set)")
    per_minute: int | None = Field(None, description="corrections a client may send a minute (per worker)")


class FeedbackCreated(BaseModel):
    id: int = Field(description="the record's id")
    label: str = Field(description="the label sent: a digit, a number, or not_a_digit")
    predicted: str = Field(description="the model's own answer on the image, read again: not_a_digit if refused")
    right: bool = Field(description="whether the model's answer was the label")
    confidence: float = Field(description="the model's confidence in its answer (a number's: its digits' product)")
    model_version: str = Field(description="the checkpoint version that read it")
    upload_kept: bool = Field(description="whether the upload itself was stored (DIGITS_FEEDBACK_KEEP_UPLOADS)")


class VersionAgreement(BaseModel):
    model_version: str
    records: int
    right: int = Field(description="records whose label the model's answer matched")
    agreement: float = Field(description="right / records")


class Confusion(BaseModel):
    label: str
    predicted: str
    count: int


class FeedbackSummary(BaseModel):
    records: int
    max_records: int = Field(description="DIGITS_FEEDBACK_MAX_RECORDS")
    versions: list[VersionAgreement] = Field(description="per model version, most records first")
    confusions: list[Confusion] = Field(description="the commonest wrong answers: label read as predicted")
    labels: dict[str, int] = Field(description="records per label")
