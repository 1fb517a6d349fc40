"""What a newcomer meets first: /docs and /redoc with no CDN, the icon, the start line, and a
`make serve` that installs only what serving needs."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.helpers import ROOT, start, stop


@pytest.mark.parametrize(("path", "asset"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")])
def test_api_docs_load_only_this_service(client: TestClient, path: str, asset: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", r.text), "a script, style or icon from another host"
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "https:" not in csp
    src = re.search(rf"""["'](/[^"']*{re.escape(asset)})["']""", r.text)
    assert src is not None, f"{path} does not load {asset}"
    js = client.get(src.group(1))
    assert js.status_code == 200
    assert len(js.content) > 100_000  # the real bundle, not a stub
    assert "javascript" in js.headers["content-type"]


def test_swagger_ui_inline_script_is_allowed_by_its_hash(client: TestClient) -> None:
    import base64
    import hashlib

    r = client.get("/docs")
    scripts = re.findall(r"<script>(.*?)</script>", r.text, re.DOTALL)
    assert scripts
    for s in scripts:
        digest = base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in r.headers["content-security-policy"]


def test_favicon(client: TestClient) -> None:
    r = client.get("/favicon.ico")
    assert r.status_code == 200
    assert r.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert 'rel="icon" href="/favicon.ico"' in client.get("/").text


@pytest.mark.slow
def test_the_server_says_where_it_listens(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    s = start({"DIGITS_WORKERS": "1"}, log=log)
    try:
        deadline = time.monotonic() + 10
        while "serving on" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        lines = [line for line in log.read_text().splitlines() if line.startswith("serving on")]
        assert lines == [f"serving on http://127.0.0.1:{s.port} with 1 worker: the page at /, the API at /docs"]
    finally:
        stop(s)


def test_make_serve_installs_the_service_without_the_extras(tmp_path: Path) -> None:
    """`make -n` prints what `make serve` would run in a fresh virtual environment."""
    venv = tmp_path / "venv"
    out = subprocess.run(
        ["make", "-n", "serve", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    installs = [line for line in out.splitlines() if "pip install" in line]
    assert any(line.rstrip().endswith("-e .") for line in installs), installs
    assert not any("[" in line for line in installs), f"extras installed to serve: {installs}"
