"""Hot reload under load: `python bench/reload.py [--seconds 30] [--reloads 5]`.

Serves `python -m app` with 2 workers (nothing tuned), loads it with wrk -t1 -c64 for --seconds
with a 28x28 MNIST PNG as a raw body, twice: once as it is, once with --reloads `POST /admin/reload`
spread evenly over the run, back and forth between two checkpoints (A, the shipped one, and B, its
network with 1.5 times the temperature, so B's confidences differ from A's). wrk counts every answer
by status and by `model_version`, and the distinct confidences each version gave the one image (1
each when every answer came whole from one model; bench/versions.lua). After each reload the script
polls /metrics until both workers report the new version, and says how long that took. Prints both
runs side by side: req/s, p50, p99, max, non-200 answers, the versions seen.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ROOT, free_port, make_payloads, wait_ready  # bench/harness.py, beside this script

TOKEN = "bench-reload-token-0123456789"


def second_checkpoint(folder: Path) -> tuple[Path, Path]:
    """A: the shipped checkpoint; B: its network with another temperature (different answers'
    probabilities, another SHA-256 and so another version)."""
    from model.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, save_checkpoint

    a, b = folder / "a.pt", folder / "b.pt"
    shutil.copy(DEFAULT_CHECKPOINT, a)
    shutil.copy(DEFAULT_CHECKPOINT.with_name(DEFAULT_CHECKPOINT.name + ".sha256"), folder / "a.pt.sha256")
    (folder / "a.pt.sha256").write_text((folder / "a.pt.sha256").read_text().replace(DEFAULT_CHECKPOINT.name, "a.pt"))
    model = load_checkpoint(a)
    meta = {k: v for k, v in model.meta.items() if k not in ("format_version", "config", "preprocess")}
    meta["metrics"] = {**meta["metrics"], "temperature": model.temperature * 1.5}
    meta["note"] = "bench/reload.py: the shipped network, temperature x1.5"
    save_checkpoint(b, model.net, meta)
    return a, b


def worker_versions(port: int) -> dict[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return dict(re.findall(r'digits_model_info\{pid="(\d+)",version="(\w+)"\} 1\.0', text))


def reload(port: int, name: str) -> dict[str, object]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/admin/reload",
        data=json.dumps({"checkpoint": name}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        answer: dict[str, object] = json.loads(r.read())
    return answer


def wrk(port: int, body: Path, seconds: float) -> dict[str, str]:
    env = {**os.environ, "BODY_FILE": str(body), "CONTENT_TYPE": "image/png"}
    cmd = ["wrk", "-t1", "-c64", f"-d{seconds:g}s", "--timeout", "10s", "--latency",
           "-s", str(ROOT / "bench" / "versions.lua"), f"http://127.0.0.1:{port}/predict"]  # fmt: skip
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False).stdout
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1] if " " in line else "" for line in out.splitlines()
             if line.startswith(("RESULT", "VERSIONS", "STATUSES"))}  # fmt: skip
    if "RESULT" not in lines:
        raise RuntimeError(f"no wrk result:\n{out}")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--reloads", type=int, default=5)
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="digits-reload-"))
    a, _ = second_checkpoint(folder)
    body, _ = make_payloads(folder / "payloads")["mnist28/raw"]
    port = free_port()
    env = {**os.environ, "DIGITS_PORT": str(port), "DIGITS_WORKERS": "2", "DIGITS_CHECKPOINT": str(a),
           "DIGITS_ADMIN_TOKEN": TOKEN}  # fmt: skip
    env.pop("DIGITS_TORCH_THREADS", None)
    proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    switches: list[str] = []
    try:
        wait_ready(port, proc)
        while len(worker_versions(port)) < 2:
            time.sleep(0.2)
        wrk(port, body, 3)  # warm-up
        quiet = wrk(port, body, args.seconds)

        def reloads() -> None:
            gap = args.seconds / (args.reloads + 1)
            for i in range(args.reloads):
                time.sleep(gap)
                name = "b.pt" if i % 2 == 0 else "a.pt"
                t0 = time.perf_counter()
                answer = reload(port, name)
                answered = time.perf_counter() - t0
                while set(worker_versions(port).values()) != {answer["model_version"]}:
                    time.sleep(0.05)
                everyone = time.perf_counter() - t0
                change = f"{answer['previous_version']} -> {answer['model_version']} ({name})"
                switches.append(f"{change}: answered in {1000 * answered:.0f} ms, both workers on it after "
                                f"{1000 * everyone:.0f} ms")  # fmt: skip

        driver = threading.Thread(target=reloads)
        driver.start()
        busy = wrk(port, body, args.seconds)
        driver.join()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)

    def fields(run: dict[str, str]) -> dict[str, float]:
        return {k: float(v) for k, v in (kv.split("=") for kv in run["RESULT"].split())}

    print(f"`python bench/reload.py --seconds {args.seconds:g} --reloads {args.reloads}`: python -m app, 2 workers, "
          "wrk -t1 -c64, 28x28 PNG raw\n")  # fmt: skip
    print("| run | req/s | p50 ms | p99 ms | max ms | non-200 | model_version=answers/distinct confidences |")
    print("|---|---|---|---|---|---|---|")
    for label, run in (("no reloads", quiet), (f"{args.reloads} reloads", busy)):
        r = fields(run)
        print(f"| {label} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.1f} | "
              f"{r['non200']:.0f} ({run.get('STATUSES', '')}) | {run.get('VERSIONS', '')} |")  # fmt: skip
    print()
    for line in switches:
        print(f"- {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
