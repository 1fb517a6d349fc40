"""A tiny, deterministic training run on generated data; evaluation on MNIST and on image folders."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model import data
from model.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, sha256_of
from model.contract import to_tensor
from model.data import IdxFile, MnistSplit
from model.evaluate.digits import evaluate_images, evaluate_mnist, label_of, number_of
from model.evaluate.digits import main as evaluate_main
from model.imaging.preprocess import preprocess
from model.refusal import RATES
from model.synth import realworld
from model.train.augment import augment
from model.train.distill import Teachers
from model.train.outliers import degrade
from model.train.recipe import TrainConfig, split, train
from tests.helpers import draw_seven, encode, need_fonts
from tests.model.test_data import idx_images, idx_labels


@pytest.fixture
def tiny_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mnist_test: MnistSplit) -> Path:
    """A 'training set' of 600 real test digits in IDX files, registered with their own MD5s."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    images, labels = mnist_test.images[:600].numpy(), mnist_test.labels[:600].numpy()
    raw_images, raw_labels = idx_images(images), idx_labels(labels)
    (folder / "tr-img.gz").write_bytes(gzip.compress(raw_images))
    (folder / "tr-lbl.gz").write_bytes(gzip.compress(raw_labels))
    for spec in data.FILES["test"]:
        (folder / spec.name).symlink_to(data.DEFAULT_DATA_DIR / spec.name)
    monkeypatch.setitem(
        data.FILES,
        "train",
        (
            IdxFile("tr-img.gz", hashlib.md5(raw_images).hexdigest(), len(raw_images)),
            IdxFile("tr-lbl.gz", hashlib.md5(raw_labels).hexdigest(), len(raw_labels)),
        ),
    )
    return folder


def test_tiny_training_run_is_deterministic(tiny_mnist: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=2, batch_size=64, seed=3, val_size=100, limit=None, threads=1)
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    metrics = train(cfg, tiny_mnist, first)
    train(cfg, tiny_mnist, second)
    a, b = load_checkpoint(first), load_checkpoint(second)
    for key, value in a.net.state_dict().items():
        assert torch.equal(value, b.net.state_dict()[key]), key
    assert metrics["test_n"] == 10000
    assert 0.5 < metrics["test_accuracy"] < 1.0  # 500 images, 2 epochs: well above chance
    assert a.meta["train_config"]["seed"] == 3
    assert set(a.meta["data_md5"]) == {
        "tr-img.gz",
        "tr-lbl.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    }
    assert a.meta["metrics"]["temperature"] > 0
    assert (first.parent / "a.pt.sha256").read_text() == f"{sha256_of(first)}  a.pt\n"


def test_weight_average_is_what_is_kept(tiny_mnist: Path, tmp_path: Path) -> None:
    """With --ema the checkpoint holds the averaged weights (not the last step's), and the recipe
    (elastic, ema) is recorded in it."""
    cfg = TrainConfig(epochs=1, batch_size=64, seed=3, val_size=100, threads=1, elastic=1.0, ema=0.9)
    train(cfg, tiny_mnist, tmp_path / "ema.pt")
    plain = TrainConfig(epochs=1, batch_size=64, seed=3, val_size=100, threads=1, elastic=1.0)
    train(plain, tiny_mnist, tmp_path / "plain.pt")
    averaged, last = load_checkpoint(tmp_path / "ema.pt"), load_checkpoint(tmp_path / "plain.pt")
    assert averaged.meta["train_config"]["ema"] == 0.9
    assert averaged.meta["train_config"]["elastic"] == 1.0
    assert not torch.equal(averaged.net.fc2.weight, last.net.fc2.weight)


def test_distillation_learns_from_the_teachers(tiny_mnist: Path, tmp_path: Path) -> None:
    """--teachers: the soft targets are the teachers' mean softened answer, a student that answers as
    they do has no distillation loss, and a run with teachers trains other weights than one without."""
    teachers = Teachers([DEFAULT_CHECKPOINT, DEFAULT_CHECKPOINT], temperature=2.0)
    x = to_tensor(torch.rand(8, 28, 28))
    own = teachers.nets[0](x).detach()
    targets = teachers.targets(x)
    assert torch.allclose(targets, torch.softmax(own / 2.0, dim=1), atol=1e-6)
    assert torch.allclose(targets.sum(1), torch.ones(8))
    assert teachers.loss(own, targets).abs() < 1e-5
    assert teachers.loss(torch.zeros_like(own), targets) > 0.01
    with pytest.raises(ValueError, match="at least one teacher"):
        Teachers([], temperature=2.0)

    plain_cfg = TrainConfig(epochs=1, batch_size=64, seed=3, val_size=100, threads=1)
    student_cfg = dataclasses.replace(plain_cfg, teachers=(str(DEFAULT_CHECKPOINT),), distill_weight=0.7)
    train(student_cfg, tiny_mnist, tmp_path / "s.pt")
    train(plain_cfg, tiny_mnist, tmp_path / "plain.pt")
    student, plain = load_checkpoint(tmp_path / "s.pt"), load_checkpoint(tmp_path / "plain.pt")
    assert student.meta["train_config"]["teachers"] == [DEFAULT_CHECKPOINT.name]
    assert student.meta["distilled_from"] == [sha256_of(DEFAULT_CHECKPOINT)]
    assert student.meta["train_config"]["distill_weight"] == 0.7
    assert not torch.equal(student.net.fc2.weight, plain.net.fc2.weight)


def test_split_seed_gives_teachers_the_students_validation_split() -> None:
    def val(cfg: TrainConfig) -> torch.Tensor:
        return split(60000, cfg, torch.Generator().manual_seed(cfg.seed))[0]

    student = val(TrainConfig(seed=0))
    assert torch.equal(val(TrainConfig(seed=3, split_seed=0)), student)
    assert not torch.equal(val(TrainConfig(seed=3)), student)
    held_out, rest = split(60000, TrainConfig(seed=3, split_seed=0), torch.Generator().manual_seed(3))
    assert (len(held_out), len(rest)) == (5000, 55000)
    assert not set(held_out.tolist()) & set(rest.tolist())


def test_outlier_exposure_writes_refusal_data_the_service_reads(tiny_mnist: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(
        epochs=1, batch_size=64, val_size=100, threads=1, negatives=4, negative_batch=8, degrade=0.3, renders=5
    )
    train(cfg, tiny_mnist, tmp_path / "oe.pt")
    model = load_checkpoint(tmp_path / "oe.pt")
    assert model.refusal is not None
    assert "outlier exposure" in model.refusal.method
    assert "upload-like renderings" in model.refusal.fitted_on  # thresholds fitted where uploads sit too
    assert sorted(model.refusal.thresholds) == list(RATES)
    assert 0 < model.refusal.threshold(0.002) < 1
    shipped = load_checkpoint(DEFAULT_CHECKPOINT).refusal  # shipped with the digit gate's refusal instead
    assert shipped is not None
    assert shipped.score == "digit_gate"


def test_fonts_and_a_finetune_train_on_printed_digits_and_pieces(tiny_mnist: Path, tmp_path: Path) -> None:
    """--fonts adds printed digits (and, with negatives, printed pieces and touching digits to
    refuse); --finetune starts from a checkpoint's weights; --no-refusal writes no thresholds."""
    need_fonts(held_out=False)
    start = TrainConfig(epochs=1, batch_size=64, val_size=100, threads=1)
    train(start, tiny_mnist, tmp_path / "start.pt")
    cfg = TrainConfig(epochs=1, batch_size=64, val_size=100, threads=1, negatives=2, negative_batch=8, fonts=3,
                      refusal=False, finetune=str(tmp_path / "start.pt"), lr=1e-9)  # fmt: skip
    train(cfg, tiny_mnist, tmp_path / "ft.pt")
    before, after = load_checkpoint(tmp_path / "start.pt"), load_checkpoint(tmp_path / "ft.pt")
    assert after.refusal is None
    assert after.meta["train_config"]["fonts"] == 3
    for a, b in zip(before.net.parameters(), after.net.parameters(), strict=True):  # a rate of 1e-9: the start's
        assert torch.allclose(a, b, atol=1e-5)


def test_degrade_touches_only_its_share() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 28, 28)
    assert torch.equal(degrade(x, gen, 0.0), x)
    y = degrade(x, gen, 0.5)
    changed = (y != x).flatten(1).any(dim=1)
    assert 10 < int(changed.sum()) < 54
    assert float(y.amax()) <= 1.0


def test_augment_keeps_shape_range_and_is_seeded() -> None:
    x = torch.rand(8, 1, 28, 28)
    a = augment(x, torch.Generator().manual_seed(1))
    b = augment(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape
    assert torch.equal(a, b)
    assert float(a.min()) >= 0
    assert float(a.max()) <= 1
    assert not torch.equal(a, x)


def test_elastic_distortion_bends_strokes_and_is_seeded() -> None:
    """The elastic field moves ink (the result differs from the affine alone), the same for the same seed,
    and without it the generator yields what it did before (old recipes train the same)."""
    x = torch.zeros(4, 1, 28, 28)
    x[:, :, 4:24, 13:15] = 1.0
    a = augment(x, torch.Generator().manual_seed(3), elastic=1.5)
    assert torch.equal(a, augment(x, torch.Generator().manual_seed(3), elastic=1.5))
    assert not torch.equal(a, augment(x, torch.Generator().manual_seed(3)))
    assert torch.equal(augment(x, torch.Generator().manual_seed(3)), augment(x, torch.Generator().manual_seed(3), 0.0))
    assert float(a.min()) >= 0
    assert float(a.max()) <= 1


def test_shipped_checkpoint_scores_on_the_full_mnist_test_set(mnist_test: MnistSplit) -> None:
    model = load_checkpoint(DEFAULT_CHECKPOINT)
    ev = evaluate_mnist(model, rate=0)  # the CNN's own answers, no refusal: as it was measured
    summary = ev.summary()
    assert summary["n"] == 10000
    assert summary["accuracy"] >= 0.994
    assert summary["accuracy"] == pytest.approx(model.meta["metrics"]["test_accuracy"], abs=1e-9)
    refusing = evaluate_mnist(model).summary()  # as the service answers: a refusal counts as an error
    assert refusing["accuracy"] >= 0.995
    assert refusing["refused_right"] <= 0.002
    assert sum(map(sum, summary["confusion_matrix"])) == 10000
    assert all(row["recall"] > 0.98 for row in summary["per_class"].values())


def test_evaluate_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert evaluate_main(["--json", "--limit", "500"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 500
    assert out["accuracy"] >= 0.99
    assert out["source"] == "MNIST test set"
    assert len(out["confusion_matrix"]) == 10


def test_label_pattern() -> None:
    assert label_of(Path("7_photo_0012.jpg")) == (7, "photo")
    assert label_of(Path("3-canvas.png")) == (3, "canvas")
    assert label_of(Path("4_thin-thick_0007.png")) == (4, "thin-thick")
    assert label_of(Path("3-photo-1.jpg")) == (3, "photo")
    assert label_of(Path("5_.png")) == (5, "")
    assert label_of(Path("x7.png")) is None
    assert label_of(Path("17_a.png")) is None  # a number
    assert number_of(Path("17_a.png")) == ("17", "a")
    assert number_of(Path("0042_printed_0001.png")) == ("0042", "printed")
    assert number_of(Path("7_photo_0012.jpg")) is None
    assert number_of(Path("x_texture_0001.png")) is None


def test_realworld_writes_every_kind_labelled_and_readable(tmp_path: Path) -> None:
    need_fonts(held_out=True)  # the `fonts` kind
    assert realworld.generate(tmp_path, per_kind=2, seed=3) == 2 * len(realworld.KINDS)
    files = sorted(tmp_path.iterdir())
    labels = [label_of(f) for f in files]
    assert sorted({found[1] for found in labels if found}) == sorted(realworld.KINDS)
    assert all(labels)
    for f in files:
        preprocess(f.read_bytes())  # every one is an image the service reads (no PreprocessError)


def test_evaluate_image_folder_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        (folder / f"7_drawn_{i}.png").write_bytes(encode(draw_seven(offset=(10 + 30 * i, 12))))
    (folder / "1_blank_0.png").write_bytes(encode(draw_seven(ink=255)))  # no ink: refused, counted wrong
    (folder / "notes.txt").write_text("ignored")
    (folder / "x_plain_0.png").write_bytes(encode(draw_seven(ink=255)))  # no digit, and refused
    gradient = Image.fromarray(np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1)), "L")
    (folder / "x_gradient_0.png").write_bytes(encode(gradient))  # no digit
    plots = tmp_path / "plots"
    assert evaluate_main(["--images", str(folder), "--json", "--plots", str(plots)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["n"], out["errors"], out["refused"]) == (4, 1, 1)  # the digits; not the two without
    assert out["accuracy"] == 0.75
    assert out["refusal_rate"] == 0.25
    assert set(out["by_kind"]) == {"blank", "drawn"}
    assert out["by_kind"]["blank"] == {"accuracy": 0.0, "n": 1, "refusal_rate": 1.0, "ece": 0.0, "confident_wrong": 0.0,
                                       "refused_right": 0.0, "refused_wrong": 0.0}  # fmt: skip  # by preprocessing
    drawn = out["by_kind"]["drawn"]
    assert (drawn["accuracy"], drawn["n"], drawn["refusal_rate"], drawn["confident_wrong"]) == (1.0, 3, 0.0, 0.0)
    assert drawn["ece"] < 0.01  # three right answers, each stated at nearly 1
    negatives = out["not_a_digit"]
    assert negatives["all"]["n"] == 2
    assert negatives["by_kind"]["plain"] == {"n": 1, "refusal_rate": 1.0, "answered_confident": 0.0}
    assert set(negatives["by_kind"]) == {"plain", "gradient"}
    names = sorted(p.name for p in plots.iterdir())
    assert names == [
        "confusion_matrix.png",
        "conv1_filters.png",
        "conv1_output.png",
        "conv2_filters.png",
        "conv2_output.png",
        "misclassified.png",
    ]
    assert all((plots / n).stat().st_size > 2000 for n in names)


def test_evaluate_images_reads_like_the_service(tmp_path: Path) -> None:
    (tmp_path / "7_a.png").write_bytes(encode(draw_seven()))
    model = load_checkpoint(DEFAULT_CHECKPOINT)
    ev = evaluate_images(model, tmp_path)
    assert ev.predictions.tolist() == [7]
    assert np.isclose(ev.images[0].max(), 1.0)
