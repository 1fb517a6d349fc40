"""app.responses: one encoder for every JSON body, whichever path wrote it."""

from __future__ import annotations

import json

import orjson
from fastapi.testclient import TestClient

from app.errors import error_body
from app.predictor import Answer
from app.responses import JSONAnswer, encode, prediction_body


def test_encode_is_orjson_with_json_dumps_values() -> None:
    body = {"digit": 7, "confidence": 2.5e-08, "probabilities": [0.1, 1e-05], "text": "é"}
    assert encode(body) == orjson.dumps(body)
    assert json.loads(encode(body)) == body


def test_prediction_body_is_the_documented_shape() -> None:
    answer = Answer(digit=3, confidence=0.5, probabilities=[0.05] * 10, model_version="abc")
    assert prediction_body(answer) == {
        "digit": 3,
        "confidence": 0.5,
        "probabilities": [0.05] * 10,
        "model_version": "abc",
    }


def test_json_answer_renders_with_the_encoder() -> None:
    assert (
        JSONAnswer({"a": 1e-05, "b": 2.5e-08}).body == encode({"a": 1e-05, "b": 2.5e-08}) == b'{"a":0.00001,"b":2.5e-8}'
    )


def test_errors_from_the_middleware_routes_and_fast_path_share_the_encoder(client: TestClient) -> None:
    """Errors answered before routing (413 from Content-Length), by a route (404) and by the fast
    path (415) are all `encode(error_body(...))`."""
    too_big = client.post("/predict", content=b"x" * 300_000, headers={"content-type": "image/png"})
    missing = client.get("/nowhere")
    wrong = client.post("/predict", content=b"x", headers={"content-type": "text/plain"})
    for r in (too_big, missing, wrong):
        error = r.json()["error"]
        assert r.content == encode(error_body(error["code"], error["message"], r.headers["x-request-id"]))
    assert [r.status_code for r in (too_big, missing, wrong)] == [413, 404, 415]
