"""Sequential latency of a running service: `python bench/latency.py FILE [--url URL] [-n N]`.

One client, one request at a time (so it measures a request's own cost, not queueing), raw
`image/*` body or multipart. Prints p50, p90, p99 and mean in milliseconds.
"""

from __future__ import annotations

import argparse
import http.client
import mimetypes
import statistics
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("file", type=Path)
    p.add_argument("--url", default="http://127.0.0.1:8000/predict")
    p.add_argument("-n", type=int, default=500)
    p.add_argument("--multipart", action="store_true")
    args = p.parse_args()
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
    times = []
    for i in range(args.n + 20):
        t0 = time.perf_counter()
        conn.request("POST", url.path, body=data, headers={"content-type": ctype})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"HTTP {response.status}")
        if i >= 20:  # warm-up excluded
            times.append((time.perf_counter() - t0) * 1000)
    q = statistics.quantiles(times, n=100)
    print(
        f"{args.file.name} ({'multipart' if args.multipart else 'raw'}), n={args.n}: "
        f"p50 {q[49]:.2f} ms, p90 {q[89]:.2f} ms, p99 {q[98]:.2f} ms, mean {statistics.mean(times):.2f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
