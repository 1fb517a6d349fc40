"""Shared fixtures: the shipped MNIST test set and checkpoint, a tiny checkpoint, apps under test.

`client` serves a tiny untrained checkpoint made here: for the tests of HTTP behaviour, which do
not depend on what the model answers. `real_client` serves the shipped one, for tests that check
the digit read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import Settings
from model.checkpoint import DEFAULT_CHECKPOINT, LoadedModel, load_checkpoint, save_checkpoint
from model.data import MnistSplit, load_split
from model.imaging.preprocess import preprocess
from model.network import Net, NetConfig
from tests.helpers import draw_seven, encode


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


TINY = NetConfig(conv1_filters=2, conv2_filters=2, fc_size=8)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained network of the tutorial's shape, a few hundred weights, saved as training saves."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny") / "tiny.pt"
    save_checkpoint(path, Net(TINY), {"metrics": {"test_accuracy": 0.1}, "train_config": {"epochs": 0}})
    return path


def _settings(checkpoint: Path) -> Settings:
    return Settings(
        checkpoint=checkpoint,
        max_upload_bytes=200_000,
        max_batch_bytes=2_000_000,
        max_batch_files=4,
        max_pixels=4_000_000,
        torch_threads=1,
    )


@pytest.fixture
def settings(tiny_checkpoint: Path) -> Settings:
    return _settings(tiny_checkpoint)


@pytest.fixture
def real_settings() -> Settings:
    return _settings(DEFAULT_CHECKPOINT)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def real_client(real_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(real_settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="session")
def reference() -> np.ndarray:
    """A drawn 7 as preprocessing makes it: what other renderings of it are compared with."""
    return preprocess(encode(draw_seven())).image
