"""`python -m model.train --finetune CHECKPOINT --extra-images DIR` on a tiny MNIST: what it reads
from the folder, the held-out share, the checkpoint it writes and the record in it, and the MNIST
guard that refuses to write one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import Settings
from model.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from model.synth import segments
from model.train.finetune import Extra, FinetuneRecipe, finetune, read_folder, split_held_out
from model.train.recipe import main as train_main
from tests.helpers import draw_seven, encode, need_fonts
from tests.model.test_train_evaluate import tiny_mnist  # noqa: F401 - the fixture

QUICK = FinetuneRecipe(epochs=1, held_mnist=100, gate_epochs=1, gate_per_kind=4, gate_negatives=4)


def test_read_folder_takes_digits_numbers_and_not_digits(tmp_path: Path) -> None:
    (tmp_path / "7_feedback_1.png").write_bytes(encode(draw_seven()))
    row = Image.new("L", (420, 160), 255)
    row.paste(draw_seven(), (0, 0))
    row.paste(draw_seven(), (220, 0))
    (tmp_path / "77_feedback_2.png").write_bytes(encode(row))
    (tmp_path / "777_feedback_3.png").write_bytes(encode(row))  # two digits found, three in the label: unusable
    (tmp_path / "x_feedback_4.png").write_bytes(encode(Image.radial_gradient("L").resize((64, 64))))
    (tmp_path / "3_feedback_5.png").write_bytes(b"not an image")
    (tmp_path / "manifest.jsonl").write_text("{}\n")
    extra, unusable = read_folder(tmp_path)
    assert sorted(extra.labels.tolist()) == [-1, 7, 7, 7]
    assert unusable == 2
    assert extra.images.shape == (4, 28, 28)
    assert extra.images.max() <= 1


def test_the_held_out_share_is_drawn_from_digits_and_not_digits_alike() -> None:
    labels = np.array([d % 10 for d in range(80)] + [-1] * 20)
    extra = Extra(np.zeros((100, 28, 28), np.float32), labels, np.array(["clean"] * 100))
    train, held = split_held_out(extra, 0.25, seed=3)
    assert (len(train), len(held)) == (75, 25)
    assert (held.labels < 0).sum() == 5
    again = split_held_out(extra, 0.25, seed=3)[1]
    assert np.array_equal(again.labels, held.labels)


def test_a_finetune_writes_a_checkpoint_with_its_record(tiny_mnist: Path, tmp_path: Path) -> None:  # noqa: F811
    need_fonts(held_out=False)  # the gate's fresh examples hold printed digits
    segments.write(tmp_path / "extra", 40, seed=5)
    out = tmp_path / "ft.pt"
    record = finetune(DEFAULT_CHECKPOINT, tmp_path / "extra", out, tiny_mnist, QUICK)
    tuned, source = load_checkpoint(out), load_checkpoint(DEFAULT_CHECKPOINT)  # verified against its sidecar
    assert record["written"] == str(out)
    assert tuned.meta["finetuned"] == {**record, "written": "ft.pt"}  # no local path in the checkpoint
    assert tuned.meta["created_at"] != source.meta["created_at"]
    assert (record["from"], record["images"], record["held_out"]) == (source.version, 40, 10)
    assert record["mnist_test"]["before"] == source.meta["metrics"]["test_accuracy"]  # the shipped figure
    assert tuned.gate is not None
    assert tuned.refusal is not None
    assert set(record["held_out_images"]["after"]) == {"read", "answered_right"}
    assert not np.array_equal(tuned.net.fc1.weight.detach(), source.net.fc1.weight.detach())
    with TestClient(create_app(Settings(checkpoint=out, torch_threads=1))) as client:  # the service shows it
        assert client.get("/model").json()["finetuned"]["from"] == source.version


def test_a_finetune_that_loses_on_mnist_is_not_written(tiny_mnist: Path, tmp_path: Path,  # noqa: F811
                                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    segments.write(tmp_path / "extra", 20, seed=6)
    out = tmp_path / "ft.pt"
    strict = FinetuneRecipe(epochs=1, held_mnist=100, max_mnist_drop=-1.0)  # it would have to gain a whole point
    record = finetune(DEFAULT_CHECKPOINT, tmp_path / "extra", out, tiny_mnist, strict)
    assert record["written"] is None
    assert not out.exists()
    code = train_main(["--finetune", str(DEFAULT_CHECKPOINT), "--extra-images", str(tmp_path / "nothing-here"),
                       "--data-dir", str(tiny_mnist), "--output", str(out)])  # fmt: skip
    assert code == 1
    assert not out.exists()
