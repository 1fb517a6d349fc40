"""MNIST from its four original IDX files, verified against the canonical MD5s, with a download; and
the names of labelled image files (`model.evaluate --images`, `model.train --extra-images`)."""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import re
import struct
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

log = logging.getLogger(__name__)

Split = Literal["train", "test"]

DATA_DIR_ENV = "MNIST_DATA_DIR"
#: The MNIST test set ships in the repository (CC BY-SA 3.0, LeCun, Cortes and Burges);
#: training files go into the same folder when downloaded.
DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "mnist"

#: A labelled image file's name: `<label>_<kind>_<n>.<ext>`, the label a digit, a number of two or
#: more digits, or `x` (no digit).
LABEL_PATTERN = re.compile(r"^(?P<label>\d+|x)[_-](?:(?P<kind>[A-Za-z0-9]+(?:-[A-Za-z]+)*)[-_.])?")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049


@dataclass(frozen=True)
class IdxFile:
    name: str  # the gzip'd file name as published
    md5: str  # MD5 of the uncompressed bytes, as published with the data set
    size: int  # uncompressed bytes


FILES: dict[Split, tuple[IdxFile, IdxFile]] = {
    "train": (
        IdxFile("train-images-idx3-ubyte.gz", "6bbc9ace898e44ae57da46a324031adb", 47040016),
        IdxFile("train-labels-idx1-ubyte.gz", "a25bea736e30d166cdddb491f175f624", 60008),
    ),
    "test": (
        IdxFile("t10k-images-idx3-ubyte.gz", "2646ac647ad5339dbf082846283269ea", 7840016),
        IdxFile("t10k-labels-idx1-ubyte.gz", "27ae3e4e09519cfbb04c329615203637", 10008),
    ),
}

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


class DataError(Exception):
    """A missing, unreadable or corrupt MNIST file; the message says which and how to fix it."""


@dataclass(frozen=True)
class MnistSplit:
    images: torch.Tensor  # (N, 28, 28) uint8, white ink on black
    labels: torch.Tensor  # (N,) int64
    md5: dict[str, str]  # file name -> verified MD5


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """`data_dir` if given, else $MNIST_DATA_DIR, else the repository's data/mnist."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else DEFAULT_DATA_DIR


def _find(folder: Path, spec: IdxFile) -> Path | None:
    """The file gzip'd (as published) or already uncompressed."""
    for candidate in (folder / spec.name, folder / spec.name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError) as e:
        raise DataError(
            f"{path}: cannot be read ({e.__class__.__name__}: {e}); "
            "delete it and download it again (python -m model.data --download)"
        ) from e


def parse_idx(raw: bytes, path: Path | str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes (big-endian header) into a uint8 array: (N, rows, cols) or (N,)."""
    if len(raw) < 8:
        raise DataError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    magic, count = struct.unpack(">ii", raw[:8])
    if magic == IMAGES_MAGIC:
        if len(raw) < 16:
            raise DataError(f"{path}: IDX image header is truncated")
        rows, cols = struct.unpack(">ii", raw[8:16])
        shape: tuple[int, ...] = (count, rows, cols)
        offset = 16
    elif magic == LABELS_MAGIC:
        shape = (count,)
        offset = 8
    else:
        raise DataError(f"{path}: not an MNIST IDX file (magic number {magic})")
    expected = int(np.prod(shape))
    if len(raw) - offset != expected:
        raise DataError(f"{path}: header promises {expected} bytes of data but the file holds {len(raw) - offset}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def _load_verified(folder: Path, spec: IdxFile) -> tuple[np.ndarray, str]:
    path = _find(folder, spec)
    if path is None:
        raise DataError(
            f"{folder / spec.name}: missing. Put the four MNIST IDX files in {folder} "
            f"(or pass --data-dir / set {DATA_DIR_ENV}), or run: "
            f"python -m model.data --download --data-dir {folder}"
        )
    raw = _read_bytes(path)
    digest = hashlib.md5(raw).hexdigest()
    if digest != spec.md5:
        raise DataError(
            f"{path}: MD5 of the uncompressed data is {digest}, expected {spec.md5} "
            "(corrupt or not the original file); delete it and download it again"
        )
    return parse_idx(raw, path), digest


def load_split(split: Split, data_dir: str | Path | None = None) -> MnistSplit:
    """Load and verify one split from the folder `resolve_data_dir(data_dir)`."""
    folder = resolve_data_dir(data_dir)
    images_spec, labels_spec = FILES[split]
    images, images_md5 = _load_verified(folder, images_spec)
    labels, labels_md5 = _load_verified(folder, labels_spec)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{folder}: {split} images and labels do not match in shape")
    return MnistSplit(
        images=torch.from_numpy(images.copy()),
        labels=torch.from_numpy(labels.astype(np.int64)),
        md5={images_spec.name: images_md5, labels_spec.name: labels_md5},
    )


def download(data_dir: str | Path | None = None, splits: tuple[Split, ...] = ("train", "test")) -> Path:
    """Fetch missing files from the public mirrors into the folder; verify each one."""
    folder = resolve_data_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for split in splits:
        for spec in FILES[split]:
            if _find(folder, spec) is not None:
                _load_verified(folder, spec)  # raises if the file there is corrupt
                continue
            errors = []
            for mirror in MIRRORS:
                url = mirror + spec.name
                tmp = folder / (spec.name + ".part")
                try:
                    log.info("downloading %s", url)
                    with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
                        while chunk := r.read(1 << 20):
                            f.write(chunk)
                    tmp.replace(folder / spec.name)
                    _load_verified(folder, spec)
                    break
                except (OSError, DataError) as e:
                    errors.append(f"{url}: {e}")
                    tmp.unlink(missing_ok=True)
                    (folder / spec.name).unlink(missing_ok=True)
            else:
                raise DataError(
                    f"{folder / spec.name}: could not be downloaded ({'; '.join(errors)}); "
                    "copy the original file into that folder by hand"
                )
    return folder


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Verify (and optionally download) the MNIST files.")
    parser.add_argument("--data-dir", default=None, help=f"folder of IDX files (default ${DATA_DIR_ENV} or data/mnist)")
    parser.add_argument("--download", action="store_true", help="fetch missing files from the public mirrors")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.download:
            download(args.data_dir)
        for split in FILES:
            s = load_split(split, args.data_dir)
            print(f"{split}: {len(s.labels)} images OK ({', '.join(s.md5)})")
    except DataError as e:
        print(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
