"""The outside probe's attacks, re-run: `python bench/attacks.py [--seconds 8]`.

Starts the service as the Docker image runs it (`python -m app`, 2 workers, 1 torch thread each,
default settings) and runs each attack of issue 15 for `--seconds` while four clients send normal
28x28 /predict requests. For each attack it prints what the attack's requests were answered, the
workers' CPU per attack request, the normal requests' p50/p99 and errors during it, and the
largest worker RSS. Traffic goes to 127.0.0.1 only; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
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

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clients import (  # noqa: E402  (bench/clients.py, beside this script)
    HOST,
    OUTCOMES,
    Normal,
    cpu_seconds,
    empty_lists,
    float_tiff_25mp,
    no_ink_jpeg,
    png,
    raw_sockets,
    repeat,
    specks,
    transparent_png,
)
from harness import children, free_port, memory_mb  # noqa: E402  (bench/harness.py, beside this script)

from tests.helpers import draw_seven, encode, multipart  # noqa: E402
from tests.hostile import digit_row, float_tiff, jpeg_scan_bomb  # noqa: E402


def round_three(seconds: float) -> list[tuple[str, Callable[[int, Counter[int]], int]]]:
    """The attacks of reliability round three: the inference protocol, batches, segmentation,
    wide pixel formats, long rows of digits."""
    m = 8_380_000
    tensor = {"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 4 * m}}
    head = json.dumps({"inputs": [tensor]}).encode()
    empty_elements = head + bytes(4 * m)
    rng = np.random.default_rng(0)
    noise = png(rng.integers(0, 256, (400, 400, 3), dtype=np.uint8))  # about 480 kB
    batch, batch_type = multipart([("files", f"{i}.png", noise) for i in range(64)])
    gradient = np.tile(np.linspace(0, 255, 256).astype(np.uint8), (256, 1))
    gradient[::3, ::3] = 0
    speck_batch, speck_type = multipart([("files", f"{i}.png", specks(512)) for i in range(64)])
    bar = np.zeros((5000, 5000), np.float32)
    bar[2000:3000, 2400:2600] = 255.0
    wide = [float_tiff_25mp(),
            encode(Image.fromarray(bar.astype(np.int32)), "TIFF", compression="tiff_adobe_deflate"),
            png((65535 - bar * 257).astype(np.uint16))]  # fmt: skip
    v2 = "/v2/models/digits/infer"

    def batches(body: bytes, ctype: str, clients: int) -> Callable[[int, Counter[int]], int]:
        return lambda port, st: repeat(port, body, ctype, clients, seconds, st, path="/predict/batch")

    def each(bodies: list[tuple[bytes, str, str]], clients: int) -> Callable[[int, Counter[int]], int]:
        def run(port: int, statuses: Counter[int]) -> int:
            return sum(repeat(port, body, ctype, clients, seconds / len(bodies), statuses, path=path)
                       for body, ctype, path in bodies)  # fmt: skip

        return run

    return [
        ("/v2 JSON of 11 million empty lists (32 MiB), 4 clients",
         lambda port, st: repeat(port, empty_lists(), "application/json", 4, seconds, st, path=v2)),
        ("/v2 binary of 8.4 million empty BYTES elements, 2 clients",
         lambda port, st: repeat(port, empty_elements, "application/octet-stream", 2, seconds, st, path=v2,
                                 headers={"inference-header-content-length": str(len(head))})),
        ("8 concurrent /predict/batch of 64 x 480 kB PNGs (31 MB)", batches(batch, batch_type, 8)),
        ("300x300 PNG of one-pixel specks at /predict/number, 6 clients",
         lambda port, st: repeat(port, specks(300), "image/png", 6, seconds, st, path="/predict/number")),
        ("256x256 gradient with dots at /predict, 6 clients",
         lambda port, st: repeat(port, png(gradient), "image/png", 6, seconds, st)),
        ("/predict/batch of 64 512x512 speck PNGs, 2 clients", batches(speck_batch, speck_type, 2)),
        ("25-megapixel float TIFF, int32 TIFF, 16-bit PNG, 4 clients",
         each([(w, t, "/predict") for w, t in zip(wide, ("image/tiff", "image/tiff", "image/png"), strict=True)], 4)),
        ("printed rows of 40, 150 and 400 digits at /predict and /predict/number, 2 clients",
         each([(digit_row(k), "image/png", path) for k in (40, 150, 400) for path in ("/predict", "/predict/number")],
              2)),
    ]  # fmt: skip


def attacks(seconds: float) -> list[tuple[str, Callable[[int, Counter[int]], int]]]:
    bomb = jpeg_scan_bomb(5000, 15_000)
    small_bomb = jpeg_scan_bomb(300, 22_000)
    batch, batch_type = multipart([("files", f"{i}.jpg", no_ink_jpeg(4000, 3000)) for i in range(64)])
    zeros, zeros_type = multipart([("files", f"{i}.png", bytes(358_000)) for i in range(64)])
    big_png = transparent_png(5000)
    odd_tiffs = float_tiff(float("nan"))  # (the LAB TIFF is answered the same: tests/hostile.py)
    header = b"POST /predict HTTP/1.1\r\nhost: x\r\nx-pad: " + b"a" * (64 << 20) + b"\r\n\r\n"
    slow = b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: image/png\r\ncontent-length: 100000\r\n\r\n"

    def batch_post(body: bytes, ctype: str) -> Callable[[int, Counter[int]], int]:
        def run(port: int, statuses: Counter[int]) -> int:
            deadline, sent = time.monotonic() + seconds, 0
            while time.monotonic() < deadline:
                conn = http.client.HTTPConnection(HOST, port, timeout=60)
                conn.request("POST", "/predict/batch", body=body, headers={"content-type": ctype})
                response = conn.getresponse()
                response.read()
                statuses[response.status] += 1
                sent += 1
            return sent

        return run

    def huge_headers(port: int, statuses: Counter[int]) -> int:
        def one() -> None:
            try:
                s = socket.create_connection((HOST, port), timeout=30)
                s.sendall(header)
                head = s.recv(64)
                statuses[int(head.split()[1])] += 1
            except (OSError, ValueError, IndexError):
                statuses[0] += 1

        threads = [threading.Thread(target=one) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return 8

    return [
        ("progressive JPEG, 5000x5000, 15,000 scans (777 kB), 4 clients",
         lambda port, st: repeat(port, bomb, "image/jpeg", 4, seconds, st)),
        ("progressive JPEG, 300x300, 22,000 scans, 6 clients",
         lambda port, st: repeat(port, small_bomb, "image/jpeg", 6, seconds, st)),
        ("/predict/batch of 64 no-ink 4000x3000 JPEGs", batch_post(batch, batch_type)),
        ("/predict/batch of 64 x 358 kB of zeros", batch_post(zeros, zeros_type)),
        ("8 connections x 64 MB header", huge_headers),
        ("1,100 connections that send nothing, for 12 s",
         lambda port, st: raw_sockets(port, 1100, b"", 12, statuses=st)),
        ("700 uploads announcing 100 kB, a byte every 2 s, for 24 s",
         lambda port, st: raw_sockets(port, 700, slow, 24, trickle=b"x", statuses=st)),
        ("8 concurrent 5000x5000 transparent PNGs (114 kB)",
         lambda port, st: repeat(port, big_png, "image/png", 8, seconds, st)),
        ("float TIFF with NaN, LAB TIFF", lambda port, st: repeat(port, odd_tiffs, "image/tiff", 2, seconds, st)),
        *round_three(seconds),
    ]  # fmt: skip


def liveness(port: int, waits: list[float], done: threading.Event) -> None:
    """GET /health/live every 50 ms, as a Kubernetes probe would: how long each answer took."""
    while not done.is_set():
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        try:
            conn.request("GET", "/health/live")
            conn.getresponse().read()
        except OSError:
            pass
        finally:
            conn.close()
        waits.append(time.perf_counter() - t0)
        time.sleep(0.05)


def sample(workers: list[int], rss: list[float], done: threading.Event, cgroup: Path | None,
           usage: list[float]) -> None:  # fmt: skip
    while not done.is_set():
        rss.extend(memory_mb(pid)["rss"] for pid in workers)
        if cgroup is not None:
            usage.append(working_set_mb(cgroup))
        time.sleep(0.2)


def rss_after(workers: list[int], seconds: float) -> float:
    """The largest worker RSS `seconds` after an attack, the service idle meanwhile."""
    time.sleep(seconds)
    return max(memory_mb(pid)["rss"] for pid in workers)


def working_set_mb(usage_file: Path) -> float:
    """The cgroup's working set, as the kubelet and `docker stats` count it: its memory usage less
    the page cache nobody has touched lately (inactive files), which the kernel drops before it
    kills anything when the limit is reached."""
    stat = dict(line.split() for line in (usage_file.parent / "memory.stat").read_text().splitlines())
    inactive = int(stat.get("total_inactive_file", stat.get("inactive_file", "0")))
    return (int(usage_file.read_text()) - inactive) / 1e6


def container(name: str) -> tuple[list[int], Path]:
    """A running container's worker processes (host pids) and its cgroup's memory-usage file."""
    top = subprocess.run(["docker", "top", name, "-eo", "pid,args"], capture_output=True, text=True, check=True)
    workers = [int(line.split()[0]) for line in top.stdout.splitlines()[1:] if "spawn_main" in line]
    cid = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", name], capture_output=True, text=True, check=True)
    found = [*Path("/sys/fs/cgroup").glob(f"**/*{cid.stdout.strip()}*/memory.current"),
             *Path("/sys/fs/cgroup").glob(f"**/*{cid.stdout.strip()}*/memory.usage_in_bytes")]  # fmt: skip
    return workers, found[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--only", default="", help="run only the attacks whose name contains this")
    p.add_argument("--after", type=float, default=10, help="idle seconds before the RSS after each attack")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a setting for the service")
    p.add_argument("--log", type=Path, help="the service's log lines go here (with --env DIGITS_LOG_LEVEL=info)")
    p.add_argument("--container", help="attack this running container (docker compose up) instead, on --port")
    p.add_argument("--port", type=int, default=8000)
    args = p.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))  # for this script's own sockets
    if args.container:
        return run(args, args.port, *container(args.container))
    port = free_port()
    env = {**os.environ, "DIGITS_PORT": str(port), "DIGITS_WORKERS": "2", "DIGITS_TORCH_THREADS": "1",
           "DIGITS_LOG_LEVEL": "error", **dict(item.split("=", 1) for item in args.env)}  # fmt: skip
    log = args.log.open("wb") if args.log else subprocess.DEVNULL
    server = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=log, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                c = http.client.HTTPConnection(HOST, port, timeout=2)
                c.request("GET", "/health/ready")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        return run(args, port, children(server.pid), None)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def run(args: argparse.Namespace, port: int, workers: list[int], cgroup: Path | None) -> int:
    digit = encode(Image.fromarray(np.asarray(draw_seven().resize((28, 28))), "L"))
    print("| attack | its requests answered | worker CPU per attack request | normal p50 / p99 | "
          "normal failures | slowest /health/live | max worker RSS | RSS 10 s after |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name, attack in attacks(args.seconds):
        if args.only not in name:
            continue
        normal = Normal(port, digit)
        normal.start()
        cpu0 = cpu_seconds(workers)
        statuses: Counter[int] = Counter()
        rss: list[float] = []
        usage: list[float] = []
        sampling = threading.Event()
        sampler = threading.Thread(target=sample, args=(workers, rss, sampling, cgroup, usage), daemon=True)
        sampler.start()
        waits: list[float] = []
        prober = threading.Thread(target=liveness, args=(port, waits, sampling), daemon=True)
        prober.start()
        t0 = time.perf_counter()
        sent = attack(port, statuses)
        cpu = cpu_seconds(workers) - cpu0
        normal.stop.set()
        normal.join()
        sampling.set()
        sampler.join()
        prober.join()
        lat = sorted(normal.latencies)
        p50, p99 = (lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3) if lat else (0.0, 0.0)
        answered = ", ".join(f"{n} x {OUTCOMES.get(s, s)}" for s, n in sorted(statuses.items()))
        print(f"| {name} | {answered} | {cpu / max(sent, 1):.3f} s ({cpu:.1f} s / {sent}, "
              f"{time.perf_counter() - t0:.0f} s) | {p50:.1f} / {p99:.1f} ms ({len(lat)}) | "
              f"{dict(normal.failures) or 0} | {max(waits) * 1e3:.0f} ms | {max(rss):.0f} MB | "
              f"{rss_after(workers, args.after):.0f} MB |"
              + (f" container working set {max(usage):.0f} MB |" if usage else ""), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
