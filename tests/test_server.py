"""The real server: `uvicorn app.main:app` and `python -m app` as processes on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from model.checkpoint import LoadedModel
from model.data import MnistSplit
from model.evaluate.digits import probabilities
from tests.helpers import ROOT, encode, free_port, multipart, post, start, stop

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    s = start({}, uvicorn=True)
    try:
        yield s.url
    finally:
        assert stop(s) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once drained


def test_thousand_mnist_pngs_over_http(server: str, mnist_test: MnistSplit, shipped_model: LoadedModel) -> None:
    images, labels = mnist_test.images[:1000].numpy(), mnist_test.labels[:1000].tolist()

    def ask(i: int) -> int:
        """The digit answered, or -1 for not_a_digit (the digit gate's refusal)."""
        png = encode(Image.fromarray(images[i], "L"))
        body, ctype = multipart([("file", f"{i}.png", png)]) if i % 2 else (png, "image/png")
        status, answer = post(server + "/predict", body, ctype)
        if status == 422 and answer["error"]["code"] == "not_a_digit":
            return -1
        assert status == 200, answer
        return int(answer["digit"])

    with ThreadPoolExecutor(8) as pool:
        predicted = list(pool.map(ask, range(1000)))
    # the model's own answers, in process: over HTTP each 28x28 PNG passes through untouched
    own = probabilities(shipped_model, images / 255.0).argmax(1).tolist()
    assert [p for p in predicted if p >= 0] == [o for p, o in zip(predicted, own, strict=True) if p >= 0]
    assert predicted.count(-1) <= 5, predicted.count(-1)
    correct = sum(p == y for p, y in zip(predicted, labels, strict=True))
    assert correct >= 985, correct  # a little under what the shipped checkpoint reads of these


def test_errors_over_http_leave_it_serving(server: str, mnist_test: MnistSplit) -> None:
    png = encode(Image.fromarray(mnist_test.images[0].numpy(), "L"))
    status, body = post(server + "/predict", png[:100], "image/png")
    assert status == 400
    assert body["error"]["code"] == "truncated_image"
    status, body = post(server + "/predict", b"hello", "text/plain")
    assert status == 415
    status, body = post(server + "/predict", b"x" * 6_000_000, "image/png")
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"
    assert post(server + "/predict", png, "image/png") == (200, post(server + "/predict", png, "image/png")[1])


@pytest.mark.parametrize("command", [["-m", "app"], ["-m", "uvicorn", "app.main:app", "--port", "0"]])
def test_tampered_checkpoint_stops_start_up(tmp_path: Path, command: list[str]) -> None:
    ckpt = tmp_path / "mnist_cnn.pt"
    ckpt.write_bytes((ROOT / "model/weights/mnist_cnn.pt").read_bytes()[:-10] + b"0123456789")
    (tmp_path / "mnist_cnn.pt.sha256").write_text((ROOT / "model/weights/mnist_cnn.pt.sha256").read_text())
    env = {**os.environ, "DIGITS_CHECKPOINT": str(ckpt), "DIGITS_PORT": str(free_port())}
    proc = subprocess.run([sys.executable, *command], cwd=ROOT, env=env, capture_output=True, timeout=60, text=True)
    assert proc.returncode != 0
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    errors = [line["msg"] for line in lines if line["level"] == "error"]
    assert errors[0].startswith(f"cannot start: {ckpt}: SHA-256 is ")
    assert errors[0].endswith("(file truncated, swapped or tampered with)")


def test_bad_setting_stops_start_up() -> None:
    env = {**os.environ, "DIGITS_MAX_UPLOAD_BYTES": "-1"}
    proc = subprocess.run([sys.executable, "-m", "app"], cwd=ROOT, env=env, capture_output=True, timeout=60, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "invalid settings: DIGITS_MAX_UPLOAD_BYTES='-1': Input should be greater than 0"


def test_a_feedback_database_of_another_kind_stops_start_up_once() -> None:
    """Said once by `python -m app`, before any worker starts (not by each worker, restarted), and
    without the URL, which may hold a password."""
    env = {**os.environ, "DIGITS_WORKERS": "2", "DIGITS_FEEDBACK_DB": "mysql://user:secret@db/x",
           "DIGITS_PORT": str(free_port())}  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "app"], cwd=ROOT, env=env, capture_output=True, timeout=60, text=True)
    assert proc.returncode == 1
    errors = [json.loads(line)["msg"] for line in proc.stderr.splitlines() if line.startswith("{")]
    assert errors == ["cannot start: DIGITS_FEEDBACK_DB=(hidden): 'mysql' databases are not supported: use sqlite "
                      "or postgresql"]  # fmt: skip
    assert "secret" not in proc.stderr
