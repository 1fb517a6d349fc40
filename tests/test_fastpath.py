"""app.fastpath answers the common /predict requests itself, exactly as the FastAPI route would."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

import app.routers.predict as predict_route
from app.main import create_app
from app.settings import Settings
from tests.conftest import draw_seven, encode
from tests.test_api import photo_like_jpeg

BLANK = encode(Image.new("L", (64, 64), 255))
SEVEN = encode(draw_seven())


def _without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    if "error" in body:
        body["error"].pop("request_id")
    return body


@pytest.fixture
def route_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every request that reached the FastAPI route's body reading."""
    calls: list[str] = []
    original = predict_route.read_single

    async def recording(request: Any, limit: int) -> Any:
        calls.append(request.url.path)
        return await original(request, limit)

    monkeypatch.setattr(predict_route, "read_single", recording)
    return calls


@pytest.mark.parametrize(
    "kwargs",
    [
        {"files": {"file": ("seven.png", SEVEN, "image/png")}},
        {"content": photo_like_jpeg(), "headers": {"content-type": "image/jpeg"}},
        {"content": b"garbage", "headers": {"content-type": "image/png"}},
        {"content": b"", "headers": {"content-type": "image/png"}},
        {"content": b"x" * 210_000, "headers": {"content-type": "image/png"}},
        {"files": {"file": ("blank.png", BLANK, "image/png")}},
        {"files": {"file": ("cut.png", SEVEN[:300], "image/png")}},
    ],
    ids=["multipart", "raw-jpeg", "raw-garbage", "raw-empty", "raw-too-large", "multipart-blank", "multipart-cut"],
)
def test_fast_path_answers_as_the_route(client: TestClient, route_calls: list[str], kwargs: dict[str, Any]) -> None:
    fast = client.post("/predict", **kwargs)
    assert route_calls == []  # answered before the router
    routed = client.post("/predict?explain=false", **kwargs)
    assert route_calls == ["/predict"]
    assert fast.status_code == routed.status_code
    assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"
    assert _without_request_id(fast.json()) == _without_request_id(routed.json())
    assert fast.headers["x-request-id"] != routed.headers["x-request-id"]


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"files": {"file": ("seven.png", SEVEN, "image/png")}, "data": {"note": "hi"}}, 200),  # an extra field
        ({"files": {"file": ("seven.png", SEVEN, "image/png")}, "params": {"explain": "true"}}, 200),
        ({"files": [("file", ("a.png", SEVEN, "image/png")), ("file", ("b.png", SEVEN, "image/png"))]}, 422),
        ({"data": {"file": "not a file"}, "files": {"other": ("x.png", SEVEN, "image/png")}}, 422),
        ({"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=x"}}, 422),
    ],
    ids=["extra-field", "explain", "two-files", "text-field", "malformed"],
)
def test_everything_else_goes_to_the_route(
    client: TestClient, route_calls: list[str], kwargs: dict[str, Any], status: int
) -> None:
    r = client.post("/predict", **kwargs)
    assert r.status_code == status
    assert route_calls == ["/predict"]


def test_fast_path_answers_carry_cors_headers(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"cors_origins": ["http://example.test"]}))
    with TestClient(app) as c:
        r = c.post("/predict", content=SEVEN, headers={"content-type": "image/png", "origin": "http://example.test"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://example.test"
    assert "x-request-id" in r.headers["access-control-expose-headers"].lower()
