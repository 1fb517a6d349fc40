"""A throwaway PostgreSQL server for the feedback tests: Debian's `postgresql` package's binaries,
a cluster in a temporary folder on a free loopback port, removed afterwards.

Skipped, with the reason, where the package is missing; CI installs it and sets REQUIRE_POSTGRES=1,
which fails the tests instead. As root (CI), the server runs as the package's `postgres` user."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import free_port


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder (/usr/lib/postgresql/<version>/bin), if any."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


def need_postgres() -> Path:
    where = binaries()
    if where is None:
        reason = "PostgreSQL is not installed (Debian: apt-get install postgresql)"
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + "; REQUIRE_POSTGRES=1 needs it")
        pytest.skip(reason)
    return where


@contextmanager
def postgres_server() -> Iterator[str]:
    """A running server; yields its SQLAlchemy URL (database `postgres`, user `digits`, no password:
    trust on loopback, for this throwaway cluster only)."""
    bin_dir = need_postgres()
    folder = Path(tempfile.mkdtemp(prefix="digits-pg-"))
    as_root = os.geteuid() == 0
    if as_root:  # initdb and postgres refuse to run as root
        shutil.chown(folder, "postgres", "postgres")

    def run(*args: str) -> None:
        command = [str(bin_dir / args[0]), *args[1:]]
        if as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    port = free_port()
    data = folder / "data"
    try:
        run("initdb", "-D", str(data), "-A", "trust", "-U", "digits", "--no-sync", "-E", "UTF8")
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60"
        run("pg_ctl", "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "start")
        try:
            yield f"postgresql://digits@127.0.0.1:{port}/postgres"
        finally:
            run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
