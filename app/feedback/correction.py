"""What POST /feedback stores, and the errors of storing it: no database code here, so that the
service imports SQLAlchemy and Alembic, which are large, only when feedback is on."""

from __future__ import annotations

from dataclasses import dataclass


class StoreFull(Exception):
    """The record cap (DIGITS_FEEDBACK_MAX_RECORDS) is reached: nothing is stored or overwritten."""


class Unavailable(Exception):
    """The database cannot be reached (or migrated) now."""


@dataclass(frozen=True)
class Correction:
    """The client's label, and the model's own reading of the image."""

    endpoint: str
    label: str
    predicted: str
    confidence: float
    model_version: str
    inputs: bytes  # input_count x 784 uint8
    input_count: int
    request_id: str | None = None
    upload: bytes | None = None
    upload_type: str | None = None

    @property
    def right(self) -> bool:
        return self.label == self.predicted
