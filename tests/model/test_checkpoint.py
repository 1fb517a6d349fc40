import os
import pickle
import threading
import time
from pathlib import Path

import pytest
import torch

from model import checkpoint
from model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, sha256_of, sidecar
from model.network import Net, NetConfig


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, Net]:
    torch.manual_seed(0)
    net = Net(NetConfig())
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, net, {"metrics": {"test_accuracy": 0.5, "temperature": 1.5}, "train_config": {"epochs": 0}})
    return path, net


def rewrite_sidecar(path: Path) -> None:
    sidecar(path).write_text(f"{sha256_of(path)}  {path.name}\n")


def test_round_trip(saved: tuple[Path, Net]) -> None:
    path, net = saved
    loaded = load_checkpoint(path)
    x = torch.randn(3, 1, 28, 28)
    with torch.inference_mode():
        assert torch.equal(loaded.net(x), net.eval()(x))
    assert loaded.sha256 == sha256_of(path) == sidecar(path).read_text().split()[0]
    assert loaded.version == loaded.sha256[:12]
    assert loaded.temperature == 1.5
    assert loaded.meta["metrics"]["test_accuracy"] == 0.5
    assert loaded.meta["config"] == NetConfig().to_dict()
    assert not loaded.net.training


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nope\.pt: checkpoint file not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_missing_sidecar(saved: tuple[Path, Net]) -> None:
    path, _ = saved
    sidecar(path).unlink()
    with pytest.raises(CheckpointError, match=r"no SHA-256 file beside it \(tiny\.pt\.sha256\)"):
        load_checkpoint(path)


def test_corrupt_byte_fails_the_hash(saved: tuple[Path, Net]) -> None:
    path, _ = saved
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"SHA-256 is [0-9a-f]{12}\.\.\., the recorded value is .*tampered"):
        load_checkpoint(path)


def test_truncated_file_fails_the_hash(saved: tuple[Path, Net]) -> None:
    path, _ = saved
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated, swapped or tampered"):
        load_checkpoint(path)


def test_truncated_file_with_matching_hash_is_unreadable(saved: tuple[Path, Net]) -> None:
    path, _ = saved
    path.write_bytes(path.read_bytes()[:1000])
    rewrite_sidecar(path)
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_checkpoint(path)


def test_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "foreign.pt"
    path.write_bytes(b"GIF89a not a checkpoint at all" * 10)
    rewrite_sidecar(path)
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_checkpoint(path)


def test_plain_state_dict_is_not_ours(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    torch.save(Net().state_dict(), path)
    rewrite_sidecar(path)
    with pytest.raises(CheckpointError, match="not a digit-classifier checkpoint"):
        load_checkpoint(path)


class Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this would run at load time",))


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "state_dict": {}, "config": {}, "preprocess": {}, "metrics": Payload()}, path)
    rewrite_sidecar(path)
    with pytest.raises(CheckpointError, match="refused by weights-only loading"):
        load_checkpoint(path)


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_whole_model_pickle_is_refused(tmp_path: Path, how: str) -> None:
    path = tmp_path / "model.pt"
    if how == "torch.save":
        torch.save(Net(), path)
    else:
        with open(path, "wb") as f:
            pickle.dump(Net(), f)
    rewrite_sidecar(path)
    with pytest.raises(CheckpointError, match="refused by weights-only loading"):
        load_checkpoint(path)


def test_other_preprocessing_is_refused(saved: tuple[Path, Net], tmp_path: Path) -> None:
    path, _ = saved
    ckpt = torch.load(path, weights_only=True)
    ckpt["preprocess"]["mean"] = 0.5
    torch.save(ckpt, path)
    rewrite_sidecar(path)
    with pytest.raises(CheckpointError, match="trained with preprocessing"):
        load_checkpoint(path)


def test_weights_that_do_not_fit_the_config(saved: tuple[Path, Net]) -> None:
    path, _ = saved
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"]["fc_size"] = 64
    torch.save(ckpt, path)
    rewrite_sidecar(path)
    with pytest.raises(CheckpointError, match="weights do not fit the recorded network config"):
        load_checkpoint(path)


def test_swapped_checkpoint_fails_the_hash(saved: tuple[Path, Net], tmp_path: Path) -> None:
    path, _ = saved
    other = tmp_path / "other.pt"
    torch.manual_seed(1)
    save_checkpoint(other, Net(NetConfig()), {"metrics": {}})
    path.write_bytes(other.read_bytes())  # a valid checkpoint, but not the one recorded beside it
    with pytest.raises(CheckpointError, match="truncated, swapped or tampered"):
        load_checkpoint(path)


def test_a_file_swapped_by_rename_is_loaded_whole_under_its_own_hash(tmp_path: Path) -> None:
    """A deploy tool replacing the file (and its sidecar) by rename, again and again, while it is
    loaded: every load that succeeds holds the weights of the file whose hash it reports."""
    weights = {}
    for seed in (1, 2):
        torch.manual_seed(seed)
        digest = save_checkpoint(tmp_path / f"{seed}.pt", Net(NetConfig(fc_size=8)), {"metrics": {}})
        weights[digest] = torch.load(tmp_path / f"{seed}.pt", weights_only=True)["state_dict"]["fc2.bias"]
    target = tmp_path / "live.pt"
    for suffix in ("", ".sha256"):
        os.link(tmp_path / f"1.pt{suffix}", tmp_path / f"live.pt{suffix}")
    stop = threading.Event()

    def swap() -> None:
        k = 0
        while not stop.is_set():
            k = 3 - k if k else 2
            for suffix in ("", ".sha256"):
                os.link(tmp_path / f"{k}.pt{suffix}", tmp_path / f"next{suffix}")
                os.replace(tmp_path / f"next{suffix}", tmp_path / f"live.pt{suffix}")

    swapper = threading.Thread(target=swap)
    swapper.start()
    loaded = refused = 0
    deadline = time.monotonic() + 2.0
    try:
        while time.monotonic() < deadline:
            try:
                model = load_checkpoint(target)
            except CheckpointError:  # the sidecar of one file, the other file: refused, never mixed
                refused += 1
                continue
            loaded += 1
            assert torch.equal(model.net.state_dict()["fc2.bias"], weights[model.sha256])
    finally:
        stop.set()
        swapper.join()
    assert loaded > 20


def test_a_fifo_is_refused_without_blocking(tmp_path: Path, saved: tuple[Path, Net]) -> None:
    path, _ = saved
    fifo = tmp_path / "fifo.pt"
    os.mkfifo(fifo)
    sidecar(fifo).write_text(sidecar(path).read_text())
    with pytest.raises(CheckpointError, match=r"fifo\.pt: not a regular file"):
        load_checkpoint(fifo)
    sidecar(fifo).unlink()
    with pytest.raises(CheckpointError, match=r"no SHA-256 file beside it"):  # the sidecar is looked for first
        load_checkpoint(fifo)


def test_the_sidecar_is_checked_before_the_file_is_read(
    saved: tuple[Path, Net], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = saved
    sidecar(path).write_text("not a hash\n")
    read: list[Path] = []
    original = checkpoint.read_regular_file

    def recording(p: Path, limit: int) -> bytes:
        read.append(p)
        return original(p, limit)

    monkeypatch.setattr(checkpoint, "read_regular_file", recording)
    with pytest.raises(CheckpointError, match=r"not a SHA-256 line"):
        load_checkpoint(path)
    assert read == [sidecar(path)]
