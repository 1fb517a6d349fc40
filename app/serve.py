"""Several uvicorn workers, each listening on its own SO_REUSEPORT socket (`python -m app` runs this).

uvicorn's `--workers` shares one listening socket among its workers, and the worker that wakes
first accepts every connection waiting: a burst of new connections lands on one worker and stays
there while the other idles (bench/README.md, "A socket per worker"). With a socket per worker
the kernel hashes each new connection to one of them.

The supervisor imports no torch and not the app (only its logging; it stays small); it starts the
workers, restarts one that dies, and on SIGTERM or SIGINT passes SIGTERM on, so each drains its
requests, and waits. A worker's socket listens only once its start-up is done (uvicorn calls
listen after the lifespan), so no connection waits on a worker still loading the model.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import signal
import socket
import sys
import time
from multiprocessing.process import BaseProcess
from types import FrameType

from app.logs import configure_logging

log = logging.getLogger("app.serve")


def bound_socket(host: str, port: int, reuse_port: bool = True) -> socket.socket:
    """A TCP socket bound to host:port; with `reuse_port`, one other processes may bind too."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def worker(args: argparse.Namespace) -> None:
    import uvicorn

    config = uvicorn.Config(
        "app.main:app",
        host=args.host,
        port=args.port,
        log_config=args.log_config,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=args.timeout_graceful_shutdown,
    )
    uvicorn.Server(config).run(sockets=[bound_socket(args.host, args.port)])


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app.serve")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--log-config", required=True)
    parser.add_argument("--log-level", required=True)
    parser.add_argument("--timeout-graceful-shutdown", type=int, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    configure_logging(args.log_level)
    # SO_REUSEPORT would let the workers join another server of this user on the port: a plain bind
    # first, so a port in use fails here, once, as uvicorn's own bind would
    try:
        bound_socket(args.host, args.port, reuse_port=False).close()
    except OSError as e:
        log.error("cannot listen on %s:%d: %s", args.host, args.port, e.strerror or e)
        return 1
    spawn = multiprocessing.get_context("spawn")
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def start() -> BaseProcess:
        process = spawn.Process(target=worker, args=(args,), name="digits-worker")
        process.start()
        return process

    workers = [start() for _ in range(args.workers)]
    log.info("%d workers, each on its own SO_REUSEPORT socket", len(workers))
    while not stopping:
        time.sleep(0.2)
        for i, process in enumerate(workers):
            if not process.is_alive() and not stopping:
                log.warning("worker %s exited with %s; starting another", process.pid, process.exitcode)
                workers[i] = start()
    for process in workers:
        if process.is_alive():
            process.terminate()  # SIGTERM: uvicorn stops accepting and drains
    deadline = time.monotonic() + args.timeout_graceful_shutdown + 5
    for process in workers:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
