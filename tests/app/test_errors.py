"""app.errors: every domain error's status, code and message, mapped in one place."""

from __future__ import annotations

import pytest

from app.errors import (
    InvalidMultipart,
    MissingFile,
    NotReady,
    PayloadTooLarge,
    ServiceError,
    TooManyFiles,
    UnsupportedMediaType,
    error_body,
    mapped,
)
from model.imaging.errors import (
    CorruptImage,
    EmptyImage,
    ImageTooLarge,
    NoInk,
    NotAnImage,
    PreprocessError,
    TruncatedImage,
)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (NotAnImage("m"), 400, "not_an_image"),
        (CorruptImage("m"), 400, "corrupt_image"),
        (TruncatedImage("m"), 400, "truncated_image"),
        (EmptyImage("m"), 400, "empty_image"),
        (ImageTooLarge("m"), 413, "image_too_large"),
        (NoInk("m"), 422, "no_ink"),
        (InvalidMultipart("m"), 400, "invalid_multipart"),
        (PayloadTooLarge("m"), 413, "payload_too_large"),
        (UnsupportedMediaType("m"), 415, "unsupported_media_type"),
        (MissingFile("m"), 422, "missing_file"),
        (TooManyFiles("m"), 422, "too_many_files"),
        (NotReady("m", headers={"Retry-After": "1"}), 503, "not_ready"),
    ],
)
def test_every_error_has_its_status(error: ServiceError | PreprocessError, status: int, code: str) -> None:
    headers = {"Retry-After": "1"} if status == 503 else None
    assert mapped(error) == (status, code, "m", headers)


def test_the_error_shape() -> None:
    expected = {"error": {"code": "no_ink", "message": "blank", "request_id": "abc"}}
    assert error_body("no_ink", "blank", "abc") == expected
