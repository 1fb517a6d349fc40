"""Several uvicorn workers, each listening on its own SO_REUSEPORT socket (`python -m app` runs this).

uvicorn's `--workers` shares one listening socket among its workers, and the worker that wakes
first accepts every connection waiting: a burst of new connections lands on one worker and stays
there while the other idles (bench/LOG.md, "A socket per worker"). With a socket per worker
the kernel hashes each new connection to one of them.

The supervisor imports no torch and not the app (only its logging; it stays small); it starts the
workers, restarts one that dies, and on SIGTERM or SIGINT passes SIGTERM on, so each drains its
requests, and waits. On SIGHUP it passes SIGHUP on: each worker reloads the checkpoint at
DIGITS_CHECKPOINT (`app/reload.py`); on SIGUSR1, sent by a worker that took `POST /admin/reload`,
the same, with the file that request chose. A worker's socket listens only once its start-up is
done (uvicorn calls listen after the lifespan), so no connection waits on a worker still loading
the model.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from http.client import HTTPConnection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from prometheus_client.multiprocess import mark_process_dead

from app.logs import configure_logging
from app.reload import CHOICE_ENV, clear_choice

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


def worker(args: argparse.Namespace, reuse_port: bool = True) -> None:
    import uvicorn

    from app.protocol import GuardedHttpToolsProtocol, HttpLimits
    from app.settings import load_settings

    raise_open_files_limit()
    # a SIGHUP before the app listens for it (start-up) would end the worker: ignored until then
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    config = uvicorn.Config(
        "app.main:app",
        host=args.host,
        port=args.port,
        http=GuardedHttpToolsProtocol.with_limits(HttpLimits.from_settings(load_settings())),
        log_config=args.log_config,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=args.timeout_graceful_shutdown,
    )
    uvicorn.Server(config).run(sockets=[bound_socket(args.host, args.port, reuse_port)])


def announce_when_ready(host: str, port: int, workers: int, patience: float = 600.0) -> threading.Thread:
    """Once the service answers `/health/ready`, one plain line for the person who started it,
    beside the JSON logs: `serving on http://127.0.0.1:8000 with 2 workers`."""
    probe = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    where = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    if host in ("0.0.0.0", "::"):
        where += " (every interface)"
    line = f"serving on {where} with {workers} worker{'s' if workers != 1 else ''}: the page at /, the API at /docs\n"

    def wait() -> None:
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            connection = HTTPConnection(probe, port, timeout=2)
            try:
                connection.request("GET", "/health/ready")
                if connection.getresponse().status == 200:
                    sys.stderr.write(line)
                    sys.stderr.flush()
                    return
            except OSError:
                pass
            finally:
                connection.close()
            time.sleep(0.2)

    thread = threading.Thread(target=wait, name="announce", daemon=True)
    thread.start()
    return thread


def raise_open_files_limit() -> None:
    """The soft limit on open files up to the hard one: 1,024 by default, which a crowd of idle
    connections would use up before `DIGITS_MAX_CONNECTIONS` refuses any."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 1 << 16), hard))


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
    announce_when_ready(args.host, args.port, args.workers)
    if args.workers == 1:  # no supervisor: this process is the worker (and handles its signals)
        worker(args, reuse_port=False)
        return 0
    # metrics summed across workers, in a fresh folder so counts start at zero; removed at the end
    # unless the operator named it
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    folder = given or tempfile.mkdtemp(prefix="digits-metrics-")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    # the checkpoint POST /admin/reload chose, for every worker (app/reload.py); none yet
    choice = Path(tempfile.mkdtemp(prefix="digits-choice-")) / "checkpoint"
    os.environ[CHOICE_ENV] = str(choice)
    try:
        return supervise(args, choice)
    finally:
        if not given:
            shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(choice.parent, ignore_errors=True)


#: A worker that exits within this many seconds of its start failed to start; it is restarted after
#: 1, 2, 4 ... seconds, at most RESTART_MAX_DELAY, so a broken start-up does not spin.
RESTART_QUICK_EXIT = 30.0
RESTART_MAX_DELAY = 60.0


def supervise(args: argparse.Namespace, choice: Path) -> int:
    spawn = multiprocessing.get_context("spawn")
    stopping = False
    workers: list[BaseProcess] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    def reload(signum: int, frame: FrameType | None) -> None:
        """SIGHUP, the operator's: DIGITS_CHECKPOINT again; SIGUSR1, a worker's after POST
        /admin/reload: the file it chose. Either way every worker is told at once."""
        if signum == signal.SIGHUP:
            clear_choice(choice)
        pids = [p.pid for p in workers if p.is_alive() and p.pid is not None]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)
        log.info("reload (%s): SIGHUP passed to %d workers", signal.Signals(signum).name, len(pids))

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    signal.signal(signal.SIGUSR1, reload)

    def start() -> BaseProcess:
        process = spawn.Process(target=worker, args=(args,), name="digits-worker")
        process.start()
        return process

    workers.extend(start() for _ in range(args.workers))
    started = [time.monotonic()] * len(workers)
    failures = [0] * len(workers)
    restart_at: list[float | None] = [None] * len(workers)
    log.info("%d workers, each on its own SO_REUSEPORT socket", len(workers))
    while not stopping:
        time.sleep(0.2)
        now = time.monotonic()
        for i, process in enumerate(workers):
            if stopping or process.is_alive():
                continue
            if restart_at[i] is None:
                if process.pid is not None:  # its per-process gauges (the model it served) go with it
                    mark_process_dead(process.pid)
                failures[i] = failures[i] + 1 if now - started[i] < RESTART_QUICK_EXIT else 0
                delay = min(RESTART_MAX_DELAY, 2.0 ** failures[i] / 2) if failures[i] else 0.0
                restart_at[i] = now + delay
                log.warning(
                    "worker %s exited with %s; starting another in %.0f s", process.pid, process.exitcode, delay
                )
            if now >= (restart_at[i] or 0.0):
                workers[i], started[i], restart_at[i] = start(), now, None
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
