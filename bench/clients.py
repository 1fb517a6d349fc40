"""The attackers' clients and bodies, shared by bench/attacks.py and bench/soak.py: posting a body
again and again, raw sockets that send a little and wait, hostile bodies made in code, and the
workers' CPU time."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import threading
import time
from collections import Counter

import numpy as np
from PIL import Image

from tests.helpers import encode

HOST = "127.0.0.1"
#: What a raw socket got back when it was not an HTTP status.
OUTCOMES = {0: "reset", -1: "closed", -2: "still open"}


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def post(port: int, body: bytes, content_type: str, timeout: float = 60, path: str = "/predict",
         headers: dict[str, str] | None = None) -> int:  # fmt: skip
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"content-type": content_type, **(headers or {})})
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0  # reset or refused
    finally:
        conn.close()


class Normal(threading.Thread):
    """Four clients sending a 28x28 PNG in turn, recording latencies and failures."""

    def __init__(self, port: int, body: bytes) -> None:
        super().__init__(daemon=True)
        self.port, self.body = port, body
        self.latencies: list[float] = []
        self.failures: Counter[int] = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        def client() -> None:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                status = post(self.port, self.body, "image/png", timeout=10)
                if status == 200:
                    self.latencies.append(time.perf_counter() - t0)
                else:
                    self.failures[status] += 1
                time.sleep(0.01)

        threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def repeat(port: int, body: bytes, content_type: str, clients: int, seconds: float, statuses: Counter[int],
           path: str = "/predict", headers: dict[str, str] | None = None) -> int:  # fmt: skip
    """`clients` connections posting `body` to `path` again and again for `seconds`; the number sent."""
    deadline = time.monotonic() + seconds
    sent = [0]

    def client() -> None:
        while time.monotonic() < deadline:
            statuses[post(port, body, content_type, path=path, headers=headers)] += 1
            sent[0] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sent[0]


def raw_sockets(port: int, count: int, payload: bytes, seconds: float, trickle: bytes = b"", every: float = 2.0,
                statuses: Counter[int] | None = None) -> int:  # fmt: skip
    """`count` connections that send `payload`, then `trickle` every `every` seconds, for `seconds`."""
    socks = []
    for _ in range(count):
        try:
            s = socket.create_connection((HOST, port), timeout=5)
            s.sendall(payload)
            socks.append(s)
        except OSError:
            if statuses is not None:
                statuses[0] += 1
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(every)
        for s in socks:
            if trickle:
                with contextlib.suppress(OSError):
                    s.sendall(trickle)
    for s in socks:
        s.setblocking(False)
        try:
            head = s.recv(64)
            outcome = int(head.split()[1]) if head.startswith(b"HTTP/1.1 ") else -1
        except BlockingIOError:
            outcome = -2
        except (OSError, ValueError, IndexError):
            outcome = 0
        if statuses is not None:
            statuses[outcome] += 1
        s.close()
    return len(socks)


def no_ink_jpeg(width: int, height: int) -> bytes:
    return encode(Image.new("RGB", (width, height), (250, 250, 250)), "JPEG", quality=90)


def transparent_png(side: int) -> bytes:
    return encode(Image.new("RGBA", (side, side), (0, 0, 0, 0)))


def png(array: np.ndarray) -> bytes:
    return encode(Image.fromarray(array))


def empty_lists() -> bytes:
    """An inference-protocol request of 11 million empty lists: 32 MiB of JSON."""
    n = (32 * 1024 * 1024 - 200) // 3
    return b'{"inputs":[{"name":"pixels","datatype":"FP32","shape":[1,28,28],"data":[' + b"[]," * n + b"[]]}]}"


def specks(side: int) -> bytes:
    """A white PNG with a black pixel at every other row and column: side^2 / 4 components."""
    img = np.full((side, side), 255, np.uint8)
    img[::2, ::2] = 0
    return png(img)


def float_tiff_25mp() -> bytes:
    """A 5000x5000 32-bit float TIFF (deflated: 156 kB) with a bar of ink."""
    bar = np.zeros((5000, 5000), np.float32)
    bar[2000:3000, 2400:2600] = 255.0
    return encode(Image.fromarray(bar, "F"), "TIFF", compression="tiff_adobe_deflate")
