"""CPU per request of the app itself, without HTTP: `python bench/inproc.py [CASE] [--stub none|noop|preprocess]`.

Drives the ASGI app in this process, as uvicorn would, with `--concurrency` clients sending the
same upload for `--seconds`, and prints requests/s and CPU microseconds per request. No sockets,
no HTTP parsing, one process: a microscope for the app's own costs, not a load test (bench.py is).

`--stub noop` answers every image with a constant (what is left is the request context, logging,
metrics and the fast path); `--stub preprocess` preprocesses but skips the model. The difference
between runs is what a piece costs. CASE: mnist28 (default), canvas280 or rgba280, as in bench.py.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from harness import make_payloads  # noqa: E402  (bench/harness.py, beside this script)


def stub(mode: str) -> None:
    from app.engine import Engine
    from app.predictor import Answer
    from model.imaging.preprocess import preprocess

    constant = Answer(digit=7, confidence=0.9, probabilities=[0.1] * 10, model_version="stub")

    async def noop(self: Engine, data: bytes) -> Answer:
        return constant

    async def preprocess_only(self: Engine, data: bytes) -> Answer:
        preprocess(data, self.predictor.max_pixels)
        return constant

    if mode != "none":
        Engine.predict = noop if mode == "noop" else preprocess_only  # type: ignore[method-assign]


async def drive(app: Any, body: bytes, content_type: str, concurrency: int, seconds: float) -> tuple[int, float, float]:
    async def one() -> None:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
                 "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2),
                 "headers": [(b"host", b"bench"), (b"content-type", content_type.encode()),
                             (b"content-length", str(len(body)).encode())]}  # fmt: skip
        sent = False
        statuses = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)  # the client never goes away
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(scope, receive, send)
        if statuses != [200]:
            raise RuntimeError(f"answered {statuses}")

    async with app.router.lifespan_context(app):
        for _ in range(200):
            await one()
        done, stop = 0, time.perf_counter() + seconds

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                await one()
                done += 1

        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return done, time.perf_counter() - t0, time.process_time() - c0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("case", nargs="?", default="mnist28", choices=["mnist28", "canvas280", "rgba280"])
    p.add_argument("--multipart", action="store_true")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--stub", choices=["none", "noop", "preprocess"], default="none")
    args = p.parse_args()
    os.environ.setdefault("DIGITS_TORCH_THREADS", "1")
    stub(args.stub)
    import uvloop

    from app.logs import configure_logging
    from app.main import create_app
    from app.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - the access lines are formatted, then dropped
    with tempfile.TemporaryDirectory() as tmp:
        path, content_type = make_payloads(Path(tmp))[f"{args.case}/{'multipart' if args.multipart else 'raw'}"]
        body = path.read_bytes()
    app = create_app(settings)
    done, wall, cpu = uvloop.run(drive(app, body, content_type, args.concurrency, args.seconds))
    print(f"{args.case} {'multipart' if args.multipart else 'raw'}, stub {args.stub}, c={args.concurrency}: "
          f"{done / wall:,.0f} requests/s, {cpu / done * 1e6:,.0f} us of CPU a request")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
