"""Every documented start command, loaded alike: `python bench/starts.py [--seconds 10] [--image TAG]`.

Each command in turn serves on a free port with nothing tuned (info logging, the environment as a
user has it), gets 3 s of wrk warm-up, then wrk -t1 -c64 for --seconds with a 28x28 MNIST PNG as a
raw body. Rows are grouped by how many worker processes the command runs; each row's ratio is to the
best row of its group, the tuned configurations (one torch thread a worker, set by hand) included.
With --image, also the container: `docker run --cpus 2` of that image with its own settings
(`python -m app`, 2 workers) and Docker's default json-file logging, on the host's network so no
proxy sits in the way. `bench/bench.py` prints these rows too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, free_port, make_payloads, wait_ready, wrk  # bench/harness.py, beside this script

#: The share of the best row of its group a start command must reach (issue 20).
WITHIN = 0.85


@dataclass(frozen=True)
class Start:
    label: str  # the command as a user types it
    workers: int  # worker processes it runs on this machine
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    tuned: bool = False  # set by hand for speed: a reference, not a documented default


def commands(cpus: int) -> list[Start]:
    py, venv = sys.executable, Path(sys.executable).parent
    uvicorn = str(venv / "uvicorn")
    return [
        Start("python -m app", 1, [py, "-m", "app"]),
        Start("uvicorn app.main:app", 1, [uvicorn, "app.main:app", "--port", "{port}"]),
        Start("DIGITS_TORCH_THREADS=1 python -m app", 1, [py, "-m", "app"], {"DIGITS_TORCH_THREADS": "1"}, True),
        Start("DIGITS_WORKERS=2 python -m app", 2, [py, "-m", "app"], {"DIGITS_WORKERS": "2"}),
        Start("uvicorn app.main:app --workers 2", 2, [uvicorn, "app.main:app", "--port", "{port}", "--workers", "2"]),
        Start(
            "WEB_CONCURRENCY=2 uvicorn app.main:app",
            2,
            [uvicorn, "app.main:app", "--port", "{port}"],
            {"WEB_CONCURRENCY": "2"},
        ),
        Start(f"make serve (every CPU: {cpus} workers)", cpus, ["make", "serve", "PORT={port}", f"VENV={venv.parent}"]),
        Start(
            "DIGITS_WORKERS=2 DIGITS_TORCH_THREADS=1 python -m app",
            2,
            [py, "-m", "app"],
            {"DIGITS_WORKERS": "2", "DIGITS_TORCH_THREADS": "1"},
            True,
        ),
    ]


def load(port: int, body: Path, ctype: str, seconds: float, log: Path) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}/predict"
    wrk(url, body, ctype, 64, 3, log.with_suffix(".warmup.txt"))
    return wrk(url, body, ctype, 64, seconds, log)


def run_start(start: Start, body: Path, ctype: str, seconds: float, out: Path) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "DIGITS_PORT": str(port), **start.env}
    for name in ("DIGITS_WORKERS", "DIGITS_TORCH_THREADS", "WEB_CONCURRENCY"):
        if name not in start.env:
            env.pop(name, None)
    argv = [a.replace("{port}", str(port)) for a in start.argv]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        ready = wait_ready(port, proc)
        return {**load(port, body, ctype, seconds, out / f"{slug(start.label)}.txt"), "ready_s": ready}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_container(image: str, body: Path, ctype: str, seconds: float, out: Path) -> dict[str, float]:
    port = free_port()
    name = f"digits-starts-{port}"
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--network", "host", "--cpus", "2",
                    "-e", f"DIGITS_PORT={port}", "-e", "DIGITS_HOST=127.0.0.1", image],
                   check=True, capture_output=True)  # fmt: skip
    try:
        ready = wait_ready(port, None)
        return {**load(port, body, ctype, seconds, out / "container.txt"), "ready_s": ready}
    finally:
        subprocess.run(["docker", "stop", "-t", "15", name], check=False, capture_output=True)


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label).strip("_")[:60]


def table(rows: list[tuple[Start, dict[str, float]]]) -> list[str]:
    """Markdown rows: each with its ratio to the best of its worker count, documented ones flagged
    when under WITHIN of it."""
    best: dict[int, float] = {}
    for start, r in rows:
        best[start.workers] = max(best.get(start.workers, 0.0), r["rps"])
    lines = ["| start command | workers | req/s | p99 ms | non-2xx | of the best with as many workers |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for start, r in rows:
        ratio = r["rps"] / best[start.workers]
        mark = " (tuned by hand)" if start.tuned else ("" if ratio >= WITHIN else " **under 85%**")
        lines.append(f"| `{start.label}` | {start.workers} | {r['rps']:,.0f} | {r['p99_ms']:.1f} | "
                     f"{r['non200']:.0f} | {ratio:.2f}{mark} |")  # fmt: skip
    return lines


def measure(seconds: float, out: Path, image: str | None = None) -> list[str]:
    """Every start command in turn; the markdown table."""
    from app.settings import available_cpus

    bodies = make_payloads(out / "payloads")
    body, ctype = bodies["mnist28/raw"]
    (out / "starts").mkdir(parents=True, exist_ok=True)
    rows = []
    for start in commands(available_cpus()):
        rows.append((start, run_start(start, body, ctype, seconds, out / "starts")))
        print(f"  {start.label}: {rows[-1][1]['rps']:,.0f} req/s", file=sys.stderr)
    if image:
        container = Start(f"the container ({image}, docker run --cpus 2)", 2, [])
        rows.append((container, run_container(image, body, ctype, seconds, out / "starts")))
    return table(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--image", help="also the container of this image (needs docker)")
    p.add_argument("--out", type=Path, default=Path("/tmp/digits-starts"))
    args = p.parse_args()
    if args.image and not shutil.which("docker"):
        p.error("--image needs docker")
    lines = measure(args.seconds, args.out, args.image)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
