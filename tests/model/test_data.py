import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from model import data
from model.data import DataError, IdxFile, load_split, parse_idx


def idx_images(images: np.ndarray) -> bytes:
    n, rows, cols = images.shape
    return struct.pack(">iiii", 2051, n, rows, cols) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">ii", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


@pytest.fixture
def small_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 'test' split of 6 generated 4x3 images, gzip'd images and plain labels, with their real MD5s."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 4, 3)).astype(np.uint8)
    labels = np.arange(6, dtype=np.uint8)
    raw_images, raw_labels = idx_images(images), idx_labels(labels)
    (tmp_path / "imgs.gz").write_bytes(gzip.compress(raw_images))
    (tmp_path / "lbls").write_bytes(raw_labels)  # uncompressed: found as "lbls" for spec "lbls.gz"
    spec = (
        IdxFile("imgs.gz", hashlib.md5(raw_images).hexdigest(), len(raw_images)),
        IdxFile("lbls.gz", hashlib.md5(raw_labels).hexdigest(), len(raw_labels)),
    )
    monkeypatch.setitem(data.FILES, "test", spec)
    return tmp_path, images, labels


def test_reads_gzipped_and_plain_idx(small_split: tuple[Path, np.ndarray, np.ndarray]) -> None:
    folder, images, labels = small_split
    split = load_split("test", folder)
    assert split.images.shape == (6, 4, 3)
    assert np.array_equal(split.images.numpy(), images)
    assert split.labels.tolist() == labels.tolist()
    assert set(split.md5) == {"imgs.gz", "lbls.gz"}


def test_md5_mismatch_names_the_file(small_split: tuple[Path, np.ndarray, np.ndarray]) -> None:
    folder, images, _ = small_split
    images[0, 0, 0] ^= 0xFF
    (folder / "imgs.gz").write_bytes(gzip.compress(idx_images(images)))
    with pytest.raises(DataError, match=r"imgs\.gz: MD5 of the uncompressed data is [0-9a-f]{32}, expected"):
        load_split("test", folder)


def test_missing_file_says_how_to_fix(small_split: tuple[Path, np.ndarray, np.ndarray]) -> None:
    folder, _, _ = small_split
    (folder / "lbls").unlink()
    with pytest.raises(DataError, match=r"lbls\.gz: missing\. .*python -m model\.data --download"):
        load_split("test", folder)


def test_corrupt_gzip_is_a_clear_error(small_split: tuple[Path, np.ndarray, np.ndarray]) -> None:
    folder, _, _ = small_split
    (folder / "imgs.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DataError, match=r"imgs\.gz: cannot be read"):
        load_split("test", folder)


def test_parse_idx_rejects_bad_headers() -> None:
    with pytest.raises(DataError, match="too short"):
        parse_idx(b"\x00\x00")
    with pytest.raises(DataError, match="magic number 1234"):
        parse_idx(struct.pack(">ii", 1234, 0))
    with pytest.raises(DataError, match="header promises 12 bytes of data but the file holds 5"):
        parse_idx(struct.pack(">iiii", 2051, 1, 4, 3) + b"\x00" * 5)


def test_data_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path))
    assert data.resolve_data_dir() == tmp_path
    assert data.resolve_data_dir("elsewhere") == Path("elsewhere")
    monkeypatch.delenv("MNIST_DATA_DIR")
    assert data.resolve_data_dir() == data.DEFAULT_DATA_DIR


def test_shipped_test_set_verifies() -> None:
    split = load_split("test")
    assert split.images.shape == (10000, 28, 28)
    assert split.md5 == {
        "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
    }
    assert np.bincount(split.labels.numpy()).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_download_verifies_files_already_there(small_split: tuple[Path, np.ndarray, np.ndarray]) -> None:
    folder, _, _ = small_split
    assert data.download(folder, splits=("test",)) == folder  # nothing fetched: both present and valid
