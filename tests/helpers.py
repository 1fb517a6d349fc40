"""What the tests share: images made in code, the one multipart builder, the one server harness."""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from model.imaging.preprocess import Preprocessed

ROOT = Path(__file__).resolve().parent.parent


def encode(img: Image.Image, fmt: str = "PNG", **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def draw_seven(
    size: tuple[int, int] = (200, 160),
    offset: tuple[int, int] = (10, 12),
    scale: float = 1.0,
    ink: int = 0,
    paper: int = 255,
    width: int = 9,
) -> Image.Image:
    """A '7' of dark ink on light paper, drawn away from the centre."""
    img = Image.new("L", size, paper)
    ox, oy = offset
    pts = [(ox + 10 * scale, oy + 10 * scale), (ox + 70 * scale, oy + 10 * scale), (ox + 35 * scale, oy + 100 * scale)]
    ImageDraw.Draw(img).line(pts, fill=ink, width=max(1, round(width * scale)), joint="curve")
    return img


def ink_bbox(image: np.ndarray, threshold: float = 0.05) -> tuple[int, int, int, int]:
    rows = np.flatnonzero((image > threshold).any(axis=1))
    cols = np.flatnonzero((image > threshold).any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def assert_mnist_style(p: Preprocessed) -> None:
    """White ink on black, fitted into 20x20, centred by mass at (14, 14)."""
    img = p.image
    assert img.shape == (28, 28)
    assert img.dtype == np.float32
    assert img.max() == pytest.approx(1.0, abs=1e-6)
    assert img.min() == 0.0
    top, bottom, left, right = ink_bbox(img)
    assert max(bottom - top, right - left) + 1 in (20, 21)
    cy, cx = ndimage.center_of_mass(img)
    assert abs(cy - 14) <= 0.5
    assert abs(cx - 14) <= 0.5
    assert p.tensor.shape == (1, 28, 28)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference, allowing the one-pixel shifts that rounding the centre of mass can make."""
    padded = np.pad(b, 1)
    return min(
        float(np.abs(a - padded[1 + dy : 29 + dy, 1 + dx : 29 + dx]).mean()) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
    )


def canvas(stroke: tuple[int, int, int]) -> bytes:
    """A 7 on a transparent canvas, as a browser exports it: colour where drawn, alpha 0 elsewhere."""
    alpha = 255 - np.asarray(draw_seven(size=(280, 280), offset=(100, 80), scale=1.6))
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)
    rgba[..., :3] = stroke
    rgba[..., 3] = alpha
    return encode(Image.fromarray(rgba, "RGBA"))


def png_with_size(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header claims another size (CRC fixed): a decompression bomb's header."""
    data = bytearray(encode(Image.new("L", (1, 1))))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def error(code: str, message: str, response: object) -> dict[str, object]:
    request_id = response.headers["x-request-id"]  # type: ignore[attr-defined]
    return {"error": {"code": code, "message": message, "request_id": request_id}}


def photo_like_jpeg() -> bytes:
    """400x300 JPEG of a dark 7 on off-white paper, off-centre."""
    img = draw_seven(size=(400, 300), offset=(220, 120), scale=1.4, ink=30, paper=235).convert("RGB")
    return encode(img, "JPEG", quality=85)


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str | None = None) -> tuple[bytes, str]:
    """(field, filename or None for a text field, data) parts -> body and content type."""
    boundary = boundary or uuid.uuid4().hex
    out = b""
    for field, filename, data in parts:
        disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self, method: str, path: str, body: bytes = b"", content_type: str = "", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on a new connection (under several workers, the kernel picks the worker)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            sent = {"content-type": content_type} if content_type else {}
            conn.request(method, path, body=body, headers={**sent, **(headers or {})})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def rss_kb(self) -> int:
        """Resident memory of the serving process (the worker, when there is one)."""
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        pid = children[-1] if children else str(self.proc.pid)
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def start(env: dict[str, str], uvicorn: bool = False, log: Path | None = None) -> Server:
    """`python -m app` (or with `uvicorn`, `uvicorn app.main:app`) on a free loopback port, once
    ready; its log lines go to `log` if given."""
    port = free_port()
    full_env = {
        **os.environ,
        "DIGITS_PORT": str(port),
        "DIGITS_TORCH_THREADS": "1",
        "DIGITS_LOG_LEVEL": "warning",
        **env,
    }
    command = ["-m", "uvicorn", "app.main:app", "--port", str(port)] if uvicorn else ["-m", "app"]
    if log is None:
        proc = subprocess.Popen(
            [sys.executable, *command], cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    else:
        with log.open("wb") as stderr:  # the child has its own copy of the descriptor
            proc = subprocess.Popen(
                [sys.executable, *command], cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=stderr
            )
    server = Server(proc, port)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if server.request("GET", "/health/ready")[0] == 200:
                return server
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise TimeoutError("server not ready")


def post(url: str, body: bytes, content_type: str) -> tuple[int, dict[str, Any]]:
    """POST to a running server; the status and the JSON body, whatever the status."""
    req = urllib.request.Request(url, data=body, headers={"content-type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def stop(server: Server) -> int:
    server.proc.send_signal(signal.SIGTERM)
    return server.proc.wait(timeout=20)


def need_fonts(held_out: bool) -> None:
    """Skip, with the reason, a test that renders printed digits when their font families are not
    installed (`make fonts`); CI installs them and sets REQUIRE_FONTS=1, which fails it instead."""
    from model.synth.printed import PACKAGES, missing

    gone = missing(held_out)
    if gone:
        reason = f"font families not installed: {', '.join(gone)} (make fonts: apt-get install {' '.join(PACKAGES)})"
        if os.environ.get("REQUIRE_FONTS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
