"""Hostile inputs, back-pressure, deadlines and graceful shutdown, against real server processes."""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests.conftest import ROOT
from tests.hostile import Case, corpus, multipart
from tests.test_api import photo_like_jpeg
from tests.test_server import free_port

pytestmark = pytest.mark.slow


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int

    def request(
        self, method: str, path: str, body: bytes = b"", content_type: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers={"content-type": content_type} if content_type else {})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def rss_kb(self) -> int:
        """Resident memory of the serving process (the worker, when there is one)."""
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        pid = children[-1] if children else str(self.proc.pid)
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def start(env: dict[str, str]) -> Server:
    port = free_port()
    full_env = {
        **os.environ,
        "DIGITS_PORT": str(port),
        "DIGITS_TORCH_THREADS": "1",
        "DIGITS_LOG_LEVEL": "warning",
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app"], cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    server = Server(proc, port)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if server.request("GET", "/health/ready")[0] == 200:
                return server
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise TimeoutError("server not ready")


def stop(server: Server) -> int:
    server.proc.send_signal(signal.SIGTERM)
    return server.proc.wait(timeout=20)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = start({})
    yield s
    stop(s)


def big_batch(n: int = 64) -> tuple[bytes, str]:
    """64 phone-photo-like JPEGs (uneven light: the slow, full-detail path), about half a second of work."""
    photo = (ROOT / "examples" / "photo.jpg").read_bytes()
    return multipart([("files", f"{i}.jpg", photo) for i in range(n)])


def send(server: Server, case: Case) -> tuple[int, str | None, float]:
    import json

    t0 = time.perf_counter()
    status, _, body = server.request("POST", "/predict", case.body, case.content_type)
    seconds = time.perf_counter() - t0
    code = json.loads(body)["error"]["code"] if status != 200 else None
    return status, code, seconds


def send_declared_slowly(server: Server, case: Case) -> tuple[int, float]:
    """Headers promising case.declared_length bytes, then a trickle; the answer must not wait for the rest."""
    assert case.declared_length is not None
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        head = (
            f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: {case.content_type}\r\n"
            f"Content-Length: {case.declared_length}\r\n\r\n"
        )
        sock.sendall(head.encode() + case.body[:100])
        sock.settimeout(1.0)
        reply = sock.recv(65536)
    return int(reply.split(b" ", 2)[1]), time.perf_counter() - t0


def test_hostile_corpus(server: Server) -> None:
    cases = corpus()
    assert len(cases) >= 30
    for case in cases[:5]:  # allocator warm-up before the baseline
        send(server, case) if case.declared_length is None else send_declared_slowly(server, case)
    before = server.rss_kb()
    slowest, passes = 0.0, []
    for _ in range(3):  # three passes: a leak would grow with each
        for case in cases:
            if case.declared_length is not None:
                status, seconds = send_declared_slowly(server, case)
                assert status == case.status, case.name
            else:
                status, code, seconds = send(server, case)
                assert (status, code) == (case.status, case.code), case.name
            assert seconds < 1.0, case.name
            slowest = max(slowest, seconds)
        passes.append(round((server.rss_kb() - before) / 1024, 1))
    growth_mb = passes[-1]
    print(f"\n{len(cases)} cases x 3: slowest answer {slowest * 1000:.0f} ms, RSS growth after each pass {passes} MB")
    assert growth_mb < 50
    assert server.request("GET", "/health/ready")[0] == 200


def test_back_pressure_answers_503_at_once() -> None:
    s = start({"DIGITS_MAX_IN_FLIGHT": "2"})
    try:
        body, ctype = big_batch()

        def call(_: int) -> tuple[int, str, float]:
            t0 = time.perf_counter()
            status, headers, _ = s.request("POST", "/predict/batch", body, ctype)
            return status, headers.get("retry-after", ""), time.perf_counter() - t0

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(call, range(8)))
        refused = [r for r in results if r[0] == 503]
        served = [r for r in results if r[0] == 200]
        assert len(refused) + len(served) == 8
        assert len(served) >= 1
        assert len(refused) >= 4
        assert all(retry == "1" and seconds < 0.5 for _, retry, seconds in refused)
        assert s.request("GET", "/health/ready")[0] == 200
    finally:
        stop(s)


def test_deadline_answers_503_timeout() -> None:
    s = start({"DIGITS_REQUEST_TIMEOUT": "0.1"})
    try:
        body, ctype = big_batch()
        t0 = time.perf_counter()
        status, headers, reply = s.request("POST", "/predict/batch", body, ctype)
        assert status == 503
        assert b'"code":"timeout"' in reply
        assert headers["retry-after"] == "1"
        assert time.perf_counter() - t0 < 1.0
        assert s.request("POST", "/predict", photo_like_jpeg(), "image/jpeg")[0] == 200
    finally:
        stop(s)


def test_deadlines_cancel_only_the_late_and_leave_other_cancellations_alone() -> None:
    from app.middleware import Deadlines

    async def run() -> None:
        deadlines = Deadlines(0.05)

        async def request(seconds: float) -> str:
            task = asyncio.current_task()
            assert task is not None
            entry = deadlines.start(task)
            try:
                await asyncio.sleep(seconds)
                return "done"
            except asyncio.CancelledError:
                if not entry[1]:
                    raise
                task.uncancel()
                return "timed out"
            finally:
                deadlines.end(task)

        quick, slow, other = (asyncio.create_task(request(s)) for s in (0.01, 5, 5))
        await asyncio.sleep(0.02)
        other.cancel()  # the server's cancellation (a client gone), before the deadline: not a timeout
        assert await quick == "done"
        t0 = time.monotonic()
        assert await slow == "timed out"
        assert time.monotonic() - t0 < 0.2  # the deadline (0.05 s) plus at most one watchdog period
        with pytest.raises(asyncio.CancelledError):
            await other
        assert not deadlines._entries  # nothing left tracked

    asyncio.run(run())


@pytest.mark.parametrize("workers", [1, 2])  # 2: app/serve.py's supervisor passes SIGTERM on
def test_sigterm_lets_in_flight_requests_finish_and_refuses_new_ones(workers: int) -> None:
    s = start({"DIGITS_GRACEFUL_SHUTDOWN": "10", "DIGITS_WORKERS": str(workers)})
    body, ctype = big_batch()
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(s.request, "POST", "/predict/batch", body, ctype) for _ in range(6)]
        time.sleep(0.3)  # all six are in flight (together they take a few seconds)
        t0 = time.perf_counter()
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", s.port), timeout=1).close()
        statuses = [f.result()[0] for f in futures]
    code = s.proc.wait(timeout=15)
    print(f"\nSIGTERM with 6 in flight: statuses {statuses}, exit {code} after {time.perf_counter() - t0:.2f} s")
    assert statuses == [200] * 6
    assert code in (0, -signal.SIGTERM)


def test_workers_are_restarted_and_a_port_in_use_is_refused() -> None:
    s = start({"DIGITS_WORKERS": "2"})
    try:
        workers = subprocess.run(["pgrep", "-f", "-P", str(s.proc.pid), "spawn_main"], capture_output=True, text=True)
        pids = workers.stdout.split()
        assert len(pids) == 2
        os.kill(int(pids[0]), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = subprocess.run(["pgrep", "-f", "-P", str(s.proc.pid), "spawn_main"], capture_output=True, text=True)
            if len(now.stdout.split()) == 2 and pids[0] not in now.stdout.split():
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the killed worker was not replaced")
        env = {**os.environ, "DIGITS_PORT": str(s.port), "DIGITS_WORKERS": "2"}
        second = subprocess.run([sys.executable, "-m", "app"], cwd=ROOT, env=env, capture_output=True, timeout=60)
        assert second.returncode != 0  # not a silent share of the first server's port
        assert b"Address already in use" in second.stderr
        assert s.request("GET", "/health/live")[0] == 200
    finally:
        assert stop(s) in (0, -signal.SIGTERM)
