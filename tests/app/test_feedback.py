"""POST /feedback, GET /feedback and GET /feedback/summary in one process, on a real SQLite file:
what is stored, every bad input with its status and code, the rate limit, the record cap, the admin
token, the metrics, and a database that cannot be reached."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import SecretStr

from app.feedback.limits import RateLimit
from app.feedback.store import FeedbackStore
from app.main import create_app
from app.settings import Settings, SettingsError
from model.data import MnistSplit
from tests.helpers import draw_seven, encode, multipart, png_with_size

TOKEN = "feedback-admin-token-0123"


def make_client(settings: Settings, tmp_path: Path, **feedback: object) -> TestClient:
    url = str(feedback.pop("feedback_db", f"sqlite:///{tmp_path / 'fb.db'}"))
    values = {"feedback_db": SecretStr(url), "admin_token": SecretStr(TOKEN), **feedback}
    return TestClient(create_app(settings.model_copy(update=values)), raise_server_exceptions=False)


@pytest.fixture
def fb(settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    with make_client(settings, tmp_path) as c:
        yield c


def send(client: TestClient, image: bytes, **fields: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    parts = [("file", "digit.png", image), *((k, None, v.encode()) for k, v in fields.items())]
    body, content_type = multipart(parts)
    r = client.post("/feedback", content=body, headers={"content-type": content_type})
    return r.status_code, r.json(), dict(r.headers)


def store_of(tmp_path: Path) -> FeedbackStore:
    return FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}", 1000)


def test_a_correction_is_stored_with_the_models_own_reading(fb: TestClient, mnist_png: tuple[bytes, int],
                                                            tmp_path: Path) -> None:  # fmt: skip
    status, body, _ = send(fb, mnist_png[0], label="3", request_id="abc-123")
    assert status == 201, body
    model = fb.get("/model").json()["checkpoint"]["version"]
    assert body["model_version"] == model
    assert body["label"] == "3"
    assert body["upload_kept"] is False
    (row,) = list(store_of(tmp_path).records())
    assert (row.id, row.label, row.request_id, row.endpoint, row.model_version) == (body["id"], "3", "abc-123",
                                                                                  "predict", model)  # fmt: skip
    assert row.predicted == body["predicted"]
    assert row.right == (body["predicted"] == "3")
    assert row.input_count == 1
    assert len(row.inputs) == 784
    assert row.upload is None
    assert fb.get("/feedback/status").json() == {"enabled": True, "per_minute": 30}


def test_a_number_is_read_as_a_number(real_settings: Settings, tmp_path: Path, mnist_test: MnistSplit) -> None:
    row = Image.new("L", (200, 80), 255)
    for k, index in enumerate((0, 2)):  # a 7 and a 1
        row.paste(Image.fromarray(255 - mnist_test.images[index].numpy()).resize((60, 60)), (20 + 90 * k, 10))
    with make_client(real_settings, tmp_path) as c:
        status, body, _ = send(c, encode(row), label="71")  # the endpoint follows from the label
    assert status == 201, body
    (stored,) = list(store_of(tmp_path).records())
    assert (stored.endpoint, stored.label, stored.predicted, body["predicted"], body["right"]) == (
        "number", "71", "71", "71", True)  # fmt: skip
    assert stored.input_count == 2
    assert len(stored.inputs) == 2 * 784


def test_the_upload_is_kept_only_when_allowed_and_small_enough(settings: Settings, tmp_path: Path,
                                                                mnist_png: tuple[bytes, int]) -> None:  # fmt: skip
    with make_client(settings, tmp_path, feedback_keep_uploads=True, feedback_max_kept_bytes=len(mnist_png[0])) as c:
        assert send(c, mnist_png[0], label="7")[1]["upload_kept"] is True
        big = encode(Image.open(io.BytesIO(mnist_png[0])).resize((56, 56)))
        assert send(c, big, label="7")[1]["upload_kept"] is False
    rows = list(store_of(tmp_path).records())
    assert rows[0].upload == mnist_png[0]
    assert rows[1].upload is None
    assert rows[1].input_count == 1


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({}, "invalid_label"),
        ({"label": "seven"}, "invalid_label"),
        ({"label": "12", "endpoint": "predict"}, "invalid_label"),
        ({"label": "1" * 40, "endpoint": "number"}, "invalid_label"),
        ({"label": "٣"}, "invalid_label"),  # a digit, but not 0-9
        ({"label": "3", "endpoint": "batch"}, "invalid_field"),
        ({"label": "3", "request_id": "x" * 200}, "invalid_field"),
        ({"label": "3", "request_id": "a b\n"}, "invalid_field"),
    ],
)
def test_bad_fields_are_422_and_store_nothing(fb: TestClient, mnist_png: tuple[bytes, int], tmp_path: Path,
                                              fields: dict[str, str], code: str) -> None:  # fmt: skip
    status, body, _ = send(fb, mnist_png[0], **fields)
    assert (status, body["error"]["code"]) == (422, code), body
    assert store_of(tmp_path).count() == 0


@pytest.mark.parametrize(
    ("image", "status", "code"),
    [
        (b"not an image at all", 400, "not_an_image"),
        (b"", 400, "empty_image"),
        (encode(draw_seven())[:400], 400, "truncated_image"),
        (encode(Image.new("L", (60, 60), 255)), 422, "no_ink"),
        (b"\0" * 250_000, 413, "payload_too_large"),
        (png_with_size(3000, 2000), 413, "image_too_large"),  # over the tests' 4,000,000-pixel cap
    ],
)
def test_bad_images_get_the_usual_errors(fb: TestClient, tmp_path: Path, image: bytes, status: int, code: str) -> None:
    got, body, _ = send(fb, image, label="1")
    assert (got, body["error"]["code"]) == (status, code), body
    assert store_of(tmp_path).count() == 0


def test_a_body_that_is_not_a_form_or_has_no_file(fb: TestClient, mnist_png: tuple[bytes, int]) -> None:
    r = fb.post("/feedback", content=mnist_png[0], headers={"content-type": "image/png"})
    assert (r.status_code, r.json()["error"]["code"]) == (415, "unsupported_media_type")
    body, content_type = multipart([("label", None, b"1")])
    r = fb.post("/feedback", content=body, headers={"content-type": content_type})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "missing_file")
    r = fb.post("/feedback", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data; boundary=x"})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_multipart")


def test_a_client_past_its_rate_is_429_with_retry_after(settings: Settings, tmp_path: Path,
                                                        mnist_png: tuple[bytes, int]) -> None:  # fmt: skip
    with make_client(settings, tmp_path, feedback_per_minute=3) as c:
        assert [send(c, mnist_png[0], label="7")[0] for _ in range(3)] == [201] * 3
        status, body, headers = send(c, mnist_png[0], label="7")
    assert (status, body["error"]["code"]) == (429, "too_many_requests")
    assert 1 <= int(headers["retry-after"]) <= 20
    assert store_of(tmp_path).count() == 3


def test_the_rate_limit_refills_over_time() -> None:
    now = [0.0]
    limit = RateLimit(60, clock=lambda: now[0])  # one a second, bursts of 60
    assert all(limit.retry_after("a") is None for _ in range(60))
    assert limit.retry_after("a") == 1
    assert limit.retry_after("b") is None
    now[0] += 1.0
    assert limit.retry_after("a") is None
    assert limit.retry_after("a") == 1


def test_past_the_record_cap_507_and_nothing_overwritten(settings: Settings, tmp_path: Path,
                                                          mnist_png: tuple[bytes, int]) -> None:  # fmt: skip
    with make_client(settings, tmp_path, feedback_max_records=2) as c:
        ids = [send(c, mnist_png[0], label=str(d))[1]["id"] for d in (1, 2)]
        status, body, _ = send(c, mnist_png[0], label="3")
    assert (status, body["error"]["code"]) == (507, "feedback_full")
    assert [(r.id, r.label) for r in store_of(tmp_path).records()] == list(zip(ids, ["1", "2"], strict=True))


def test_summary_needs_the_admin_token_and_counts(fb: TestClient, mnist_png: tuple[bytes, int]) -> None:
    predicted = send(fb, mnist_png[0], label="7")[1]["predicted"]
    wrong = "1" if predicted != "1" else "2"
    send(fb, mnist_png[0], label=wrong)
    assert fb.get("/feedback/summary").status_code == 401
    assert fb.get("/feedback/summary", headers={"authorization": "Bearer wrong-token-0123456"}).status_code == 401
    summary = fb.get("/feedback/summary", headers={"authorization": f"Bearer {TOKEN}"}).json()
    assert summary["records"] == 2
    assert summary["labels"] == {"7": 1, wrong: 1}
    (version,) = summary["versions"]
    assert version["records"] == 2
    assert version["right"] == (predicted == "7") + 0
    assert {"label": wrong, "predicted": predicted, "count": 1} in summary["confusions"]
    documented = fb.get("/openapi.json").json()["paths"]["/feedback/summary"]["get"]["responses"]
    assert set(documented) == {"200", "401", "404", "503"}
    metrics = fb.get("/metrics").text
    assert f'digits_feedback_total{{model_version="{version["model_version"]}",verdict="wrong"}}' in metrics


def test_off_without_a_database(client: TestClient, mnist_png: tuple[bytes, int]) -> None:
    status, body, _ = send(client, mnist_png[0], label="7")
    assert (status, body["error"]["code"]) == (404, "feedback_off")
    assert client.get("/feedback/status").json() == {"enabled": False, "per_minute": None}


def test_a_database_url_of_another_kind_stops_start_up(settings: Settings) -> None:
    with pytest.raises(SettingsError, match="DIGITS_FEEDBACK_DB=\\(hidden\\)"):
        create_app(settings.model_copy(update={"feedback_db": SecretStr("mysql://user:secret@db/x")}))


def test_an_unreachable_database_is_503_and_predictions_go_on(settings: Settings, tmp_path: Path,
                                                              mnist_png: tuple[bytes, int]) -> None:  # fmt: skip
    from tests.helpers import free_port

    with make_client(settings, tmp_path, feedback_db=f"postgresql://u:p@127.0.0.1:{free_port()}/db") as c:
        assert c.get("/health/ready").status_code == 200
        status, body, headers = send(c, mnist_png[0], label="7")
        assert (status, body["error"]["code"], headers["retry-after"]) == (503, "feedback_unavailable", "5")
        assert c.post("/predict", files={"file": ("d.png", mnist_png[0], "image/png")}).status_code == 200
