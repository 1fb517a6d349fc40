"""Shared fixtures: images made in code, the shipped MNIST test set and checkpoint, apps under test."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from app.main import create_app
from app.settings import Settings
from model.checkpoint import DEFAULT_CHECKPOINT, LoadedModel, load_checkpoint
from model.data import MnistSplit, load_split

ROOT = Path(__file__).resolve().parent.parent


def encode(img: Image.Image, fmt: str = "PNG", **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def draw_seven(
    size: tuple[int, int] = (200, 160),
    offset: tuple[int, int] = (10, 12),
    scale: float = 1.0,
    ink: int = 0,
    paper: int = 255,
    width: int = 9,
) -> Image.Image:
    """A '7' of dark ink on light paper, drawn away from the centre."""
    img = Image.new("L", size, paper)
    ox, oy = offset
    pts = [(ox + 10 * scale, oy + 10 * scale), (ox + 70 * scale, oy + 10 * scale), (ox + 35 * scale, oy + 100 * scale)]
    ImageDraw.Draw(img).line(pts, fill=ink, width=max(1, round(width * scale)), joint="curve")
    return img


def ink_bbox(image: np.ndarray, threshold: float = 0.05) -> tuple[int, int, int, int]:
    rows = np.flatnonzero((image > threshold).any(axis=1))
    cols = np.flatnonzero((image > threshold).any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


@pytest.fixture(scope="session")
def mnist_test() -> MnistSplit:
    return load_split("test")  # the shipped copy in data/mnist


@pytest.fixture(scope="session")
def shipped_model() -> LoadedModel:
    return load_checkpoint(DEFAULT_CHECKPOINT)


@pytest.fixture(scope="session")
def mnist_png(mnist_test: MnistSplit) -> tuple[bytes, int]:
    """The first MNIST test digit (a 7) as a 28x28 grayscale PNG, and its label."""
    return encode(Image.fromarray(mnist_test.images[0].numpy(), "L")), int(mnist_test.labels[0])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        checkpoint=DEFAULT_CHECKPOINT,
        max_upload_bytes=200_000,
        max_batch_bytes=2_000_000,
        max_batch_files=4,
        max_pixels=4_000_000,
        torch_threads=1,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c
