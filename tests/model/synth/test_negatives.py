"""model.synth.negatives: images with no digit, seeded, of every kind the refusal is measured on."""

from __future__ import annotations

import io
import re
from pathlib import Path

from PIL import Image

from model.synth.negatives import KINDS, TYPED, generate

#: Characters people write as digits; refusing them would refuse digits.
LOOKALIKES = set("OoQD0Il1ij|!Zz2Ss5$Gb6T7B&8gq9")


def test_every_kind_is_written_and_named_as_not_a_digit(tmp_path: Path) -> None:
    assert generate(tmp_path, per_kind=3, seed=5) == 3 * len(KINDS)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert all(re.fullmatch(r"x_[a-z]+_\d{4}\.(png|jpg)", n) for n in names)
    assert {n.split("_")[1] for n in names} == set(KINDS)
    for path in tmp_path.iterdir():
        with Image.open(io.BytesIO(path.read_bytes())) as img:
            img.load()
            assert min(img.size) >= 28
            if "_drawn_" in path.name:  # as the drawing page sends: a transparent canvas
                assert img.mode == "RGBA"
                assert img.size == (280, 280)


def test_the_same_seed_gives_the_same_images(tmp_path: Path) -> None:
    generate(tmp_path / "a", per_kind=2, seed=9)
    generate(tmp_path / "b", per_kind=2, seed=9)
    generate(tmp_path / "c", per_kind=2, seed=10)
    read = lambda d: {p.name: p.read_bytes() for p in sorted(d.iterdir())}  # noqa: E731
    assert read(tmp_path / "a") == read(tmp_path / "b")
    assert read(tmp_path / "a") != read(tmp_path / "c")


def test_no_typed_negative_is_written_as_a_digit() -> None:
    assert not LOOKALIKES & set(TYPED)
