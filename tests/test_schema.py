"""Schema fuzzing: schemathesis generates requests from the service's own /openapi.json, sends them
to a real server and checks every answer: no 5xx; status codes, content types, headers and bodies
as documented; schema-violating requests rejected.

One check is left out: `positive_data_acceptance`, which expects every schema-valid request to be
accepted. A valid image with no ink is schema-valid and is rightly answered 422 `no_ink`; OpenAPI
cannot say "an image with a digit on it".
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import start, stop

pytestmark = pytest.mark.slow

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def test_openapi_conformance() -> None:
    server = start({})
    try:
        proc = subprocess.run(
            [str(SCHEMATHESIS), "run", f"http://127.0.0.1:{server.port}/openapi.json",
             "--checks", "all", "--exclude-checks", "positive_data_acceptance",
             "--max-examples", "100", "--seed", "1", "--no-color"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        stop(server)
    summary = proc.stdout[proc.stdout.find("SUMMARY") :]
    print(summary)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "Tested: 18" in summary  # 9 of ours (POST /feedback and GET /feedback/status too), 9 of the protocol
    assert " passed" in summary
    assert "failed" not in summary.split("Test cases:")[1]
