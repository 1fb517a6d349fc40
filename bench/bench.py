"""Load benchmark: `python bench/bench.py [--seconds 10] [--no-peers]` (needs wrk: apt-get install wrk).

1. Starts the service as the Docker image runs it (`python -m app`, 2 workers, 1 torch thread each,
   info logging) and times start to ready.
2. Loads it with wrk on 127.0.0.1 at c=1, 16 and 64 for a 28x28 MNIST PNG, a 280x280 RGB PNG (black
   digit on white) and a 280x280 transparent RGBA canvas PNG, each as a raw body and as multipart:
   req/s, p50, p99, non-2xx and socket errors.
3. /predict/batch with 64 images a request (c=8; BATCH_CONCURRENCY says why): images/s, and the same
   64 images to the Open Inference Protocol's infer as binary BYTES; beside them the
   pure forward-pass throughput of the network measured in the same run (2 processes, 1 thread
   each, batch 64), both as plain eager NCHW and channels-last as the service runs it
   (model.network.inference_forward).
4. Worker memory after the loads: RSS, and PSS and private memory (shared library pages are in
   every worker's RSS).
5. Unless --no-starts: every documented start command (`python -m app`, `uvicorn app.main:app` with
   and without `--workers 2`, `WEB_CONCURRENCY`, `make serve`, and the container with --image), each
   loaded alike at c=64 with a 28x28 PNG and set beside the best with as many workers
   (bench/starts.py).
6. Unless --no-peers: ../shared/peers/run.sh with this service as PROJECT_CMD, so TorchServe,
   LitServe, a tutorial FastAPI app and this service are measured in one run, and the ratios.

Writes bench/results/<UTC stamp>/ (summary.md, results.json, wrk outputs) and prints the summary.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    BATCH,
    ROOT,
    V2_HEADERS,
    children,
    make_payloads,
    memory_mb,
    wait_ready,
    wrk,
)

sys.path.insert(0, str(ROOT))
PEERS = ROOT.parent / "shared" / "peers"
CONCURRENCIES = (1, 16, 64)
#: wrk connections for /predict/batch. Each worker listens on its own SO_REUSEPORT socket and the
#: kernel hashes each connection to one of them, so with 4 connections all landed on one worker in
#: 1 run of 8 (by chance: 2 / 2**4), halving the figure (85 against 177 req/s, 2026-11-26); with 8,
#: that is 2 / 2**8, and a 7-1 split 1 in 16.
BATCH_CONCURRENCY = 8


def _forward_worker(seconds: float, optimised: bool, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    import torch

    from model.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint

    torch.set_num_threads(1)
    net = load_checkpoint(DEFAULT_CHECKPOINT).net
    x = torch.randn(BATCH, 1, 28, 28)
    if optimised:  # as app.predictor runs it
        from model.network import inference_forward

        net = inference_forward(net)  # type: ignore[assignment]
    with torch.inference_mode():
        for _ in range(20):
            net(x)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            net(x)
            n += BATCH
    queue.put(n / (time.perf_counter() - t0))


def forward_throughput(optimised: bool, processes: int = 2, seconds: float = 5.0) -> float:
    """Images/s of the bare network at batch 64: `processes` processes, 1 torch thread each; eager
    NCHW (the plain forward pass) or channels-last as the service runs it (model.network.inference_forward)."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_forward_worker, args=(seconds, optimised, queue)) for _ in range(processes)]
    for p in procs:
        p.start()
    total = sum(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join()
    return float(total)


def serve(port: int, extra: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], float]:
    env = {**os.environ, "DIGITS_PORT": str(port), "DIGITS_HOST": "127.0.0.1", "DIGITS_WORKERS": "2",
           "DIGITS_TORCH_THREADS": "1", "DIGITS_LOG_LEVEL": "info", **(extra or {})}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    return proc, wait_ready(port, proc, 60)


def run_peers(seconds: float, out: Path) -> list[dict[str, str]]:
    cmd = (f"cd {ROOT} && DIGITS_WORKERS=2 DIGITS_TORCH_THREADS=1 DIGITS_HOST=127.0.0.1 DIGITS_PORT={{port}} "
           f"{sys.executable} -m app")  # fmt: skip
    env = {**os.environ, "PROJECT_CMD": cmd, "PROJECT_DIR": str(ROOT)}
    env.setdefault("PEERS_WORK", "/tmp/peers-work")
    configs = ["naive_fastapi_w2", "litserve_b1_w2", "litserve_b32_w1", "litserve_b32_w1_canvas", "torchserve_w2",
               "torchserve_w2_b32", "torchserve_w2_b32_canvas", "project_.*"]  # fmt: skip
    regex = f"^({'|'.join(configs)})$"
    log = out / "peers.log"
    with open(log, "w") as f:
        subprocess.run(["bash", str(PEERS / "run.sh"), f"{seconds:g}", "1", regex], env=env, stdout=f,
                       stderr=subprocess.STDOUT, check=False)  # fmt: skip
    m = re.findall(r"results in (\S+)", log.read_text())
    if not m:
        raise RuntimeError(f"peers run gave no results; see {log}")
    text = (Path(m[-1]) / "results.csv").read_text()
    (out / "peers.csv").write_text(text)
    return list(csv.DictReader(io.StringIO(text)))


def ratios(rows: list[dict[str, str]]) -> list[str]:
    def get(config: str, conc: int) -> dict[str, str] | None:
        return next((r for r in rows if r["config"] == config and int(r["conc"]) == conc), None)

    lines = []
    peers28 = [r for r in rows if r["payload"] == "mnist28" and not r["config"].startswith("project")]
    peers280 = [r for r in rows if r["payload"] == "canvas280" and not r["config"].startswith("project")]
    for payload, peers, suffix in (("mnist28", peers28, ""), ("canvas280", peers280, "_canvas")):
        best = max((r for r in peers if int(r["conc"]) == 64), key=lambda r: float(r["rps"]), default=None)
        if best is None:
            continue
        for fmt in ("raw", "multipart"):
            ours = get(f"project_{fmt}{suffix}", 64)
            if ours is None:
                continue
            lines.append(
                f"| {payload} c=64 {fmt} | {float(ours['rps']):,.0f} req/s, p99 {float(ours['p99_ms']):.1f} ms | "
                f"{best['config']} {float(best['rps']):,.0f} req/s, p99 {float(best['p99_ms']):.1f} ms | "
                f"**{float(ours['rps']) / float(best['rps']):.2f}x** |"
            )
    for fmt in ("raw", "multipart"):
        one = get(f"project_{fmt}", 1)
        if one:
            p50, p99 = float(one["p50_ms"]), float(one["p99_ms"])
            lines.append(f"| mnist28 c=1 {fmt} | p50 {p50:.2f} ms, p99 {p99:.2f} ms | | |")
    return lines


def compare(settings: list[str], bodies: dict[str, tuple[Path, str]], seconds: float, port: int, out: Path
            ) -> list[str]:  # fmt: skip
    """The service without and with `settings` (NAME=VALUE), both up at once, each /predict case at
    c=64 on one and then the other: a table with the ratio."""
    extra = dict(s.split("=", 1) for s in settings)
    plain, _ = serve(port)
    other, _ = serve(port + 1, extra)
    lines = [f"| case, c=64 | as shipped | with {' '.join(settings)} | ratio |", "|---|---|---|---|"]
    try:
        for name in ("mnist28", "canvas280"):
            for fmt in ("raw", "multipart"):
                body, ctype = bodies[f"{name}/{fmt}"]
                got = []
                for p, tag in ((port, "plain"), (port + 1, "with")):
                    wrk(f"http://127.0.0.1:{p}/predict", body, ctype, 16, 2, out / "wrk" / f"cmp_{tag}_warmup.txt")
                    got.append(wrk(f"http://127.0.0.1:{p}/predict", body, ctype, 64, seconds,
                                   out / "wrk" / f"cmp_{tag}_{name}_{fmt}.txt"))  # fmt: skip
                a, b = got
                lines.append(f"| {name} {fmt} | {a['rps']:,.0f} req/s, p99 {a['p99_ms']:.1f} ms | {b['rps']:,.0f} "
                             f"req/s, p99 {b['p99_ms']:.1f} ms | **{b['rps'] / a['rps']:.2f}x** |")  # fmt: skip
        rss = [max((memory_mb(pid)["rss"] for pid in children(proc.pid)), default=0.0) for proc in (plain, other)]
        lines.append(f"| worker RSS after the loads (max of 2) | {rss[0]:.0f} MB | {rss[1]:.0f} MB | |")
    finally:
        for proc in (plain, other):
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--no-peers", action="store_true")
    p.add_argument("--no-starts", action="store_true", help="skip the row per start command (about 3 minutes)")
    p.add_argument("--image", help="with the start commands, also this Docker image's container")
    p.add_argument("--port", type=int, default=18090)
    p.add_argument("--compare", nargs="+", metavar="NAME=VALUE", default=None,
                   help="also the /predict cases at c=64 without and with these settings, side by side "
                   "(e.g. DIGITS_FEEDBACK_DB=sqlite:////tmp/feedback.db)")  # fmt: skip
    args = p.parse_args()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = ROOT / "bench" / "results" / stamp
    (out / "wrk").mkdir(parents=True)
    bodies = make_payloads(out / "payloads")
    results: dict[str, object] = {"stamp": stamp, "seconds": args.seconds, "cases": []}

    forward = forward_throughput(optimised=False)
    forward_opt = forward_throughput(optimised=True)
    results["forward_images_per_s"] = forward
    results["forward_optimised_images_per_s"] = forward_opt
    proc, ready_s = serve(args.port)
    results["start_to_ready_s"] = ready_s
    base = f"http://127.0.0.1:{args.port}"
    lines = ["| case | c | req/s | p50 ms | p99 ms | non-2xx | socket errors |", "|---|---|---|---|---|---|---|"]
    memory: list[dict[str, float]] = []
    try:
        for name in ("mnist28", "canvas280", "rgba280"):
            for fmt in ("raw", "multipart"):
                body, ctype = bodies[f"{name}/{fmt}"]
                wrk(base + "/predict", body, ctype, 16, 2, out / "wrk" / f"{name}_{fmt}_warmup.txt")
                for c in CONCURRENCIES:
                    r = wrk(base + "/predict", body, ctype, c, args.seconds, out / "wrk" / f"{name}_{fmt}_c{c}.txt")
                    results["cases"].append({"payload": name, "body": fmt, "conc": c, **r})  # type: ignore[attr-defined]
                    lines.append(f"| {name} {fmt} | {c} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                                 f"{r['non200']:.0f} | {r['sock_err']:.0f} |")  # fmt: skip
                    memory += [memory_mb(pid) for pid in children(proc.pid)]
        body, ctype = bodies["batch64/multipart"]
        r = wrk(
            base + "/predict/batch",
            body,
            ctype,
            BATCH_CONCURRENCY,
            args.seconds,
            out / "wrk" / f"batch64_c{BATCH_CONCURRENCY}.txt",
        )
        memory += [memory_mb(pid) for pid in children(proc.pid)]
        results["batch64"] = {**r, "images_per_s": r["rps"] * BATCH}
        body, ctype = bodies["v2batch64/binary"]
        r = wrk(base + "/v2/models/digits/infer", body, ctype, BATCH_CONCURRENCY, args.seconds,
                out / "wrk" / f"v2batch64_c{BATCH_CONCURRENCY}.txt", V2_HEADERS["v2batch64/binary"])  # fmt: skip
        results["v2batch64"] = {**r, "images_per_s": r["rps"] * BATCH}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    for kind in ("rss", "pss", "private"):
        results[f"worker_{kind}_mb_max"] = max((m[kind] for m in memory), default=0.0)

    batch, v2 = results["batch64"], results["v2batch64"]
    assert isinstance(batch, dict)
    assert isinstance(v2, dict)
    summary = [
        f"# Benchmark {stamp}", "",
        f"`python bench/bench.py --seconds {args.seconds:g}`: service as the Docker image runs it (2 workers, 1 torch "
        "thread each), wrk -t1 on 127.0.0.1, this 2-core machine.", "",
        *lines, "",
        f"- /predict/batch, 64 MNIST PNGs a request, c={BATCH_CONCURRENCY}: {batch['images_per_s']:,.0f} images/s "
        f"(p99 {batch['p99_ms']:.1f} ms); pure forward pass at batch 64, 2 processes x 1 thread: "
        f"eager NCHW {forward:,.0f} images/s, ratio **{batch['images_per_s'] / forward:.2f}**; channels-last as the "
        f"service runs it {forward_opt:,.0f} images/s, ratio **{batch['images_per_s'] / forward_opt:.2f}**",
        f"- the same 64 PNGs to `/v2/models/digits/infer` as binary BYTES (Open Inference Protocol), c="
        f"{BATCH_CONCURRENCY}: {v2['images_per_s']:,.0f} images/s (p99 {v2['p99_ms']:.1f} ms, non-2xx "
        f"{v2['non200']:.0f}), **{v2['images_per_s'] / batch['images_per_s']:.2f}x** /predict/batch's",
        f"- start to ready: {ready_s:.2f} s; worker RSS after the loads: max {results['worker_rss_mb_max']:.0f} MB "
        f"(PSS {results['worker_pss_mb_max']:.0f} MB, private {results['worker_private_mb_max']:.0f} MB)",
    ]  # fmt: skip
    if args.compare:
        summary += ["", "## Without and with settings (both up at once, each case on one then the other)", "",
                    *compare(args.compare, bodies, args.seconds, args.port + 10, out)]  # fmt: skip
    if not args.no_starts:
        import starts  # beside this script

        summary += ["", f"## Start commands (c=64, 28x28 PNG raw, {args.seconds:g} s each, bench/starts.py)", "",
                    *starts.measure(args.seconds, out, args.image)]  # fmt: skip
    if not args.no_peers and (PEERS / "run.sh").exists():
        rows = run_peers(args.seconds, out)
        results["peers"] = rows
        summary += ["", "## Against the peers (one run of ../shared/peers/run.sh, this service as PROJECT_CMD)", "",
                    "| case | this service | best peer | ratio |", "|---|---|---|---|", *ratios(rows)]  # fmt: skip
    text = "\n".join(summary) + "\n"
    (out / "summary.md").write_text(text)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(text)
    print(f"results in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
