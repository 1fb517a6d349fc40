"""Checkpoints: state_dict + config + preprocessing constants, weights-only, with a SHA-256 sidecar."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from model.contract import PREPROCESS_CONSTANTS
from model.gate import Gate, gate_from_payload, gate_payload
from model.network import Net, NetConfig, count_parameters
from model.refusal import GATE_SCORE, Refusal, RefusalDataError

FORMAT_VERSION = 1
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "mnist_cnn.pt"
REQUIRED_KEYS = ("format_version", "state_dict", "config", "preprocess", "metrics")
#: The largest file read as a checkpoint (the tutorial network's is under 1 MB), and as its sidecar.
MAX_CHECKPOINT_BYTES = 256 * 1024 * 1024
MAX_SIDECAR_BYTES = 4096


class CheckpointError(Exception):
    """The checkpoint is missing, corrupt, tampered with or not one of ours; says which."""


@dataclass
class LoadedModel:
    net: Net
    path: Path
    sha256: str
    meta: dict[str, Any] = field(default_factory=dict)  # everything but the weights
    refusal: Refusal | None = None  # how it refuses what is not a digit; None: it does not (model.refusal)
    gate: Gate | None = None  # the digit gate whose probability is the refusal score (model.gate), if any

    @property
    def version(self) -> str:
        return self.sha256[:12]

    @property
    def temperature(self) -> float:
        return float(self.meta.get("metrics", {}).get("temperature", 1.0))

    @property
    def parameters(self) -> int:
        return count_parameters(self.net)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(read_regular_file(path, MAX_CHECKPOINT_BYTES)).hexdigest()


def read_regular_file(path: Path, limit: int) -> bytes:
    """A regular file's bytes, through one open file: a file replaced by rename meanwhile is read
    whole, old or new, never half of each. Opened without blocking and checked before a byte is read:
    a FIFO, a device or a folder is a CheckpointError, as is a file over `limit` bytes. OSError
    (FileNotFoundError among them) when it cannot be opened."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CheckpointError(f"{path}: not a regular file")
        if info.st_size > limit:
            raise CheckpointError(f"{path}: {info.st_size} bytes, over the {limit}-byte limit")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise CheckpointError(f"{path}: over the {limit}-byte limit")
    return data


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def save_checkpoint(path: Path, net: Net, meta: dict[str, Any], gate: Gate | None = None) -> str:
    """Write the checkpoint (with the digit gate, if any) and `<path>.sha256` (sha256sum format);
    return the hash."""
    payload = {
        "format_version": FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
        "config": net.config.to_dict(),
        "preprocess": dict(PREPROCESS_CONSTANTS),
        **meta,
    }
    if gate is not None:
        payload["gate"] = gate_payload(gate)
    payload.setdefault("metrics", {})
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(payload, buf)
    path.write_bytes(buf.getvalue())
    digest = hashlib.sha256(buf.getvalue()).hexdigest()
    sidecar(path).write_text(f"{digest}  {path.name}\n")
    return digest


def _expected_sha256(path: Path) -> str:
    side = sidecar(path)
    try:
        text = read_regular_file(side, MAX_SIDECAR_BYTES).decode("ascii", "replace").split()
    except FileNotFoundError:
        raise CheckpointError(
            f"{path}: no SHA-256 file beside it ({side.name}); refusing an unverified checkpoint"
        ) from None
    if not text or len(text[0]) != 64:
        raise CheckpointError(f"{side}: not a SHA-256 line ('<64 hex digits>  {path.name}')")
    return text[0].lower()


def read_checkpoint(path: str | Path, *, verify: bool = True) -> tuple[bytes, str]:
    """A checkpoint file's bytes and their SHA-256, checked against its sidecar: the sidecar is
    read first (a missing or malformed one is found before the checkpoint is read), then the file,
    once; the bytes hashed are the bytes `checkpoint_from_bytes` loads. CheckpointError for a
    missing, mismatched or odd file (not a regular file, too large); OSError if it cannot be read."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint file not found")
    expected = _expected_sha256(path) if verify else None
    try:
        data = read_regular_file(path, MAX_CHECKPOINT_BYTES)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint file not found") from None
    digest = hashlib.sha256(data).hexdigest()
    if expected is not None and digest != expected:
        raise CheckpointError(
            f"{path}: SHA-256 is {digest[:12]}..., the recorded value is {expected[:12]}... "
            "(file truncated, swapped or tampered with)"
        )
    return data, digest


def load_checkpoint(path: str | Path, *, verify: bool = True) -> LoadedModel:
    """Verify the hash, load weights-only, rebuild `Net(NetConfig(**config))` and check the rest."""
    return checkpoint_from_bytes(Path(path), *read_checkpoint(path, verify=verify))


def checkpoint_from_bytes(path: Path, data: bytes, digest: str) -> LoadedModel:
    """The model in `data`, the bytes `read_checkpoint(path)` read and hashed as `digest`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about legacy formats before refusing them
            ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused by weights-only loading (it holds Python objects or code, not just tensors)"
        ) from e
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({e.__class__.__name__})") from e
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS):
        raise CheckpointError(f"{path}: not a digit-classifier checkpoint (expected keys {', '.join(REQUIRED_KEYS)})")
    if ckpt["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {ckpt['format_version']}, this code reads {FORMAT_VERSION}")
    if ckpt["preprocess"] != PREPROCESS_CONSTANTS:
        raise CheckpointError(
            f"{path}: trained with preprocessing {ckpt['preprocess']}, this code uses {PREPROCESS_CONSTANTS}"
        )
    try:
        net = Net(NetConfig(**ckpt["config"]))
        net.load_state_dict(ckpt["state_dict"])
    except (TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: weights do not fit the recorded network config ({e})") from e
    net.eval()
    meta = {k: v for k, v in ckpt.items() if k not in ("state_dict", "gate")}
    try:
        refusal = Refusal.from_meta(meta)
        gate = gate_from_payload(ckpt["gate"]) if "gate" in ckpt else None
    except (RefusalDataError, ValueError) as e:
        raise CheckpointError(f"{path}: {e}") from None
    if (refusal is not None and refusal.score == GATE_SCORE) != (gate is not None):
        raise CheckpointError(f"{path}: a digit gate needs refusal data scored {GATE_SCORE!r}, and such data a gate")
    return LoadedModel(net=net, path=path, sha256=digest, meta=meta, refusal=refusal, gate=gate)
