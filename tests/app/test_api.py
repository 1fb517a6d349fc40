"""Every endpoint and every error, through the real lifespan, with exact status codes and bodies."""

from __future__ import annotations

import gc
import re

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.routers.page import CSP
from app.settings import Settings
from app.uploads import Upload
from model.checkpoint import DEFAULT_CHECKPOINT, sha256_of
from tests.helpers import draw_seven, encode, error, photo_like_jpeg, png_with_size

VERSION = sha256_of(DEFAULT_CHECKPOINT)[:12]


def test_predict_multipart_mnist_png(real_client: TestClient, mnist_png: tuple[bytes, int]) -> None:
    data, label = mnist_png
    r = real_client.post("/predict", files={"file": ("digit.png", data, "image/png")})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"digit", "confidence", "probabilities", "model_version"}
    assert body["digit"] == label == 7
    assert body["model_version"] == VERSION
    assert len(body["probabilities"]) == 10
    assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-6)
    assert body["confidence"] == max(body["probabilities"]) == body["probabilities"][7]
    assert body["confidence"] > 0.9


def test_predict_raw_jpeg_photo(real_client: TestClient) -> None:
    r = real_client.post("/predict", content=photo_like_jpeg(), headers={"content-type": "image/jpeg"})
    assert r.status_code == 200
    assert r.json()["digit"] == 7


def test_predict_transparent_canvas(real_client: TestClient) -> None:
    from tests.helpers import canvas

    r = real_client.post("/predict", files={"file": ("canvas.png", canvas((0, 0, 0)), "image/png")})
    assert r.status_code == 200
    assert r.json()["digit"] == 7


@pytest.mark.parametrize(
    ("kwargs", "status", "code", "message"),
    [
        (
            {"files": {"file": ("x.png", b"garbage bytes", "image/png")}},
            400,
            "not_an_image",
            "not an image in a supported format (PNG, JPEG, GIF, BMP, WEBP, TIFF)",
        ),
        (
            {"files": {"file": ("x.png", encode(draw_seven())[:300], "image/png")}},
            400,
            "truncated_image",
            "image data is truncated",
        ),
        ({"files": {"file": ("x.png", b"", "image/png")}}, 400, "empty_image", "the upload is empty (0 bytes)"),
        (
            {"content": b"", "headers": {"content-type": "image/png"}},
            400,
            "empty_image",
            "the upload is empty (0 bytes)",
        ),
        (
            {"files": {"file": ("big.png", png_with_size(5000, 5000), "image/png")}},
            413,
            "image_too_large",
            "image is 5000x5000 = 25000000 pixels; the limit is 4000000",
        ),
        (
            {"content": b"x" * 300_000, "headers": {"content-type": "image/png"}},
            413,
            "payload_too_large",
            "the upload is over the 200000-byte limit (DIGITS_MAX_UPLOAD_BYTES)",
        ),
        (
            {"content": b"x" * 210_000, "headers": {"content-type": "image/png"}},
            413,
            "payload_too_large",
            "image is over the 200000-byte limit",
        ),
        (
            {"files": {"file": ("big.png", b"x" * 210_000, "image/png")}},
            413,
            "payload_too_large",
            "image 'big.png' is over the 200000-byte limit",
        ),
        (
            {"content": b"hello", "headers": {"content-type": "text/plain"}},
            415,
            "unsupported_media_type",
            "content type 'text/plain' is not accepted; send multipart/form-data (field 'file') or a raw body "
            "with an image/* content type",
        ),
        (
            {"content": b"hello"},
            415,
            "unsupported_media_type",
            "content type 'none' is not accepted; send multipart/form-data (field 'file') or a raw body "
            "with an image/* content type",
        ),
        (
            {"data": {"other": "1"}, "files": {"image": ("x.png", b"123", "image/png")}},
            422,
            "missing_file",
            "multipart field 'file' with an image file is required",
        ),
        (
            {"files": [("file", ("a.png", b"1", "image/png")), ("file", ("b.png", b"2", "image/png"))]},
            422,
            "too_many_files",
            "send one image in field 'file'; use /predict/batch for several",
        ),
        (
            {"files": {"file": ("blank.png", encode(Image.new("L", (64, 64), 255)), "image/png")}},
            422,
            "no_ink",
            "the image is blank: no ink found",
        ),
    ],
    ids=[
        "not-an-image",
        "truncated",
        "empty-multipart",
        "empty-raw",
        "pixel-cap",
        "body-declared-too-large",
        "raw-too-large",
        "part-too-large",
        "text-plain",
        "no-content-type",
        "missing-field",
        "two-files",
        "blank",
    ],
)
def test_predict_errors(client: TestClient, kwargs: dict[str, object], status: int, code: str, message: str) -> None:
    r = client.post("/predict", **kwargs)  # type: ignore[arg-type]
    assert r.status_code == status
    assert r.json() == error(code, message, r)
    ok = client.post("/predict", content=photo_like_jpeg(), headers={"content-type": "image/jpeg"})
    assert ok.status_code == 200  # still serving


def test_batch_answers_in_order_with_errors_in_their_slots(
    real_client: TestClient, mnist_png: tuple[bytes, int]
) -> None:
    files = [
        ("files", ("a.png", mnist_png[0], "image/png")),
        ("files", ("b.txt", b"not an image", "text/plain")),
        ("files", ("c.jpg", photo_like_jpeg(), "image/jpeg")),
        ("files", ("d.png", b"x" * 210_000, "image/png")),
    ]
    r = real_client.post("/predict/batch", files=files)
    assert r.status_code == 200
    body = r.json()
    assert body["model_version"] == VERSION
    results = body["results"]
    assert [item["index"] for item in results] == [0, 1, 2, 3]
    assert results[0]["filename"] == "a.png"
    assert results[0]["prediction"]["digit"] == 7
    assert results[0]["error"] is None
    assert results[1] == {
        "index": 1,
        "filename": "b.txt",
        "prediction": None,
        "error": {
            "code": "not_an_image",
            "message": "not an image in a supported format (PNG, JPEG, GIF, BMP, WEBP, TIFF)",
            "request_id": r.headers["x-request-id"],
        },
    }
    assert results[2]["prediction"]["digit"] == 7
    assert results[3]["prediction"] is None
    assert results[3]["error"]["code"] == "payload_too_large"
    assert results[3]["error"]["message"] == "image 'd.png' is over the 200000-byte limit"


def test_a_batch_of_unreadable_images_leaves_nothing_to_the_cycle_collector(
    client: TestClient, mnist_png: tuple[bytes, int]
) -> None:
    """The uploads of a batch are freed when it is answered, not at the next full collection:
    an unreadable image's error must not tie the handler's frame (holding the body and every
    upload) into a reference cycle, which under a stream of such batches grows a worker past its
    memory bound."""
    files = [("files", (f"{i}.png", bytes(1000), "image/png")) for i in range(3)]
    gc.collect()
    gc.disable()
    try:
        r = client.post("/predict/batch", files=[*files, ("files", ("ok.png", mnist_png[0], "image/png"))])
        left = [o for o in gc.get_objects() if isinstance(o, Upload)]
    finally:
        gc.enable()
    assert r.status_code == 200
    assert [item["error"]["code"] if item["error"] else None for item in r.json()["results"]] == [
        "not_an_image", "not_an_image", "not_an_image", None,
    ]  # fmt: skip
    assert left == []


def test_batch_too_many_files(client: TestClient, mnist_png: tuple[bytes, int]) -> None:
    files = [("files", (f"{i}.png", mnist_png[0], "image/png")) for i in range(5)]
    r = client.post("/predict/batch", files=files)
    assert r.status_code == 422
    assert r.json() == error("too_many_files", "at most 4 files per request", r)


def test_batch_missing_files(client: TestClient) -> None:
    r = client.post("/predict/batch", files={"file": ("a.png", b"1", "image/png")})
    assert r.status_code == 422
    assert r.json() == error("missing_file", "multipart field 'files' with at least one image file is required", r)


def test_batch_text_field_is_not_a_file(client: TestClient, mnist_png: tuple[bytes, int]) -> None:
    r = client.post("/predict/batch", data={"files": "hello"}, files=[("files", ("a.png", mnist_png[0], "image/png"))])
    assert r.status_code == 422
    assert r.json() == error("missing_file", "every 'files' entry must be a file upload; one is a text field", r)


def test_batch_wrong_content_type(client: TestClient) -> None:
    r = client.post("/predict/batch", content=b"x", headers={"content-type": "image/png"})
    assert r.status_code == 415
    assert r.json() == error(
        "unsupported_media_type",
        "content type 'image/png' is not accepted; send multipart/form-data with field 'files'",
        r,
    )


def test_health_and_model(real_client: TestClient) -> None:
    r = real_client.get("/health/live")
    assert (r.status_code, r.json()) == (200, {"status": "alive"})
    r = real_client.get("/health/ready")
    assert (r.status_code, r.json()) == (200, {"status": "ready", "model_version": VERSION})
    r = real_client.get("/model")
    assert r.status_code == 200
    info = r.json()
    assert info["parameters"] == 242062
    assert info["checkpoint"] == {
        "file": DEFAULT_CHECKPOINT.name,
        "sha256": sha256_of(DEFAULT_CHECKPOINT),
        "version": VERSION,
        "format_version": 1,
    }
    assert info["architecture"]["config"] == {
        "in_channels": 1,
        "image_size": 28,
        "conv1_filters": 16,
        "conv2_filters": 36,
        "kernel_size": 5,
        "fc_size": 128,
        "num_classes": 10,
    }
    assert info["architecture"]["layers"][3] == "flatten: 1764"
    assert info["metrics"]["test_accuracy"] >= 0.994
    assert info["metrics"]["test_n"] == 10000
    assert info["train_config"]["seed"] == 0
    # fine-tuned from the network distilled from six, keeping its answers on MNIST by distilling from
    # it (model/train/distill.py), each named by its SHA-256
    assert len(info["distilled_from"]) == len(info["train_config"]["teachers"]) == 1
    assert info["distilled_from"][0].startswith("891f988314ce")
    assert info["train_config"]["fonts"] > 0
    assert all(re.fullmatch("[0-9a-f]{64}", digest) for digest in info["distilled_from"])
    assert info["preprocess"] == {"version": 1, "size": 28, "box": 20, "mean": 0.1307, "std": 0.3081}
    assert info["created_at"].startswith("20")
    assert info["gate_from"] == "eca113892795"  # the digit gate carried over from the checkpoint before


def test_not_ready_before_the_lifespan(settings: Settings) -> None:
    client = TestClient(create_app(settings))  # no `with`: the lifespan has not run
    for path in ("/health/ready", "/model"):
        r = client.get(path)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert r.json() == error("not_ready", "the model is not loaded yet; retry shortly", r)
    r = client.post("/predict", content=b"x", headers={"content-type": "image/png"})
    assert r.status_code == 503
    assert client.get("/health/live").status_code == 200


def test_not_found_and_wrong_method(client: TestClient) -> None:
    r = client.get("/nope")
    assert (r.status_code, r.json()) == (404, error("not_found", "Not Found", r))
    r = client.get("/predict")
    assert (r.status_code, r.json()) == (405, error("method_not_allowed", "Method Not Allowed", r))


def test_metrics_count_what_was_served(real_client: TestClient, mnist_png: tuple[bytes, int]) -> None:
    real_client.post("/predict", files={"file": ("d.png", mnist_png[0], "image/png")})
    real_client.post("/predict", content=b"junk", headers={"content-type": "image/png"})
    real_client.post("/predict", content=b"x" * 300_000, headers={"content-type": "image/png"})  # 413 before routing
    real_client.post("/predict/batch", files=[("files", ("a.png", mnist_png[0], "image/png"))] * 3)
    r = real_client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'digits_http_requests_total{method="POST",route="/predict",status="200"} 1.0' in text
    assert 'digits_http_requests_total{method="POST",route="/predict",status="400"} 1.0' in text
    assert 'digits_http_requests_total{method="POST",route="/predict",status="413"} 1.0' in text
    assert 'digits_http_requests_total{method="POST",route="/predict/batch",status="200"} 1.0' in text
    assert 'digits_predictions_total{digit="7"} 4.0' in text
    assert "digits_prediction_confidence_count 4.0" in text
    assert "digits_inference_batch_images_count 2.0" in text  # one call with 1 image, one with 3
    assert "digits_inference_batch_images_sum 4.0" in text
    assert 'digits_http_request_duration_seconds_count{route="/predict"} 3.0' in text


def test_openapi_documents_every_response(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    predict = spec["paths"]["/predict"]["post"]
    assert set(predict["responses"]) == {"200", "400", "413", "415", "422", "503"}
    assert set(predict["requestBody"]["content"]) == {"multipart/form-data", "image/*"}
    examples = predict["responses"]["422"]["content"]["application/json"]["examples"]
    assert set(examples) == {
        "missing_file",
        "no_ink",
        "not_a_digit",
        "several_digits",
        "too_many_files",
        "unsupported_image",
    }
    ours = {p for p in spec["paths"] if not p.startswith("/v2")}  # the Open Inference Protocol's: tests/app/test_v2.py
    assert ours == {
        "/predict",
        "/predict/batch",
        "/predict/number",
        "/health/live",
        "/health/ready",
        "/model",
        "/metrics",
        "/feedback",  # (its summary is documented only with an admin token: tests/app/test_feedback.py)
        "/feedback/status",
    }
    assert {"/v2/models/{name}/infer", "/v2/health/ready", "/v2"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200


def test_explain_returns_both_images(real_client: TestClient) -> None:
    import base64
    import io

    r = real_client.post("/predict?explain=true", content=photo_like_jpeg(), headers={"content-type": "image/jpeg"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"digit", "confidence", "probabilities", "model_version", "explanation"}
    assert body["digit"] == 7
    images = {}
    for key in ("input_png", "saliency_png"):
        prefix, data = body["explanation"][key].split(",", 1)
        assert prefix == "data:image/png;base64"
        images[key] = Image.open(io.BytesIO(base64.b64decode(data)))
        assert images[key].size == (28, 28)
    assert images["input_png"].mode == "L"
    assert images["saliency_png"].mode == "RGB"
    plain = real_client.post("/predict", content=photo_like_jpeg(), headers={"content-type": "image/jpeg"}).json()
    assert {k: v for k, v in body.items() if k != "explanation"} == plain  # same answer, same keys without it


def test_explain_must_be_a_boolean(client: TestClient) -> None:
    r = client.post("/predict?explain=maybe", content=photo_like_jpeg(), headers={"content-type": "image/jpeg"})
    assert r.status_code == 422
    assert r.json() == error(
        "invalid_request", "query.explain: Input should be a valid boolean, unable to interpret input", r
    )


def test_page_and_its_files(real_client: TestClient) -> None:
    r = real_client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "connect-src 'self'" in r.headers["content-security-policy"]
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert '<canvas id="pad"' in r.text
    assert "http://" not in r.text
    assert "https://" not in r.text
    for path, kind in [
        ("/static/app.js", "javascript"),
        ("/static/app.css", "text/css"),
        ("/report/confusion_matrix.png", "image/png"),
        ("/report/misclassified.png", "image/png"),
    ]:
        r = real_client.get(path)
        assert r.status_code == 200, path
        assert kind in r.headers["content-type"], path
    js = real_client.get("/static/app.js").text
    assert "http://" not in js
    assert "https://" not in js


@pytest.mark.parametrize("path", ["/", "/static/index.html", "/static/app.js", "/static/app.css"])
def test_the_pages_headers_on_every_path_that_serves_it(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-security-policy"] == CSP
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "path", ["/health/live", "/health/ready", "/model", "/metrics", "/v2", "/v2/health/live", "/v2/models/digits", "/"]
)
def test_head_is_answered_wherever_get_is(client: TestClient, path: str) -> None:
    get, head = client.get(path), client.head(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers.get("content-type") == get.headers.get("content-type")
    if "content-length" in get.headers and path != "/metrics":  # (the metrics change between the two)
        assert head.headers["content-length"] == get.headers["content-length"]


def test_head_where_only_post_is_is_405(client: TestClient) -> None:
    r = client.head("/predict")
    assert (r.status_code, r.content, r.headers["allow"]) == (405, b"", "POST")


def test_openapi_documents_explain_and_refuse(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    params = spec["paths"]["/predict"]["post"]["parameters"]
    assert [(p["name"], p["in"], p["schema"]["default"]) for p in params] == [
        ("explain", "query", False),
        ("refuse", "query", True),
    ]
