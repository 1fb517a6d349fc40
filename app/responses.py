"""The answers' one JSON encoder (orjson) and the one place a prediction's body is built.

Every JSON body, answers and errors alike, from the routes, the error handlers and the ASGI
layers (`app.fastpath`, `app.middleware`), is written by `encode`: the same answer has the same
bytes whichever path served it.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse
from starlette.types import Send

from app.predictor import Answer
from model.imaging.errors import NotADigit

JSON = "application/json"


def encode(body: Any) -> bytes:
    """json.dumps's values, compact; orjson spells some floats shorter (2.5e-8, not 2.5e-08)."""
    return orjson.dumps(body)


class JSONAnswer(JSONResponse):
    """FastAPI's response class for every route: bodies written by `encode`."""

    def render(self, content: Any) -> bytes:
        return encode(content)


def prediction_body(answer: Answer, refusal: bool = False) -> dict[str, Any]:
    """The shape of `app.schemas.Prediction`, built without a second validation on the hot path;
    with `refusal` (?refuse=false), also whether the service would have refused it and why."""
    body = {"digit": answer.digit, "confidence": answer.confidence, "probabilities": answer.probabilities,
            "model_version": answer.model_version}  # fmt: skip
    if refusal:
        score = answer.confidence if answer.score is None else answer.score
        body["refusal"] = {"refused": answer.refused, "score": score, "threshold": answer.threshold}
    return body


def accepted(answer: Answer) -> Answer:
    """The answer, or NotADigit (422 `not_a_digit`) when its refusal score is under the threshold."""
    if answer.refused:
        raise NotADigit(
            f"this image does not look like a digit: its refusal score {answer.score:.3f} is under the "
            f"threshold {answer.threshold:.3f} (the best guess would be {answer.digit}, confidence "
            f"{answer.confidence:.3f}); send ?refuse=false for the best guess anyway"
        )
    return answer


async def send_json(send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A whole JSON response, for the ASGI layers that answer without a Response object."""
    data = encode(body)
    raw = [(b"content-type", JSON.encode()), (b"content-length", str(len(data)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})
