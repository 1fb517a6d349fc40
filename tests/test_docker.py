"""The container, end to end: `docker compose up -d --build --wait`, predictions, readiness, a
non-root user, the train profile writing a checkpoint the API then serves, `docker compose down`.

Needs a Docker engine with compose (on the project's CI machines: `make docker-local`) and
`make docker-prep`; run with `make docker-test` or `pytest -m docker`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, free_port, multipart, post

pytestmark = pytest.mark.docker
PROJECT = "digits-e2e"


def compose(*args: str, env: dict[str, str] | None = None, timeout: int = 600) -> str:
    proc = subprocess.run(
        ["docker", "compose", "-p", PROJECT, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"docker compose {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def get(url: str) -> tuple[int, dict[str, object]]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, json.loads(r.read())


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    port = free_port()
    env = {"PORT": str(port)}
    try:
        compose("up", "-d", "--build", "--wait", env=env)
        yield port
    finally:
        compose("down", "-v", "--remove-orphans", env=env, timeout=120)


def test_container_serves_predictions(port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    assert get(base + "/health/ready")[0] == 200
    body, ctype = multipart([("file", "digit.png", (ROOT / "examples/digit.png").read_bytes())])
    status, answer = post(base + "/predict", body, ctype)
    assert (status, answer["digit"]) == (200, 7)
    status, answer = post(base + "/predict", (ROOT / "examples/photo.jpg").read_bytes(), "image/jpeg")
    assert (status, answer["digit"]) == (200, 2)
    status, answer = post(base + "/predict", b"not an image", "image/png")
    assert status == 400


def test_container_keeps_feedback_in_its_volume_across_a_restart(port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    body, ctype = multipart([("file", "digit.png", (ROOT / "examples/digit.png").read_bytes()), ("label", None, b"1")])
    status, answer = post(base + "/feedback", body, ctype)
    assert (status, answer["predicted"], answer["right"]) == (201, "7", False)
    compose("restart", "api")
    compose("up", "-d", "--wait", "api", env={"PORT": str(port)})
    out = compose("exec", "-T", "api", "python", "-m", "app.feedback", "export", "/tmp/export")  # DIGITS_FEEDBACK_DB
    assert out.startswith("wrote 1 records")
    assert compose("exec", "-T", "api", "ls", "/tmp/export").split() == ["1_feedback_0000001.png", "manifest.jsonl"]


def test_container_is_hardened(port: int) -> None:
    assert compose("exec", "-T", "api", "id", "-u").strip() == "10001"
    cid = compose("ps", "-q", "api").strip()
    inspect = json.loads(subprocess.run(["docker", "inspect", cid], capture_output=True, text=True, check=True).stdout)
    host = inspect[0]["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host["PortBindings"]["8000/tcp"][0]["HostIp"] == "127.0.0.1"
    assert inspect[0]["State"]["Health"]["Status"] == "healthy"


def test_image_holds_nothing_but_the_service(port: int) -> None:
    assert compose("exec", "-T", "api", "ls", "-A", "/srv").split() == ["app", "model"]
    env = compose("exec", "-T", "api", "env")
    secrets = [
        line for line in env.splitlines() if any(k in line.upper() for k in ("SECRET", "TOKEN", "PASSWORD", "KEY="))
    ]
    assert [line for line in secrets if not line.endswith("=")] == []  # compose passes DIGITS_ADMIN_TOKEN, empty
    assert compose("exec", "-T", "api", "sh", "-c", "touch /srv/x 2>&1 || echo read-only").strip().endswith("read-only")


def train_in_container(port: int, output: str) -> dict[str, str]:
    """`model.train --dry-run` in the train profile, into the `checkpoints` volume; the env it used."""
    mnist = Path(os.environ.get("MNIST_DATA_DIR", ROOT.parent / "shared" / "mnist"))
    if not (mnist / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"no MNIST training files in {mnist} (set MNIST_DATA_DIR)")
    env = {"PORT": str(port), "MNIST_DIR": str(mnist.resolve())}
    train = ["python", "-m", "model.train", "--dry-run", "--data-dir", "/data", "--output", output]
    compose("--profile", "train", "run", "--rm", "train", *train, env=env)
    return env


def test_train_profile_writes_a_checkpoint_the_api_serves(port: int) -> None:
    env = train_in_container(port, "/checkpoints/mnist_cnn.pt")
    env["DIGITS_CHECKPOINT"] = "/checkpoints/mnist_cnn.pt"
    compose("up", "-d", "--wait", "api", env=env)
    status, info = get(f"http://127.0.0.1:{port}/model")
    assert status == 200
    shipped = (ROOT / "model/weights/mnist_cnn.pt.sha256").read_text().split()[0]
    assert info["checkpoint"]["file"] == "mnist_cnn.pt"  # type: ignore[index]  # the name only, not the folder
    assert info["checkpoint"]["sha256"] != shipped  # type: ignore[index]  # the one just trained
    assert info["train_config"]["limit"] == 512  # type: ignore[index]
    compose("up", "-d", "--wait", "api", env={"PORT": str(port)})  # back to the shipped checkpoint


def versions_soon(base: str, wanted: str) -> set[str]:
    """The versions answering on 16 new connections (both workers, but for a chance of 2 in 2**16),
    once they are all `wanted` or after 10 s: the other worker follows the one that answered."""
    for _ in range(100):
        seen = {str(get(base + "/health/ready")[1]["model_version"]) for _ in range(16)}
        if seen == {wanted}:
            break
        time.sleep(0.1)
    return seen


def test_reload_in_the_container_without_a_restart(port: int) -> None:
    """The checkpoints volume is DIGITS_CHECKPOINT_DIR in Compose: a checkpoint trained into it is
    loaded by POST /admin/reload, and SIGHUP (docker compose kill) goes back to DIGITS_CHECKPOINT."""
    token = "container-reload-token-0123"
    env = train_in_container(port, "/checkpoints/v2.pt")
    compose("up", "-d", "--wait", "api", env={**env, "DIGITS_ADMIN_TOKEN": token})
    base = f"http://127.0.0.1:{port}"
    shipped = str(get(base + "/health/ready")[1]["model_version"])
    started = compose("ps", "-q", "api").strip()
    req = urllib.request.Request(
        base + "/admin/reload",
        data=json.dumps({"checkpoint": "v2.pt"}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        answer = json.loads(r.read())
    assert answer["previous_version"] == shipped
    assert answer["scope"] == "all workers"
    assert answer["model_version"] != shipped
    new = str(answer["model_version"])
    assert versions_soon(base, new) == {new}  # in both workers
    compose("kill", "-s", "SIGHUP", "api")
    assert versions_soon(base, shipped) == {shipped}
    assert compose("ps", "-q", "api").strip() == started  # the same container: no restart
    compose("up", "-d", "--wait", "api", env={"PORT": str(port)})  # without the token again
