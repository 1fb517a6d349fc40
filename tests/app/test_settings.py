"""app.settings: validated at start-up, with the variable's name in the error."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app import settings as settings_module
from app.main import create_app
from app.settings import Settings, SettingsError, available_cpus, launcher_workers, load_settings, workers_option
from model.checkpoint import CheckpointError


def test_missing_checkpoint_stops_start_up(tmp_path: Path, settings: Settings) -> None:
    bad = settings.model_copy(update={"checkpoint": tmp_path / "missing.pt"})
    with pytest.raises(CheckpointError, match=r"missing\.pt: checkpoint file not found"), TestClient(create_app(bad)):
        pass


def test_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGITS_MAX_BATCH_FILES", "zero")
    with pytest.raises(SettingsError, match="DIGITS_MAX_BATCH_FILES='zero': Input should be a valid integer"):
        load_settings()
    monkeypatch.setenv("DIGITS_MAX_BATCH_FILES", "0")
    with pytest.raises(SettingsError, match="DIGITS_MAX_BATCH_FILES='0': Input should be greater than 0"):
        load_settings()


def test_threads_follow_cpus_and_workers() -> None:

    assert Settings(torch_threads=3).effective_torch_threads == 3
    assert Settings(workers=1).effective_torch_threads == available_cpus()
    assert Settings(workers=64).effective_torch_threads == 1
    assert Settings(workers=0).worker_count == available_cpus()  # 0: one worker per CPU
    assert Settings(workers=0).effective_torch_threads == 1


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ["/usr/bin/gunicorn", "app.main:app", "-k", "uvicorn.workers.UvicornWorker", "-w", "3"],
            "",
            (3, "gunicorn --workers"),
        ),
        (["gunicorn", "-w4", "app.main:app"], "", (4, "gunicorn --workers")),
        (["gunicorn", "--workers=5", "app.main:app"], "", (5, "gunicorn --workers")),
        (["gunicorn", "app.main:app"], "6", (6, "WEB_CONCURRENCY")),
        (["python3", "-m", "uvicorn", "app.main:app", "--workers", "2"], "", (2, "uvicorn --workers")),
        (["hypercorn", "app.main:app"], "7", (1, "hypercorn, one worker")),  # hypercorn does not read it
        (["python3", "-m", "app.serve", "--workers", "2"], "", None),  # python -m app sets DIGITS_WORKERS
    ],
)
def test_server_command_lines_say_how_many_workers(
    monkeypatch: pytest.MonkeyPatch, args: list[str], env: str, expected: tuple[int, str] | None
) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", env)
    assert workers_option(args) == expected


def _fake_uvicorn(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    """A process whose command line reads `uvicorn ARGS` (Python under that name, sleeping)."""
    exe = tmp_path / "uvicorn"
    exe.symlink_to(sys.executable)
    proc = subprocess.Popen([str(exe), "-c", "import time; time.sleep(30)", *args])
    time.sleep(0.2)
    return proc


@pytest.mark.parametrize(
    ("args", "expected"), [(("--workers", "3"), 3), (("--port", "1", "--workers=4"), 4), (("--port", "1"), 1)]
)
def test_a_uvicorn_parent_says_how_many_workers(tmp_path: Path, args: tuple[str, ...], expected: int) -> None:
    proc = _fake_uvicorn(tmp_path, *args)
    try:
        source = "uvicorn --workers" if expected > 1 else "uvicorn, one worker"
        assert launcher_workers((proc.pid,)) == (expected, source)
    finally:
        proc.kill()
        proc.wait()


def test_web_concurrency_is_uvicorns_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "5")
    proc = _fake_uvicorn(tmp_path)
    try:
        assert launcher_workers((proc.pid,)) == (5, "WEB_CONCURRENCY")
    finally:
        proc.kill()
        proc.wait()
    assert launcher_workers((os.getpid(),)) is None  # pytest is not uvicorn


def test_launcher_workers_share_the_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """`uvicorn app.main:app --workers 2` on 2 CPUs: one torch thread each (each took both, and the
    two fought: 725 against 8,875 req/s, bench/LOG.md "Start commands")."""
    monkeypatch.setattr(settings_module, "available_cpus", lambda: 2)
    monkeypatch.setattr(settings_module, "launcher_workers", lambda: (2, "uvicorn --workers"))
    assert Settings().effective_torch_threads == 1
    assert Settings(workers=1).effective_torch_threads == 2  # DIGITS_WORKERS, when set, is the count


def test_unknown_siblings_mean_one_torch_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither DIGITS_WORKERS nor a known server's command line: the safe choice, said in the log."""
    monkeypatch.setattr(settings_module, "available_cpus", lambda: 8)
    monkeypatch.setattr(settings_module, "launcher_workers", lambda: None)
    settings = Settings()
    assert settings.worker_processes[0] is None
    assert "DIGITS_WORKERS" in settings.worker_processes[1]
    assert settings.effective_torch_threads == 1
    assert Settings(torch_threads=4).effective_torch_threads == 4
