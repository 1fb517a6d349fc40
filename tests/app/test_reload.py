"""Hot reload (app/reload.py, Engine.reload, POST /admin/reload, SIGHUP): a new checkpoint loaded,
verified and swapped in while the old one answers; a bad one refused with the old one still serving."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings, SettingsError, load_settings
from model.checkpoint import load_checkpoint, save_checkpoint, sha256_of
from model.contract import to_tensor
from model.data import MnistSplit
from model.network import Net
from tests.conftest import TINY
from tests.helpers import Server, start

TOKEN = "s3cret-token-for-tests-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def trained_tiny(tmp_path_factory: pytest.TempPathFactory, mnist_test: MnistSplit) -> Path:
    """A second real checkpoint: the tiny network trained for 60 steps on 512 MNIST test images."""
    torch.manual_seed(1)
    net = Net(TINY)
    images = to_tensor(mnist_test.images[:512].numpy().astype("float32") / 255)
    labels = mnist_test.labels[:512]
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(images), labels).backward()
        opt.step()
    net.eval()
    path = tmp_path_factory.mktemp("trained") / "trained.pt"
    save_checkpoint(path, net, {"metrics": {"test_accuracy": 0.5}, "train_config": {"steps": 60}})
    return path


@pytest.fixture
def folder(tmp_path: Path, tiny_checkpoint: Path, trained_tiny: Path) -> Path:
    """A checkpoints folder holding both, as an operator mounts one."""
    for source, name in ((tiny_checkpoint, "a.pt"), (trained_tiny, "b.pt")):
        shutil.copy(source, tmp_path / name)
        shutil.copy(source.with_name(source.name + ".sha256"), tmp_path / f"{name}.sha256")
        (tmp_path / f"{name}.sha256").write_text((tmp_path / f"{name}.sha256").read_text().replace(source.name, name))
    return tmp_path


def copy(folder: Path, source: str, target: str) -> None:
    shutil.copy(folder / source, folder / target)
    shutil.copy(folder / f"{source}.sha256", folder / f"{target}.sha256")


def version_of(path: Path) -> str:
    return load_checkpoint(path).version


@pytest.fixture
def admin(folder: Path) -> Iterator[TestClient]:
    settings = Settings(checkpoint=folder / "a.pt", admin_token=TOKEN, torch_threads=1)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def test_reload_swaps_the_model_everywhere_it_is_shown(
    admin: TestClient, folder: Path, mnist_png: tuple[bytes, int]
) -> None:
    a, b = version_of(folder / "a.pt"), version_of(folder / "b.pt")
    png = mnist_png[0]
    before = admin.post("/predict", content=png, headers={"content-type": "image/png"}).json()
    assert before["model_version"] == a
    r = admin.post("/admin/reload", json={"checkpoint": "b.pt"}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json() == {"model_version": b, "previous_version": a, "changed": True,
                        "checkpoint": str((folder / "b.pt").resolve()), "scope": "this worker"}  # fmt: skip
    after = admin.post("/predict", content=png, headers={"content-type": "image/png"}).json()
    assert after["model_version"] == b
    assert after["probabilities"] != before["probabilities"]  # another network answered
    routed = admin.post("/predict", files={"file": ("d.png", png, "image/png")}).json()
    assert routed["model_version"] == b
    assert routed["probabilities"] == after["probabilities"]
    batch = admin.post("/predict/batch", files=[("files", ("d.png", png, "image/png"))]).json()
    assert batch["model_version"] == b
    assert batch["results"][0]["prediction"]["model_version"] == b
    assert admin.get("/health/ready").json()["model_version"] == b
    assert admin.get("/model").json()["checkpoint"]["version"] == b
    metrics = admin.get("/metrics").text
    assert f'digits_model_info{{version="{b}"}} 1.0' in metrics
    assert f'digits_model_info{{version="{a}"}} 0.0' in metrics
    assert 'digits_model_reloads_total{outcome="loaded"} 1.0' in metrics
    # the same file again swaps nothing
    again = admin.post("/admin/reload", json={"checkpoint": "b.pt"}, headers=AUTH).json()
    assert again["changed"] is False
    assert again["model_version"] == b
    # no body: DIGITS_CHECKPOINT, as SIGHUP
    back = admin.post("/admin/reload", headers=AUTH).json()
    assert back["model_version"] == a
    assert back["changed"] is True


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: p.write_bytes(p.read_bytes()[:-20]),  # truncated
        lambda p: p.write_bytes(p.read_bytes()[:-1] + bytes([p.read_bytes()[-1] ^ 1])),  # a byte flipped
        lambda p: p.with_name(p.name + ".sha256").unlink(),  # no recorded hash
        lambda p: p.unlink(),  # gone
    ],
    ids=["truncated", "flipped", "no-sha256", "missing"],
)
def test_a_bad_checkpoint_is_refused_and_the_old_one_keeps_answering(
    admin: TestClient, folder: Path, mnist_png: tuple[bytes, int], tamper: Callable[[Path], object]
) -> None:
    a = version_of(folder / "a.pt")
    tamper(folder / "b.pt")
    r = admin.post("/admin/reload", json={"checkpoint": "b.pt"}, headers=AUTH)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "bad_checkpoint"
    assert "b.pt" in error["message"]
    answer = admin.post("/predict", content=mnist_png[0], headers={"content-type": "image/png"})
    assert answer.status_code == 200
    assert answer.json()["model_version"] == a
    assert admin.get("/health/ready").json()["model_version"] == a
    assert 'digits_model_reloads_total{outcome="failed"} 1.0' in admin.get("/metrics").text


def test_a_checkpoint_with_other_preprocessing_is_refused(
    admin: TestClient, folder: Path, tiny_checkpoint: Path
) -> None:
    ckpt = torch.load(tiny_checkpoint, weights_only=True)
    net = Net(TINY)
    net.load_state_dict(ckpt["state_dict"])
    save_checkpoint(folder / "other.pt", net, {"metrics": {}})
    raw = torch.load(folder / "other.pt", weights_only=True)
    raw["preprocess"] = {**raw["preprocess"], "mean": 0.5}
    torch.save(raw, folder / "other.pt")
    (folder / "other.pt.sha256").write_text(f"{sha256_of(folder / 'other.pt')}  other.pt\n")
    r = admin.post("/admin/reload", json={"checkpoint": "other.pt"}, headers=AUTH)
    assert r.status_code == 422
    assert "preprocessing" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Bearer wrong-token-of-good-length"}, 401, "unauthorized"),
        ({"Authorization": f"Basic {TOKEN}"}, 401, "unauthorized"),
        ({"Authorization": f"Bearer {TOKEN}x"}, 401, "unauthorized"),
        ({"Authorization": f"Bearer {TOKEN[:-1]}"}, 401, "unauthorized"),
    ],
)
def test_the_token_is_required_and_checked(
    admin: TestClient, folder: Path, headers: dict[str, str], status: int, code: str
) -> None:
    a = version_of(folder / "a.pt")
    r = admin.post("/admin/reload", json={"checkpoint": "b.pt"}, headers=headers)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code)
    assert r.headers["www-authenticate"] == "Bearer"
    assert admin.get("/health/ready").json()["model_version"] == a  # nothing loaded


def test_the_endpoint_is_documented_when_on(admin: TestClient) -> None:
    reload = admin.get("/openapi.json").json()["paths"]["/admin/reload"]["post"]
    assert set(reload["responses"]) == {"200", "401", "403", "404", "422"}
    assert reload["security"] == [{"HTTPBearer": []}]


def test_the_endpoint_is_off_without_a_token(client: TestClient) -> None:
    assert "/admin/reload" not in client.get("/openapi.json").json()["paths"]
    r = client.post("/admin/reload", headers=AUTH)
    assert r.status_code == 404
    assert "DIGITS_ADMIN_TOKEN" in r.json()["error"]["message"]


@pytest.mark.parametrize("given", ["../outside.pt", "/etc/passwd", "sub/../../outside.pt", "link.pt", "."])
def test_paths_outside_the_folder_are_refused(admin: TestClient, folder: Path, given: str) -> None:
    outside = folder.parent / "outside.pt"
    copy(folder, "b.pt", "../outside.pt")
    (folder / "link.pt").symlink_to(outside)
    r = admin.post("/admin/reload", json={"checkpoint": given}, headers=AUTH)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "path_not_allowed")


@pytest.mark.parametrize("body", [b"xx", b'{"checkpoint": 5}', b"[]", b"x" * 5000, b'{"checkpoint": "a\\u0000.pt"}'])
def test_a_malformed_request_is_422(admin: TestClient, body: bytes) -> None:
    r = admin.post("/admin/reload", content=body, headers={**AUTH, "content-type": "application/json"})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_request")


def test_a_path_with_a_nul_byte_says_so(admin: TestClient) -> None:
    r = admin.post("/admin/reload", json={"checkpoint": "a.pt\x00.sha256"}, headers=AUTH)
    assert r.status_code == 422
    assert r.json()["error"]["message"] == "Value error, checkpoint: a path cannot hold a NUL byte"


def test_the_token_is_never_logged(
    folder: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(checkpoint=folder / "a.pt", admin_token=TOKEN, torch_threads=1)
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings.model_dump())
    with caplog.at_level(logging.DEBUG), TestClient(create_app(settings), raise_server_exceptions=False) as c:
        c.post("/admin/reload", json={"checkpoint": "b.pt"}, headers=AUTH)
        c.post("/admin/reload", json={"checkpoint": "b.pt"}, headers={"Authorization": f"Bearer {TOKEN}-wrong"})
    assert caplog.records
    assert not any(TOKEN in r.getMessage() or TOKEN in str(r.__dict__) for r in caplog.records)
    monkeypatch.setenv("DIGITS_ADMIN_TOKEN", "short")
    with pytest.raises(SettingsError, match=r"DIGITS_ADMIN_TOKEN=\(hidden\): .*16 characters") as e:
        load_settings()
    assert "short" not in str(e.value)


# --- the real server: SIGHUP and the admin endpoint reach every worker ---------------------------


def versions_seen(server: Server, connections: int = 24) -> set[str]:
    """The model versions answering on `connections` new connections (the kernel hashes each to a
    worker: with two workers all 24 land on one with probability 2 / 2**24)."""
    return {json.loads(server.request("GET", "/health/ready")[2])["model_version"] for _ in range(connections)}


def worker_versions(server: Server) -> dict[str, str]:
    """pid -> the version each worker says it serves (digits_model_info ... 1.0)."""
    found = {}
    for line in server.request("GET", "/metrics")[2].decode().splitlines():
        if line.startswith("digits_model_info{") and line.endswith(" 1.0"):
            labels = dict(kv.split("=") for kv in line[line.index("{") + 1 : line.index("}")].split(","))
            found[labels["pid"].strip('"')] = labels["version"].strip('"')
    return found


def wait_for(check: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:  # a connection to a worker just killed is reset
            pass
        time.sleep(0.2)
    raise AssertionError("not reached in time")


@pytest.mark.slow
def test_sighup_and_admin_reload_reach_every_worker(folder: Path, mnist_png: tuple[bytes, int]) -> None:
    a, b = version_of(folder / "a.pt"), version_of(folder / "b.pt")
    copy(folder, "a.pt", "serving.pt")
    env = {"DIGITS_WORKERS": "2", "DIGITS_CHECKPOINT": str(folder / "serving.pt"), "DIGITS_ADMIN_TOKEN": TOKEN}
    server = start(env)
    try:
        wait_for(lambda: len(worker_versions(server)) == 2)
        assert set(worker_versions(server).values()) == {a}
        assert versions_seen(server) == {a}
        # SIGHUP: whatever is at DIGITS_CHECKPOINT now, in every worker
        copy(folder, "b.pt", "serving.pt")
        os.kill(server.proc.pid, signal.SIGHUP)
        wait_for(lambda: set(worker_versions(server).values()) == {b})
        assert versions_seen(server) == {b}
        # the admin endpoint: a file of the folder, in every worker, and in a worker started later
        status, _, body = server.request(
            "POST", "/admin/reload", json.dumps({"checkpoint": "a.pt"}).encode(), "application/json", AUTH
        )
        assert status == 200
        assert json.loads(body)["scope"] == "all workers"
        wait_for(lambda: set(worker_versions(server).values()) == {a})
        pids = list(worker_versions(server))
        os.kill(int(pids[0]), signal.SIGKILL)  # the supervisor starts another: with the chosen file
        wait_for(lambda: len(worker_versions(server)) == 2 and pids[0] not in worker_versions(server))
        assert set(worker_versions(server).values()) == {a}
        assert versions_seen(server) == {a}
        # a tampered file at DIGITS_CHECKPOINT: every worker refuses it and keeps answering
        (folder / "serving.pt").write_bytes((folder / "serving.pt").read_bytes()[:-5])
        os.kill(server.proc.pid, signal.SIGHUP)
        wait_for(lambda: b'digits_model_reloads_total{outcome="failed"} 2.0' in server.request("GET", "/metrics")[2])
        assert versions_seen(server) == {a}
        status, _, body = server.request("POST", "/predict", mnist_png[0], "image/png")
        assert status == 200
        assert json.loads(body)["model_version"] == a
    finally:
        server.proc.terminate()
        server.proc.wait(timeout=30)


@pytest.mark.slow
def test_sighup_reloads_a_single_worker(folder: Path) -> None:
    a, b = version_of(folder / "a.pt"), version_of(folder / "b.pt")
    copy(folder, "a.pt", "serving.pt")
    server = start({"DIGITS_CHECKPOINT": str(folder / "serving.pt")})
    try:
        assert versions_seen(server, 2) == {a}
        copy(folder, "b.pt", "serving.pt")
        os.kill(server.proc.pid, signal.SIGHUP)
        wait_for(lambda: versions_seen(server, 1) == {b})
        assert server.proc.poll() is None
    finally:
        server.proc.terminate()
        server.proc.wait(timeout=30)


def test_a_fifo_named_in_a_reload_is_refused_at_once(admin: TestClient, folder: Path) -> None:
    """Opening a FIFO for reading waits for a writer: it is never opened. (Should it be, a writer
    comes after 5 s, so that this test fails rather than hangs.)"""
    os.mkfifo(folder / "fifo.pt")
    shutil.copy(folder / "b.pt.sha256", folder / "fifo.pt.sha256")
    wrote = threading.Event()

    def writer() -> None:
        wrote.set()
        os.close(os.open(folder / "fifo.pt", os.O_WRONLY | os.O_NONBLOCK))

    opened = threading.Timer(5.0, writer)
    opened.start()
    try:
        r = admin.post("/admin/reload", json={"checkpoint": "fifo.pt"}, headers=AUTH)
    finally:
        opened.cancel()
    assert not wrote.is_set()  # answered without waiting for a writer
    assert r.status_code == 422
    assert r.json()["error"]["message"] == f"{folder / 'fifo.pt'}: not a regular file"
