"""Soak: `python bench/soak.py [--seconds 60] [--concurrency 64] [--no-attacks]`.

Starts the service as the Docker image runs it (`python -m app`, 2 workers, 1 torch thread each),
then keeps `--concurrency` connections busy for `--seconds` with a mix of valid uploads (the four
examples) and the hostile corpus of tests/hostile.py, each request checked against its expected
status. Unless --no-attacks, the attacks of bench/attacks.py run beside them, in waves: connections
that send nothing, uploads trickling a byte a second, 8 MB headers, 5000x5000 transparent PNGs,
batches of large no-ink JPEGs; each answer is checked too. Meanwhile it polls /health/ready and the
workers' RSS. It prints one summary and exits non-zero on any 5xx, dropped connection, wrong
answer, readiness failure or RSS growth over 50 MB after the first 10 s. RSS is judged by its floor:
the lowest sample of each whole 10 s window (the peaks are decodes in progress, the floor is what
stays), and the growth is the workers' RSS 3 s after the load stops (before the service is
stopped) against the floor of the first window after 10 s. Traffic goes to 127.0.0.1
only and stops by itself.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clients import OUTCOMES, empty_lists, float_tiff_25mp, no_ink_jpeg, raw_sockets, specks, transparent_png  # noqa: E402  (bench/clients.py, beside this script)
from harness import children, free_port, memory_mb  # noqa: E402  (bench/harness.py, beside this script)

from tests.helpers import multipart  # noqa: E402
from tests.hostile import corpus, digit_row  # noqa: E402

EXAMPLES = [("digit.png", "image/png", 7), ("photo.jpg", "image/jpeg", 2), ("canvas.png", "image/png", 4),
            ("printed.png", "image/png", 5)]  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-attacks", action="store_true")
    args = p.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))  # for the idle connections

    payloads: list[tuple[str, bytes, str, int, int | None]] = [
        (name, (ROOT / "examples" / name).read_bytes(), ctype, 200, digit) for name, ctype, digit in EXAMPLES
    ]
    payloads += [(c.name, c.body, c.content_type, c.status, None) for c in corpus() if c.declared_length is None]
    valid = [pl for pl in payloads if pl[3] == 200]
    mix = valid * 6 + payloads  # about two valid requests for every hostile one

    port = free_port()
    env = {**os.environ, "DIGITS_PORT": str(port), "DIGITS_WORKERS": str(args.workers), "DIGITS_TORCH_THREADS": "1",
           "DIGITS_LOG_LEVEL": "warning"}  # fmt: skip
    t_start = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health/ready")
            if c.getresponse().status == 200:
                break
        except OSError:
            pass
        if time.perf_counter() - t_start > 30 or server.poll() is not None:
            print("server did not become ready")
            return 1
        time.sleep(0.05)
    ready_s = time.perf_counter() - t_start

    statuses: Counter[int] = Counter()
    wrong: Counter[str] = Counter()
    dropped = Counter[str]()
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + args.seconds

    def client(seed: int) -> None:
        rng = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.perf_counter() < stop_at:
            name, body, ctype, expected, digit = rng.choice(mix)
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/predict", body=body, headers={"content-type": ctype})
                r = conn.getresponse()
                data = r.read()
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    dropped[type(e).__name__] += 1
                conn.close()
                continue
            ok = r.status == expected and (digit is None or json.loads(data)["digit"] == digit)
            with lock:
                statuses[r.status] += 1
                latencies.append(time.perf_counter() - t0)
                if not ok:
                    wrong[f"{name}: {r.status}"] += 1
        conn.close()

    ready_failures, rss_samples = 0, []

    def monitor() -> None:
        nonlocal ready_failures
        while time.perf_counter() < stop_at:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health/ready")
                if c.getresponse().status != 200:
                    ready_failures += 1
            except (OSError, http.client.HTTPException):
                ready_failures += 1
            rss_samples.append((time.perf_counter(), [memory_mb(pid)["rss"] for pid in children(server.pid)]))
            time.sleep(1)

    attacks: Counter[str] = Counter()

    def attacker(name: str, expected: set[int], every: float, run: Callable[[Counter[int]], object]) -> None:
        """Waves of one attack until the end, every answer checked against `expected`."""
        while time.perf_counter() < stop_at - every:
            outcomes: Counter[int] = Counter()
            run(outcomes)
            with lock:
                for status, n in outcomes.items():
                    attacks[f"{name} {OUTCOMES.get(status, status)}"] += n
                    if status not in expected:
                        wrong[f"attack {name}: {OUTCOMES.get(status, status)}"] += n
            time.sleep(every)

    header = b"GET /health/live HTTP/1.1\r\nhost: x\r\nx-pad: " + b"a" * (8 << 20) + b"\r\n\r\n"
    slow = b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: image/png\r\ncontent-length: 100000\r\n\r\n"
    big_png = transparent_png(5000)
    batch, batch_type = multipart([("files", f"{i}.jpg", no_ink_jpeg(2000, 1500)) for i in range(8)])

    def one(body: bytes, ctype: str, path: str = "/predict") -> Callable[[Counter[int]], object]:
        def run(outcomes: Counter[int]) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                conn.request("POST", path, body=body, headers={"content-type": ctype})
                outcomes[conn.getresponse().status] += 1
            except (OSError, http.client.HTTPException):
                outcomes[0] += 1
            finally:
                conn.close()

        return run

    def head_attack(outcomes: Counter[int]) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            try:
                sock.sendall(header)
                outcomes[int(sock.recv(64).split()[1])] += 1
            except (OSError, ValueError, IndexError):
                outcomes[0] += 1

    if not args.no_attacks:
        threads = [
            threading.Thread(target=attacker, args=("idle", {-1}, 1,
                                                    lambda o: raw_sockets(port, 200, b"", 12, statuses=o))),
            threading.Thread(target=attacker, args=("slow upload", {408}, 1,
                                                    lambda o: raw_sockets(port, 100, slow, 24, b"x", 1, o))),
            threading.Thread(target=attacker, args=("8 MB header", {431}, 2, head_attack)),
            threading.Thread(target=attacker, args=("5000x5000 transparent PNG", {422}, 1, one(big_png, "image/png"))),
            threading.Thread(target=attacker, args=("batch of 8 no-ink 2000x1500 JPEGs", {200}, 2,
                                                    one(batch, batch_type, "/predict/batch"))),
            threading.Thread(target=attacker, args=("/v2 JSON of 11 million empty lists", {400, 503}, 2,
                                                    one(empty_lists(), "application/json", "/v2/models/digits/infer"))),
            threading.Thread(target=attacker, args=("300x300 specks at /predict/number", {422}, 1,
                                                    one(specks(300), "image/png", "/predict/number"))),
            threading.Thread(target=attacker, args=("row of 150 printed digits", {422}, 1,
                                                    one(digit_row(150), "image/png", "/predict/number"))),
            threading.Thread(target=attacker, args=("25-megapixel float TIFF", {200, 422}, 2,
                                                    one(float_tiff_25mp(), "image/tiff"))),
        ]  # fmt: skip
    else:
        threads = []
    threads += [threading.Thread(target=client, args=(i,)) for i in range(args.concurrency)]
    threads.append(threading.Thread(target=monitor))
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    time.sleep(3)
    quiet = [memory_mb(pid)["rss"] for pid in children(server.pid)]
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)

    total = sum(statuses.values())
    latencies.sort()
    first = rss_samples[0][0]
    settled = [(at - first, max(r)) for at, r in rss_samples if r and at >= first + 10]
    windows: dict[int, float] = {}
    for at, rss in settled:  # the floor of each 10 s window after the first
        windows[int(at // 10)] = min(rss, windows.get(int(at // 10), rss))
    last = int((settled[-1][0] if settled else 0) // 10)
    floors = [windows[k] for k in sorted(windows) if k < last or len(windows) == 1]  # whole windows only
    growth = max(quiet, default=0.0) - floors[0] if floors else 0.0
    five_xx = sum(n for s, n in statuses.items() if s >= 500)
    print(f"soak: {args.seconds:g} s at c={args.concurrency}, {args.workers} workers, ready in {ready_s:.2f} s")
    print(f"  requests {total} ({total / elapsed:.0f}/s), statuses {dict(sorted(statuses.items()))}")
    print(f"  latency p50 {latencies[total // 2] * 1000:.1f} ms, p99 {latencies[int(total * 0.99)] * 1000:.1f} ms")
    print(
        f"  5xx {five_xx}, dropped connections {sum(dropped.values())} {dict(dropped)}, wrong answers "
        f"{sum(wrong.values())} {dict(wrong)}"
    )
    print(f"  /health/ready failures {ready_failures} of {len(rss_samples)} polls")
    if attacks:
        print(f"  attacks beside them: {dict(sorted(attacks.items()))}")
    print(
        f"  worker RSS MB (the larger worker): floor of each 10 s window {[round(f) for f in floors]}, "
        f"max {max((r for _, r in settled), default=0):.0f}, 3 s after the load {[round(q) for q in quiet]}, "
        f"growth (after the load, against the first floor) {growth:+.1f}"
    )
    failed = five_xx or dropped or wrong or ready_failures or growth > 50
    print("SOAK FAILED" if failed else "soak passed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
