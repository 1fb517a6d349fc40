"""The Open Inference Protocol (KServe v2 REST): in process for its error cases, and with Triton's
own client (`tritonclient[http]`, which nobody here wrote) against a real server."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import Settings
from model.data import MnistSplit
from tests.helpers import Server, encode, multipart, start

N = 6


@pytest.fixture(scope="module")
def pngs(mnist_test: MnistSplit) -> list[bytes]:
    return [encode(Image.fromarray(mnist_test.images[i].numpy(), "L")) for i in range(N)]


@pytest.fixture(scope="module")
def v2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(torch_threads=1, max_batch_files=8, max_batch_bytes=400_000)  # the shipped checkpoint
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def infer(client: TestClient, body: dict[str, Any], path: str = "/v2/models/digits/infer") -> tuple[int, Any]:
    r = client.post(path, content=json.dumps(body).encode(), headers={"content-type": "application/json"})
    return r.status_code, r.json()


def image_input(pngs: list[bytes]) -> dict[str, Any]:
    return {
        "name": "image",
        "datatype": "BYTES",
        "shape": [len(pngs)],
        "data": [base64.b64encode(p).decode() for p in pngs],
    }


def outputs(answer: dict[str, Any]) -> dict[str, list[Any]]:
    return {o["name"]: o["data"] for o in answer["outputs"]}


def test_infer_answers_as_predict(v2: TestClient, pngs: list[bytes]) -> None:
    status, answer = infer(v2, {"id": "req-1", "inputs": [image_input(pngs)]})
    assert status == 200
    assert answer["model_name"] == "digits"
    assert answer["id"] == "req-1"
    assert answer["model_version"] == v2.get("/health/ready").json()["model_version"]
    got = outputs(answer)
    shapes = {o["name"]: (o["datatype"], o["shape"]) for o in answer["outputs"]}
    assert shapes == {
        "digit": ("INT64", [N]),
        "confidence": ("FP32", [N]),
        "probabilities": ("FP32", [N, 10]),
        "refused": ("BOOL", [N]),
    }
    assert got["refused"] == [False] * N  # the shipped checkpoint refuses nothing
    for i, png in enumerate(pngs):
        single = v2.post("/predict", content=png, headers={"content-type": "image/png"}).json()
        assert got["digit"][i] == single["digit"]
        assert got["confidence"][i] == pytest.approx(single["confidence"], abs=1e-6)
        assert got["probabilities"][10 * i : 10 * i + 10] == pytest.approx(single["probabilities"], abs=1e-6)


def test_pixels_in_both_shapes(v2: TestClient, mnist_test: MnistSplit, pngs: list[bytes]) -> None:
    from model.imaging.preprocess import preprocess

    pixels = np.stack([preprocess(p).image for p in pngs[:2]]).astype(np.float32)
    from_images = outputs(infer(v2, {"inputs": [image_input(pngs[:2])]})[1])
    for shape in ([2, 28, 28], [2, 1, 28, 28]):
        body = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": shape, "data": pixels.reshape(-1).tolist()}]}
        status, answer = infer(v2, body)
        assert status == 200
        assert outputs(answer)["digit"] == from_images["digit"]
        assert outputs(answer)["confidence"] == pytest.approx(from_images["confidence"], abs=1e-6)


def test_binary_in_and_out(v2: TestClient, pngs: list[bytes]) -> None:
    blob = b"".join(struct.pack("<I", len(p)) + p for p in pngs)
    head = json.dumps({
        "inputs": [{"name": "image", "datatype": "BYTES", "shape": [N], "parameters": {"binary_data_size": len(blob)}}],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}, {"name": "digit"}],
    }).encode()  # fmt: skip
    r = v2.post(
        "/v2/models/digits/infer",
        content=head + blob,
        headers={"content-type": "application/octet-stream", "inference-header-content-length": str(len(head))},
    )
    assert r.status_code == 200
    cut = int(r.headers["inference-header-content-length"])
    answer = json.loads(r.content[:cut])
    assert [o["name"] for o in answer["outputs"]] == ["probabilities", "digit"]  # as asked, in that order
    probabilities = np.frombuffer(r.content[cut:], dtype="<f4").reshape(N, 10)
    assert answer["outputs"][0]["parameters"]["binary_data_size"] == probabilities.nbytes
    assert probabilities.argmax(axis=1).tolist() == answer["outputs"][1]["data"]


def test_metadata_and_readiness(v2: TestClient) -> None:
    version = v2.get("/health/ready").json()["model_version"]
    assert v2.get("/v2/health/live").status_code == 200
    assert v2.get("/v2/health/ready").status_code == 200
    assert v2.get("/v2").json()["extensions"] == ["binary_tensor_data"]
    meta = v2.get("/v2/models/digits").json()
    assert meta["name"] == "digits"
    assert meta["versions"] == [version]
    assert [i["name"] for i in meta["inputs"]] == ["image", "pixels"]
    assert v2.get(f"/v2/models/digits/versions/{version}").json() == meta
    assert v2.get("/v2/models/digits/ready").status_code == 200
    assert v2.get(f"/v2/models/digits/versions/{version}/ready").status_code == 200


@pytest.mark.parametrize(
    ("path", "status"),
    [("/v2/models/mnist", 404), ("/v2/models/digits/versions/000000000000", 404), ("/v2/models/mnist/ready", 404)],
)
def test_another_model_or_version_is_404(v2: TestClient, path: str, status: int) -> None:
    r = v2.get(path)
    assert r.status_code == status
    assert set(r.json()) == {"error"}


def bad_requests(pngs: list[bytes]) -> list[tuple[str, dict[str, Any] | bytes, str]]:
    one = image_input(pngs[:1])
    return [
        ("not JSON", b"{nope", "not JSON"),
        ("no inputs", {"outputs": []}, "'inputs' list"),
        ("two inputs", {"inputs": [one, one]}, "exactly one input"),
        ("unknown input", {"inputs": [{**one, "name": "img"}]}, "unknown input 'img'"),
        ("wrong datatype", {"inputs": [{**one, "datatype": "FP32"}]}, "BYTES"),
        ("shape mismatch", {"inputs": [{**one, "shape": [2]}]}, "1 elements for a declared shape of [2]"),
        ("not base64", {"inputs": [{**one, "data": ["***"]}]}, "base64"),
        ("not an image", {"inputs": [{**one, "data": [base64.b64encode(b"hello").decode()]}]}, "image 0: not an image"),
        ("no ink", {"inputs": [image_input([encode(Image.new("L", (28, 28), 255))])]}, "image 0:"),
        ("too many", {"inputs": [image_input(pngs[:1] * 9)]}, "at most 8"),
        (
            "pixels out of range",
            {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 28, 28], "data": [2.0] * 784}]},
            "within 0..1",
        ),
        (
            "pixels NaN",
            {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 28, 28], "data": [1e39] * 784}]},
            "finite",
        ),
        (
            "pixels shape",
            {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 27, 28], "data": [0.0] * 756}]},
            "[N, 28, 28]",
        ),
        ("unknown output", {"inputs": [one], "outputs": [{"name": "logits"}]}, "unknown output 'logits'"),
        ("no data", {"inputs": [{k: v for k, v in one.items() if k != "data"}]}, "neither data"),
    ]


@pytest.mark.parametrize("case", range(15))
def test_bad_requests_are_400_with_the_protocols_error(v2: TestClient, pngs: list[bytes], case: int) -> None:
    name, body, says = bad_requests(pngs)[case]
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = v2.post("/v2/models/digits/infer", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 400, name
    assert set(r.json()) == {"error"}
    assert says in r.json()["error"], (name, r.json())


def test_bad_binary_framing_is_400(v2: TestClient, pngs: list[bytes]) -> None:
    head = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                   "parameters": {"binary_data_size": 10}}]}).encode()  # fmt: skip
    for length, tail in (
        ("abc", b""),
        (str(len(head) + 99), b""),
        (str(len(head)), b"\x05\x00"),
        (str(len(head)), b"\xff" * 10),
    ):
        r = v2.post(
            "/v2/models/digits/infer",
            content=head + tail,
            headers={"content-type": "application/octet-stream", "inference-header-content-length": length},
        )
        assert r.status_code == 400, (length, tail, r.text)
        assert set(r.json()) == {"error"}


def test_refused_says_which_images_are_not_digits(tmp_path: Path, pngs: list[bytes]) -> None:
    """Under a checkpoint that refuses everything the batch is still answered: `refused` is true
    for each image, as JSON and as the binary tensor (one byte each), where /predict says 422."""
    from tests.model.test_refusal import STRICT, checkpoint_with

    settings = Settings(checkpoint=checkpoint_with(tmp_path, STRICT), torch_threads=1)
    with TestClient(create_app(settings), raise_server_exceptions=False) as strict:
        status, answer = infer(strict, {"inputs": [image_input(pngs)]})
        assert status == 200
        assert outputs(answer)["refused"] == [True] * N
        body = {"inputs": [image_input(pngs)], "outputs": [{"name": "refused", "parameters": {"binary_data": True}}]}
        r = strict.post("/v2/models/digits/infer", content=json.dumps(body).encode(),
                        headers={"content-type": "application/json"})  # fmt: skip
        cut = int(r.headers["inference-header-content-length"])
        assert np.frombuffer(r.content[cut:], dtype=np.bool_).tolist() == [True] * N
        assert strict.post("/predict", content=pngs[0], headers={"content-type": "image/png"}).status_code == 422


def test_an_oversized_body_is_refused_before_it_is_read(v2: TestClient) -> None:
    r = v2.post("/v2/models/digits/infer", content=b"x" * 500_000, headers={"content-type": "application/json"})
    assert r.status_code == 413  # DIGITS_MAX_BATCH_BYTES, as /predict/batch
    assert set(r.json()) == {"error"}  # the protocol's shape, here too


def test_binary_pixels_that_are_not_finite_are_400(v2: TestClient) -> None:
    blob = np.full((1, 28, 28), np.nan, dtype="<f4").tobytes()
    head = json.dumps({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 28, 28],
                                   "parameters": {"binary_data_size": len(blob)}}]}).encode()  # fmt: skip
    r = v2.post(
        "/v2/models/digits/infer",
        content=head + blob,
        headers={"content-type": "application/octet-stream", "inference-header-content-length": str(len(head))},
    )
    assert r.status_code == 400
    assert "finite" in r.json()["error"]


def binary_request(head: dict[str, Any], blob: bytes) -> tuple[bytes, dict[str, str]]:
    text = json.dumps(head).encode()
    return text + blob, {"content-type": "application/octet-stream", "inference-header-content-length": str(len(text))}


def test_json_with_more_values_than_the_images_need_is_refused_unparsed(v2: TestClient) -> None:
    """Empty lists cost a Python object each: they are counted before the JSON is parsed."""
    body = b'{"inputs":[{"name":"pixels","datatype":"FP32","shape":[1,28,28],"data":[' + b"[]," * 9999 + b"[]]}]}"
    r = v2.post("/v2/models/digits/infer", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json() == {
        "error": "the request's JSON has 20009 commas, brackets and braces; 8 images need at most 7536 "
        "(DIGITS_MAX_BATCH_FILES)"
    }


def test_binary_elements_past_the_declared_count_are_not_read(v2: TestClient) -> None:
    head = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 40}}]}
    r = v2.post("/v2/models/digits/infer", content=binary_request(head, bytes(40))[0],
                headers=binary_request(head, bytes(40))[1])  # fmt: skip
    assert r.status_code == 400
    assert r.json() == {"error": "more than 2 elements for a declared shape of [2]"}
    head["inputs"][0]["shape"] = [9]  # over DIGITS_MAX_BATCH_FILES: refused before any element is read
    content, headers = binary_request(head, bytes(40))
    r = v2.post("/v2/models/digits/infer", content=content, headers=headers)
    assert r.json() == {"error": "9 images in one request; at most 8 (DIGITS_MAX_BATCH_FILES)"}


@pytest.mark.parametrize("parameters", [5, [1], "binary"])
@pytest.mark.parametrize("where", ["request", "input", "output"])
def test_parameters_that_are_not_an_object_are_400(v2: TestClient, where: str, parameters: Any) -> None:
    request: dict[str, Any] = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 28, 28],
                                           "data": [0.0] * 784}]}  # fmt: skip
    if where == "request":
        request["parameters"] = parameters
    elif where == "input":
        request["inputs"][0]["parameters"] = parameters
    else:
        request["outputs"] = [{"name": "digit", "parameters": parameters}]
    status, answer = infer(v2, request)
    assert status == 400
    named = {"request": "the request", "input": "input 'pixels'", "output": "output 'digit'"}[where]
    assert answer == {"error": f"{named}: 'parameters' must be an object"}


def test_an_image_over_the_upload_limit_is_413_as_at_predict(pngs: list[bytes]) -> None:
    big = encode(Image.effect_noise((100, 100), 64).convert("L"))
    settings = Settings(torch_threads=1, max_upload_bytes=len(big) - 1)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        status, answer = infer(client, {"inputs": [image_input([pngs[0], big])]})
        assert status == 413
        assert answer == {
            "error": f"image 1: {len(big)} bytes, over the {len(big) - 1}-byte limit (DIGITS_MAX_UPLOAD_BYTES)"
        }
        blob = struct.pack("<I", len(big)) + big
        head = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                            "parameters": {"binary_data_size": len(blob)}}]}  # fmt: skip
        content, headers = binary_request(head, blob)
        r = client.post("/v2/models/digits/infer", content=content, headers=headers)
        assert r.status_code == 413
        assert r.json() == {
            "error": f"image 0: {len(big)} bytes, over the {len(big) - 1}-byte limit (DIGITS_MAX_UPLOAD_BYTES)"
        }
        r = client.post("/predict", content=big, headers={"content-type": "image/png"})
        assert r.status_code == 413


# --- Triton's client against a real server -------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = start({"DIGITS_WORKERS": "1"})
    yield s
    s.proc.terminate()
    s.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def triton(server: Server) -> Iterator[Any]:
    http = pytest.importorskip("tritonclient.http")
    client = http.InferenceServerClient(f"127.0.0.1:{server.port}")
    yield client
    client.close()  # its connection pool's sockets, else closed whenever the collector gets to them


def predicted(server: Server, pngs: list[bytes]) -> list[dict[str, Any]]:
    body, ctype = multipart([("files", f"{i}.png", p) for i, p in enumerate(pngs)])
    status, _, raw = server.request("POST", "/predict/batch", body, ctype)
    assert status == 200
    return [item["prediction"] for item in json.loads(raw)["results"]]


def test_tritonclient_health_and_metadata(triton: Any, server: Server) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("digits")
    assert not triton.is_model_ready("mnist")
    meta = triton.get_model_metadata("digits")
    assert meta["name"] == "digits"
    assert meta["versions"] == [json.loads(server.request("GET", "/health/ready")[2])["model_version"]]
    datatypes = {o["name"]: o["datatype"] for o in meta["outputs"]}
    assert datatypes == {"digit": "INT64", "confidence": "FP32", "probabilities": "FP32", "refused": "BOOL"}
    assert triton.get_server_metadata()["extensions"] == ["binary_tensor_data"]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_infer_images(triton: Any, server: Server, pngs: list[bytes], binary: bool) -> None:
    http = pytest.importorskip("tritonclient.http")
    image = http.InferInput("image", [N], "BYTES")
    if binary:
        image.set_data_from_numpy(np.array(pngs, dtype=np.object_), binary_data=True)
    else:  # JSON holds text: the images base64-encoded
        image.set_data_from_numpy(np.array([base64.b64encode(p).decode() for p in pngs], dtype=np.object_),
                                  binary_data=False)  # fmt: skip
    wanted = [http.InferRequestedOutput(name, binary_data=binary) for name in ("digit", "confidence", "probabilities")]
    result = triton.infer("digits", [image], outputs=wanted)
    expected = predicted(server, pngs)
    assert result.as_numpy("digit").tolist() == [p["digit"] for p in expected]
    assert result.as_numpy("confidence") == pytest.approx([p["confidence"] for p in expected], abs=1e-6)
    assert result.as_numpy("probabilities").shape == (N, 10)
    assert result.get_response()["model_version"] == expected[0]["model_version"]


def test_tritonclient_pixels_and_output_selection(triton: Any, server: Server, pngs: list[bytes]) -> None:
    http = pytest.importorskip("tritonclient.http")
    from model.imaging.preprocess import preprocess

    pixels = http.InferInput("pixels", [N, 28, 28], "FP32")
    pixels.set_data_from_numpy(np.stack([preprocess(p).image for p in pngs]).astype(np.float32), binary_data=True)
    result = triton.infer("digits", [pixels], outputs=[http.InferRequestedOutput("digit", binary_data=True)])
    assert result.as_numpy("digit").tolist() == [p["digit"] for p in predicted(server, pngs)]
    assert result.as_numpy("confidence") is None  # not asked for, not sent
    assert [o["name"] for o in result.get_response()["outputs"]] == ["digit"]


def test_tritonclient_sees_the_protocols_errors(triton: Any) -> None:
    http = pytest.importorskip("tritonclient.http")
    utils = pytest.importorskip("tritonclient.utils")
    image = http.InferInput("image", [1], "BYTES")
    image.set_data_from_numpy(np.array([b"not an image"], dtype=np.object_), binary_data=True)
    with pytest.raises(utils.InferenceServerException, match="image 0: not an image"):
        triton.infer("digits", [image])
    with pytest.raises(utils.InferenceServerException, match="unknown model 'mnist'"):
        triton.infer("mnist", [image])
