"""The feedback store on real databases, a SQLite file and a throwaway PostgreSQL server
(`tests/postgres.py`), under `python -m app`: the schema migrated from empty, both workers writing
200 corrections at concurrency 16 with none lost, and a correction answered 201 still there after
the service is killed with SIGKILL and started again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import inspect

from app.feedback.db import make_engine, migrate
from app.feedback.store import FeedbackStore
from tests.helpers import Server, multipart, start, stop
from tests.postgres import postgres_server

TOKEN = "feedback-admin-token-0123"


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind: a new SQLite file, or a fresh database on the server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'feedback.db'}"
        return
    server: str = request.getfixturevalue("postgres")
    name = f"t{os.getpid()}_{abs(hash(request.node.name)) % 10**8}"
    admin = make_engine(server).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    yield server.rsplit("/", 1)[0] + "/" + name


def correction(image: bytes, label: str) -> tuple[bytes, str]:
    return multipart([("file", "digit.png", image), ("label", None, label.encode())])


def test_migrations_from_an_empty_database(database: str) -> None:
    assert migrate(database) == "0001"
    assert migrate(database) == "0001"  # again: nothing to do
    engine = make_engine(database)
    columns = {c["name"] for c in inspect(engine).get_columns("feedback")}
    engine.dispose()
    assert {"label", "predicted", "right", "model_version", "inputs", "upload", "request_id"} <= columns


def test_two_workers_write_200_corrections_at_concurrency_16(database: str, mnist_png: tuple[bytes, int]) -> None:
    server = start({"DIGITS_WORKERS": "2", "DIGITS_FEEDBACK_DB": database, "DIGITS_FEEDBACK_PER_MINUTE": "1000"})
    try:
        body, content_type = correction(mnist_png[0], "7")

        def send(_n: int) -> tuple[int, int]:
            status, _, answer = server.request("POST", "/feedback", body, content_type)  # a new connection each
            return status, int(json.loads(answer).get("id", -1))

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(send, range(200)))
    finally:
        stop(server)
    assert [s for s, _ in results] == [201] * 200
    store = FeedbackStore(database, 1000)
    ids = sorted(row.id for row in store.records())
    store.close()
    assert ids == sorted(i for _, i in results)
    assert len(set(ids)) == 200


def _kill(server: Server) -> None:
    """SIGKILL to the worker and the supervisor: nothing is flushed or closed."""
    children = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout.split()
    for pid in [*map(int, children), server.proc.pid]:
        os.kill(pid, signal.SIGKILL)
    server.proc.wait(timeout=10)


def test_a_correction_answered_201_survives_kill_9(database: str, mnist_png: tuple[bytes, int]) -> None:
    env = {"DIGITS_FEEDBACK_DB": database, "DIGITS_ADMIN_TOKEN": TOKEN}
    server = start(env)
    status, _, answer = server.request("POST", "/feedback", *correction(mnist_png[0], "4"))
    _kill(server)  # at once after the 201
    assert status == 201
    server = start(env)
    try:
        status, _, summary = server.request("GET", "/feedback/summary", headers={"authorization": f"Bearer {TOKEN}"})
    finally:
        stop(server)
    assert status == 200
    assert b'"records":1' in summary
    assert b'"labels":{"4":1}' in summary
    assert b'"id":1' in answer


def test_the_record_cap_holds_under_two_workers_at_once(database: str, mnist_png: tuple[bytes, int]) -> None:
    """The count and the insert are one writer's (SQLite's BEGIN IMMEDIATE, PostgreSQL's advisory
    lock): 80 corrections at c=16 into room for 50, across two workers, store exactly 50."""
    server = start({"DIGITS_WORKERS": "2", "DIGITS_FEEDBACK_DB": database, "DIGITS_FEEDBACK_PER_MINUTE": "1000",
                    "DIGITS_FEEDBACK_MAX_RECORDS": "50"})  # fmt: skip
    try:
        body, content_type = correction(mnist_png[0], "7")
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda _n: server.request("POST", "/feedback", body, content_type)[0], range(80)))
    finally:
        stop(server)
    assert sorted(statuses) == [201] * 50 + [507] * 30
    store = FeedbackStore(database, 1000)
    assert store.count() == 50
    store.close()
