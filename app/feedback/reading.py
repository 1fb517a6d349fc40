"""The model's own reading of a correction's image: computed again, never taken from the client."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.predictor import Answer, Predictor
from model.imaging.decode import open_image
from model.imaging.number import choose

#: The label of an image that holds no digit (the model's answer when it refuses one).
NOT_A_DIGIT = "not_a_digit"


@dataclass(frozen=True)
class Reading:
    predicted: str  # the digit, the number, or NOT_A_DIGIT when it would be refused
    confidence: float  # the digit's, or the product of the number's digits'
    model_version: str
    inputs: bytes  # the 28x28 inputs, uint8 white ink on black, one after another
    count: int


def to_bytes(images: Sequence[np.ndarray]) -> bytes:
    return b"".join((np.clip(image, 0, 1) * 255).round().astype(np.uint8).tobytes() for image in images)


def read(predictor: Predictor, data: bytes, endpoint: str) -> Reading:
    """What /predict (endpoint "predict") or /predict/number ("number") would answer for `data`, at
    the default refusal; a PreprocessError as those endpoints raise it. Not counted in the metrics
    of answers given."""
    answers: Sequence[Answer]
    if endpoint == "predict":
        pre = predictor.preprocess(data)
        images = [pre.image]
        answers = predictor.predict_images(images, counted=False, lanes=[pre.lane])
    else:
        slots = predictor.preprocess_number(open_image(data, predictor.max_pixels), data)
        lanes = [slot.lane for slot in slots for _ in slot.images]
        found = choose(slots, predictor.predict_images([i for s in slots for i in s.images], False, lanes))
        images, answers = [d.image for d, _ in found], [a for _, a in found]
    predicted = NOT_A_DIGIT if any(a.refused for a in answers) else "".join(str(a.digit) for a in answers)
    return Reading(
        predicted, math.prod(a.confidence for a in answers), answers[0].model_version, to_bytes(images), len(images)
    )
