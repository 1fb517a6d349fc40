"""Sequential latency of a running service: `python bench/latency.py FILE [--url URL] [-n N]`.

One client, one request at a time (so it measures a request's own cost, not queueing), raw
`image/*` body or multipart. Prints p50, p90, p99 and mean in milliseconds.

`python bench/latency.py --numbers [--url BASE]`: the page's 840x280 canvas with one drawn digit
and with a four-digit number (`model.synth.strokes`, seeded), each sent to /predict/number (and the one
digit to /predict), in one run, with the four-digit number's time as a multiple of one digit's.
"""

from __future__ import annotations

import argparse
import http.client
import mimetypes
import statistics
import time
import uuid
from pathlib import Path
from urllib.parse import SplitResult, urlsplit


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("file", type=Path, nargs="?")
    p.add_argument("--numbers", action="store_true", help="one digit against four on the page's canvas")
    p.add_argument("--url", default="http://127.0.0.1:8000/predict")
    p.add_argument("-n", type=int, default=500)
    p.add_argument("--multipart", action="store_true")
    args = p.parse_args()
    if args.numbers:
        return numbers(urlsplit(args.url), args.n)
    if args.file is None:
        p.error("FILE is required (or --numbers)")
    data = args.file.read_bytes()
    ctype = mimetypes.guess_type(args.file.name)[0] or "image/png"
    if args.multipart:
        boundary = uuid.uuid4().hex
        data = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{args.file.name}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n".encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        ctype = f"multipart/form-data; boundary={boundary}"
    url = urlsplit(args.url)
    conn = http.client.HTTPConnection(url.hostname, url.port or 80)
    q, mean = measure(conn, url.path, data, ctype, args.n)
    print(
        f"{args.file.name} ({'multipart' if args.multipart else 'raw'}), n={args.n}: "
        f"p50 {q[49]:.2f} ms, p90 {q[89]:.2f} ms, p99 {q[98]:.2f} ms, mean {mean:.2f} ms"
    )
    return 0


def measure(conn: http.client.HTTPConnection, path: str, data: bytes, ctype: str, n: int) -> tuple[list[float], float]:
    """Percentiles (1..99) and the mean of n sequential requests, in ms, after 20 not counted."""
    times = []
    for i in range(n + 20):
        t0 = time.perf_counter()
        conn.request("POST", path, body=data, headers={"content-type": ctype})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"{path}: HTTP {response.status}")
        if i >= 20:  # warm-up excluded
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.quantiles(times, n=100), statistics.mean(times)


def numbers(url: SplitResult, n: int) -> int:
    from model.synth.realnumbers import canvas_png as canvas

    base = url.path.removesuffix("/predict").removesuffix("/predict/number")
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80)
    rows = [("one digit, /predict", "/predict", canvas("7")), ("one digit, /predict/number", "/predict/number",
            canvas("7")), ("four digits, /predict/number", "/predict/number", canvas("2026"))]  # fmt: skip
    results = {name: measure(conn, base + path, data, "image/png", n) for name, path, data in rows}
    one = results["one digit, /predict/number"][0][49]
    for name, (q, mean) in results.items():
        print(f"{name:<30} n={n}: p50 {q[49]:.2f} ms, p99 {q[98]:.2f} ms, mean {mean:.2f} ms, "
              f"p50 {q[49] / one:.2f}x one digit at /predict/number")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
