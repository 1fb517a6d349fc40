"""The Open Inference Protocol (KServe v2 REST) for this model: requests decoded, answers encoded.
HTTP-free; the routes are in `app/routers/v2.py`.

The model takes one of two inputs: `image`, BYTES [N], each element an encoded image file (PNG,
JPEG, ...) read by the same preprocessing as /predict (base64 text in the JSON form, raw bytes in
the binary-data extension); or `pixels`, FP32 [N, 28, 28] or [N, 1, 28, 28], already preprocessed
(0..1, white ink on black). It answers `digit` INT64 [N], `confidence` FP32 [N] and `probabilities`
FP32 [N, 10], and `refused` BOOL [N] (the refusal score is under the checkpoint's refusal threshold at
DIGITS_REFUSAL_RATE: not a digit, which /predict answers 422 `not_a_digit`; always false for a
checkpoint that refuses nothing), each as JSON data or, when asked (`binary_data`), as raw little-endian bytes after the
JSON header (`Inference-Header-Content-Length`), as the protocol's binary tensor extension says.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from app.predictor import Answer

HEADER_LENGTH = "inference-header-content-length"
SIDE = 28

#: What GET /v2/models/{name} says, and what infer accepts.
INPUTS = (
    {"name": "image", "datatype": "BYTES", "shape": [-1]},
    {"name": "pixels", "datatype": "FP32", "shape": [-1, SIDE, SIDE]},
)
OUTPUTS = (
    {"name": "digit", "datatype": "INT64", "shape": [-1]},
    {"name": "confidence", "datatype": "FP32", "shape": [-1]},
    {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
    {"name": "refused", "datatype": "BOOL", "shape": [-1]},
)
OUTPUT_NAMES: tuple[str, ...] = ("digit", "confidence", "probabilities", "refused")  # as OUTPUTS


class ProtocolError(Exception):
    """A request the protocol answers with `{"error": message}` and this status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    images: list[bytes] | None  # the `image` input, or
    pixels: np.ndarray | None  # the `pixels` input, (N, 28, 28) float32 in [0, 1]
    outputs: dict[str, bool]  # output name -> as binary data, in the order they are answered

    @property
    def count(self) -> int:
        return len(self.images) if self.images is not None else len(self.pixels)  # type: ignore[arg-type]


def json_values_bound(max_items: int) -> int:
    """The most JSON values (a comma or an opening bracket or brace each) a request for at most
    `max_items` images can need: `pixels` as nested lists of 28x28 numbers, and room for the rest."""
    return max_items * (SIDE * SIDE + SIDE + 2) + 1024


def json_values(text: bytes) -> int:
    """Commas, opening brackets and braces: at least the values JSON `text` holds, less one."""
    return text.count(b",") + text.count(b"[") + text.count(b"{")


def check_json_values(values: int, max_items: int) -> None:
    """ProtocolError when a request's JSON holds more values (`json_values`) than `max_items`
    images can need."""
    if values > json_values_bound(max_items):
        raise ProtocolError(
            f"the request's JSON has {values} commas, brackets and braces; {max_items} images need at most "
            f"{json_values_bound(max_items)} (DIGITS_MAX_BATCH_FILES)"
        )


def parse_infer(body: bytes, header_length: str | None, max_items: int, max_image_bytes: int) -> InferRequest:
    """The request's JSON (the first `header_length` bytes when the binary extension is used) and
    binary tensors; ProtocolError (400) for anything this model cannot take, 413 for an image over
    `max_image_bytes`. Nothing is materialised past what `max_items` images can hold: the JSON's
    values are counted before it is parsed, and elements past the declared count are not read."""
    binary = b""
    if header_length is not None:
        try:
            cut = int(header_length)
        except ValueError:
            raise ProtocolError("Inference-Header-Content-Length is not a number") from None
        if not 0 < cut <= len(body):
            raise ProtocolError(f"Inference-Header-Content-Length {cut} does not fit a body of {len(body)} bytes")
        body, binary = body[:cut], body[cut:]
    check_json_values(json_values(body), max_items)
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ProtocolError(f"the request is not JSON: {e}") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise ProtocolError("the request must be a JSON object with an 'inputs' list")
    inputs = request["inputs"]
    if len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ProtocolError(
            "give exactly one input: 'image' (BYTES [N], encoded images) or 'pixels' (FP32 [N, 28, 28])"
        )
    tensor = inputs[0]
    name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ProtocolError(f"input '{name}': shape must be a list of non-negative integers")
    if shape and shape[0] > max_items:
        raise ProtocolError(f"{shape[0]} images in one request; at most {max_items} (DIGITS_MAX_BATCH_FILES)")
    raw = _binary_part(tensor, binary)
    if name == "image":
        if datatype != "BYTES" or len(shape) != 1:
            raise ProtocolError("input 'image' must be BYTES with shape [N]")
        if raw is not None:
            images = _bytes_elements(raw, shape[0], max_image_bytes)
        else:
            images = _base64_elements(tensor.get("data"), max_image_bytes)
        _check_count(len(images), shape[0], max_items)
        return InferRequest(_id(request), images, None, _outputs(request))
    if name == "pixels":
        if datatype != "FP32" or shape[1:] not in ([SIDE, SIDE], [1, SIDE, SIDE]):
            raise ProtocolError("input 'pixels' must be FP32 with shape [N, 28, 28] or [N, 1, 28, 28]")
        _check_count(shape[0], shape[0], max_items)
        pixels = _floats(raw, tensor.get("data"), math.prod(shape))
        pixels = pixels.reshape(shape[0], SIDE, SIDE)
        if not np.isfinite(pixels).all() or pixels.min(initial=0.0) < 0 or pixels.max(initial=0.0) > 1:
            raise ProtocolError("input 'pixels': values must be finite and within 0..1 (white ink on black)")
        return InferRequest(_id(request), None, pixels, _outputs(request))
    raise ProtocolError(f"unknown input '{name}': this model takes 'image' or 'pixels'")


def _id(request: dict[str, Any]) -> str | None:
    given = request.get("id")
    return given if isinstance(given, str) else None


def _parameters(entry: dict[str, Any], where: str) -> dict[str, Any]:
    """An object's `parameters`: absent or null is none; anything but an object is a ProtocolError."""
    params = entry.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ProtocolError(f"{where}: 'parameters' must be an object")
    return params


def _binary_part(tensor: dict[str, Any], binary: bytes) -> bytes | None:
    size = _parameters(tensor, f"input '{tensor.get('name')}'").get("binary_data_size")
    if size is None:
        if "data" not in tensor:
            raise ProtocolError(f"input '{tensor.get('name')}' has neither data nor binary_data_size")
        return None
    if not isinstance(size, int) or size < 0 or size > len(binary):
        raise ProtocolError(f"input '{tensor.get('name')}': binary_data_size {size} does not fit the binary data")
    if size != len(binary):
        raise ProtocolError(f"{len(binary) - size} bytes of binary data follow the input's {size}")
    return binary[:size]


def _too_large(index: int, size: int, limit: int) -> ProtocolError:
    return ProtocolError(f"image {index}: {size} bytes, over the {limit}-byte limit (DIGITS_MAX_UPLOAD_BYTES)", 413)


def _bytes_elements(raw: bytes, declared: int, max_bytes: int) -> list[bytes]:
    """BYTES in the binary extension: each element a 4-byte little-endian length, then its bytes.
    Nothing past the `declared` count is read."""
    out: list[bytes] = []
    at = 0
    while at < len(raw):
        if len(out) == declared:
            raise ProtocolError(f"more than {declared} elements for a declared shape of [{declared}]")
        if at + 4 > len(raw):
            raise ProtocolError("input 'image': binary BYTES data ends inside an element's length")
        (n,) = struct.unpack_from("<I", raw, at)
        if at + 4 + n > len(raw):
            raise ProtocolError("input 'image': binary BYTES data ends inside an element")
        if n > max_bytes:
            raise _too_large(len(out), n, max_bytes)
        out.append(raw[at + 4 : at + 4 + n])
        at += 4 + n
    return out


def _base64_elements(data: object, max_bytes: int) -> list[bytes]:
    """BYTES in JSON: strings, each an image base64-encoded (JSON holds text, not bytes)."""
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], list):
        data = data[0]
    if not isinstance(data, list) or not all(isinstance(d, str) for d in data):
        raise ProtocolError("input 'image': JSON data must be a list of base64 strings, one encoded image each")
    for i, d in enumerate(data):
        size = len(d) // 4 * 3 - d[-2:].count("=")  # the decoded size, before decoding
        if size > max_bytes:
            raise _too_large(i, size, max_bytes)
    try:
        return [base64.b64decode(d, validate=True) for d in data]
    except (binascii.Error, ValueError):
        raise ProtocolError("input 'image': an element is not valid base64") from None


def _floats(raw: bytes | None, data: object, count: int) -> np.ndarray:
    if raw is not None:
        if len(raw) != 4 * count:
            raise ProtocolError(f"input 'pixels': {len(raw)} bytes of binary data for {count} FP32 values")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)
    try:  # float64 first: a JSON number past float32's range must not overflow (and warn) in the cast
        values = np.asarray(data, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ProtocolError("input 'pixels': JSON data must be numbers") from None
    if not np.isfinite(values).all() or values.min(initial=0.0) < 0 or values.max(initial=0.0) > 1:
        raise ProtocolError("input 'pixels': values must be finite and within 0..1 (white ink on black)")
    if values.size != count:
        raise ProtocolError(f"input 'pixels': {values.size} values for shape of {count}")
    return values.astype(np.float32)


def _check_count(found: int, declared: int, max_items: int) -> None:
    if found != declared:
        raise ProtocolError(f"{found} elements for a declared shape of [{declared}]")
    if found == 0:
        raise ProtocolError("no images in the request")
    if found > max_items:
        raise ProtocolError(f"{found} images in one request; at most {max_items} (DIGITS_MAX_BATCH_FILES)")


def _outputs(request: dict[str, Any]) -> dict[str, bool]:
    default = bool(_parameters(request, "the request").get("binary_data_output", False))
    wanted = request.get("outputs")
    if wanted is None:
        return dict.fromkeys(OUTPUT_NAMES, default)
    if not isinstance(wanted, list) or not all(isinstance(o, dict) for o in wanted):
        raise ProtocolError("'outputs' must be a list of objects with a 'name'")
    chosen: dict[str, bool] = {}
    for output in wanted:
        name = output.get("name")
        if name not in OUTPUT_NAMES:
            raise ProtocolError(f"unknown output '{name}': this model answers {', '.join(OUTPUT_NAMES)}")
        binary = _parameters(output, f"output '{name}'").get("binary_data", default)
        chosen[name] = bool(binary)
    return chosen


def encode_answers(
    answers: Sequence[Answer], request: InferRequest, model_name: str, version: str
) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers (content type, and the JSON's length when binary tensors
    follow it)."""
    tensors = {
        "digit": ("INT64", [len(answers)], np.array([a.digit for a in answers], dtype="<i8")),
        "confidence": ("FP32", [len(answers)], np.array([a.confidence for a in answers], dtype="<f4")),
        "probabilities": ("FP32", [len(answers), 10], np.array([a.probabilities for a in answers], dtype="<f4")),
        "refused": ("BOOL", [len(answers)], np.array([a.refused for a in answers], dtype=np.bool_)),
    }
    outputs, blobs = [], []
    for name, binary in request.outputs.items():
        datatype, shape, values = tensors[name]
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
        if binary:
            blob = values.tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = values.reshape(-1).tolist()
        outputs.append(entry)
    head: dict[str, Any] = {"model_name": model_name, "model_version": version, "outputs": outputs}
    if request.id is not None:
        head["id"] = request.id
    text = orjson.dumps(head)
    if not blobs:
        return text, {"content-type": "application/json"}
    return text + b"".join(blobs), {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(text))}


def model_metadata(model_name: str, version: str) -> dict[str, Any]:
    return {
        "name": model_name,
        "versions": [version],
        "platform": "pytorch",
        "inputs": [dict(i) for i in INPUTS],
        "outputs": [dict(o) for o in OUTPUTS],
    }
