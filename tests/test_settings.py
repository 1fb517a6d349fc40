"""app.settings: validated at start-up, with the variable's name in the error."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings, SettingsError, available_cpus, load_settings
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
