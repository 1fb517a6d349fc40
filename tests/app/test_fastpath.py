"""app.fastpath answers the common /predict requests itself, exactly as the FastAPI route would."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app import uploads
from app.main import create_app
from app.settings import Settings
from tests.helpers import draw_seven, encode, photo_like_jpeg

BLANK = encode(Image.new("L", (64, 64), 255))
SEVEN = encode(draw_seven())


@pytest.fixture
def route_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every request that reached the FastAPI route's upload reading."""
    calls: list[str] = []
    original = uploads.read_single

    def recording(content_type: str, body: bytes, limit: int) -> Any:
        calls.append(content_type)
        return original(content_type, body, limit)

    monkeypatch.setattr("app.routers.predict.read_single", recording)
    return calls


def _anonymous(response: Any) -> bytes:
    """The body with its request id taken out."""
    return bytes(response.content).replace(response.headers["x-request-id"].encode(), b"")


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"files": {"file": ("seven.png", SEVEN, "image/png")}}, 200),
        ({"content": photo_like_jpeg(), "headers": {"content-type": "image/jpeg"}}, 200),
        ({"files": {"file": ("seven.png", SEVEN, "image/png")}, "data": {"note": "hi"}}, 200),  # an extra field
        ({"content": b"garbage", "headers": {"content-type": "image/png"}}, 400),
        ({"content": b"", "headers": {"content-type": "image/png"}}, 400),
        ({"content": b"x" * 210_000, "headers": {"content-type": "image/png"}}, 413),
        ({"files": {"file": ("blank.png", BLANK, "image/png")}}, 422),
        ({"files": {"file": ("cut.png", SEVEN[:300], "image/png")}}, 400),
        ({"files": [("file", ("a.png", SEVEN, "image/png")), ("file", ("b.png", SEVEN, "image/png"))]}, 422),
        ({"data": {"file": "not a file"}, "files": {"other": ("x.png", SEVEN, "image/png")}}, 422),
        ({"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=x"}}, 400),
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415),
    ],
    ids=[
        "multipart",
        "raw-jpeg",
        "extra-field",
        "raw-garbage",
        "raw-empty",
        "raw-too-large",
        "multipart-blank",
        "multipart-cut",
        "two-files",
        "text-field",
        "malformed",
        "text-plain",
    ],
)
def test_fast_path_answers_as_the_route_byte_for_byte(
    client: TestClient, route_calls: list[str], kwargs: dict[str, Any], status: int
) -> None:
    fast = client.post("/predict", **kwargs)
    assert route_calls == []  # answered before the router
    routed = client.post("/predict?explain=false", **kwargs)
    assert len(route_calls) == 1
    assert fast.status_code == routed.status_code == status
    assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"
    assert _anonymous(fast) == _anonymous(routed)
    assert fast.headers["x-request-id"] != routed.headers["x-request-id"]


def test_queries_go_to_the_route(client: TestClient, route_calls: list[str]) -> None:
    r = client.post("/predict?explain=true", files={"file": ("seven.png", SEVEN, "image/png")})
    assert r.status_code == 200
    assert set(r.json()) == {"digit", "confidence", "probabilities", "model_version", "explanation"}
    assert len(route_calls) == 1


def test_before_the_model_is_ready_the_route_answers(settings: Settings) -> None:
    with TestClient(create_app(settings)) as c:
        c.app.state.ready = False  # type: ignore[attr-defined]  # as while shutting down
        r = c.post("/predict", content=SEVEN, headers={"content-type": "image/png"})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "not_ready"


def test_fast_path_answers_carry_cors_headers(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"cors_origins": ["http://example.test"]}))
    with TestClient(app) as c:
        r = c.post("/predict", content=SEVEN, headers={"content-type": "image/png", "origin": "http://example.test"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://example.test"
    assert "x-request-id" in r.headers["access-control-expose-headers"].lower()
