"""What the benchmarks share: the payloads, wrk, free ports, waiting for readiness and the
workers' memory. Imported by the scripts beside it (`from harness import ...`)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
BATCH = 64


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def multipart(parts: list[tuple[str, str | None, bytes]]) -> tuple[bytes, str]:
    """(field, filename, data) parts: a PNG file each, or a text field where the filename is None."""
    boundary = uuid.uuid4().hex

    def head(field: str, name: str | None) -> bytes:
        if name is None:
            return f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"\r\n\r\n'.encode()
        return (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                f"Content-Type: image/png\r\n\r\n").encode()  # fmt: skip

    body = b"".join(head(field, name) + data + b"\r\n" for field, name, data in parts)
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def make_payloads(out: Path) -> dict[str, tuple[Path, str]]:
    """name -> (body file, content type), and the 28x28 PNG as mnist28.png."""
    from model.data import load_split

    test = load_split("test")
    digit = test.images[0].numpy()  # a 7, as the peers' mnist28 payload
    big = Image.fromarray(255 - digit, "L").resize((280, 280), Image.Resampling.BILINEAR)
    images = {"mnist28": png(Image.fromarray(digit, "L")), "canvas280": png(big.convert("RGB"))}
    alpha = np.asarray(Image.fromarray(digit, "L").resize((280, 280), Image.Resampling.BILINEAR))
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[..., 3] = alpha
    images["rgba280"] = png(Image.fromarray(rgba, "RGBA"))
    out.mkdir(parents=True, exist_ok=True)
    bodies: dict[str, tuple[Path, str]] = {}
    for name, data in images.items():
        (out / f"{name}.raw").write_bytes(data)
        bodies[f"{name}/raw"] = (out / f"{name}.raw", "image/png")
        body, ctype = multipart([("file", f"{name}.png", data)])
        (out / f"{name}.multipart").write_bytes(body)
        bodies[f"{name}/multipart"] = (out / f"{name}.multipart", ctype)
    body, ctype = multipart([("files", f"{i}.png", images["mnist28"]) for i in range(BATCH)])
    (out / "batch64.multipart").write_bytes(body)
    bodies["batch64/multipart"] = (out / "batch64.multipart", ctype)
    # the same 64 PNGs to the Open Inference Protocol, as binary BYTES (tritonclient's binary_data=True)
    blob = b"".join(len(images["mnist28"]).to_bytes(4, "little") + images["mnist28"] for _ in range(BATCH))
    head = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [BATCH],
                                   "parameters": {"binary_data_size": len(blob)}}]}).encode()  # fmt: skip
    (out / "v2batch64.binary").write_bytes(head + blob)
    bodies["v2batch64/binary"] = (out / "v2batch64.binary", "application/octet-stream")
    V2_HEADERS["v2batch64/binary"] = f"Inference-Header-Content-Length: {len(head)}"
    return bodies


#: Extra request headers of some payloads (the binary Open Inference Protocol body's JSON length).
V2_HEADERS: dict[str, str] = {}


def wrk(url: str, body: Path, ctype: str, conc: int, seconds: float, log: Path, header: str = "") -> dict[str, float]:
    env = {**os.environ, "BODY_FILE": str(body), "CONTENT_TYPE": ctype, "EXTRA_HEADER": header}
    cmd = ["wrk", "-t1", f"-c{conc}", f"-d{seconds:g}s", "--timeout", "10s", "--latency",
           "-s", str(ROOT / "bench" / "post_body.lua"), url]  # fmt: skip
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False).stdout
    log.write_text(out)
    m = re.search(r"RESULT (.*)", out)
    if not m:
        raise RuntimeError(f"no wrk result in {log}")
    return {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def memory_mb(pid: int) -> dict[str, float]:
    """A process's memory in MB, from /proc/PID/smaps_rollup; zeros if it has gone.

    rss: resident pages, the shared libraries' pages included (counted again in every worker);
    pss: each shared page divided among the processes that map it; private: this process's own
    pages, what one more worker costs."""
    fields = {"Rss:": "rss", "Pss:": "pss", "Private_Clean:": "private", "Private_Dirty:": "private"}
    out = {"rss": 0.0, "pss": 0.0, "private": 0.0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key = line.split(maxsplit=1)[0]
                if key in fields:
                    out[fields[key]] += int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


def wait_ready(port: int, proc: subprocess.Popen[bytes] | None, limit: float = 120.0) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter() - t0
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"not ready in {limit:.0f} s")


def in_tree(tree: Path, script: str, job: object) -> Any:
    """Run `script` with this Python in another checkout's folder (so that it imports that tree's
    code), `job` as JSON on its stdin; its stdout read back as JSON."""
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=tree, input=json.dumps(job), capture_output=True, text=True, check=False
    )
    if run.returncode != 0:
        raise SystemExit(f"{tree}: {run.stderr.strip()}")
    return json.loads(run.stdout)
