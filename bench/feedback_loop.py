"""The feedback loop end to end, through the service's own endpoints: digits of a style the shipped
checkpoint misreads (seven-segment displays, `model.synth.segments`) read at /predict and corrected
at POST /feedback, exported (`python -m app.feedback export`), fine-tuned on (`python -m model.train
--finetune ... --extra-images ...`), loaded by POST /admin/reload, and a held-out set of the style
(another seed) read at /predict before and after:

    python bench/feedback_loop.py --data-dir ../shared/mnist [--corrections 300] [--held-out 500]

It starts `python -m app` (2 workers, SQLite in a temporary folder, an admin token, a copy of the
shipped checkpoint in a checkpoint folder of its own) and stops it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness import free_port, multipart, wait_ready

from model.checkpoint import DEFAULT_CHECKPOINT, sidecar
from model.synth import segments

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "feedback-loop-admin-token"


def call(port: int, method: str, path: str, body: bytes = b"", content_type: str = "",
         token: bool = False) -> tuple[int, dict[str, str], Any]:  # fmt: skip
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"content-type": content_type} if content_type else {}
    if token:
        headers["authorization"] = f"Bearer {TOKEN}"
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, json.loads(data) if data else {}


#: Seven-segment typefaces (Debian's fonts-dseg), never trained or tuned on: a check beside
#: model.synth.segments' own drawings.
DSEG = Path("/usr/share/fonts/truetype/dseg")


def dseg_digits(folder: Path, count: int, seed: int) -> list[Path]:
    """`count` digits set in the DSEG7 faces, the ten alike: sizes, slants (the italic faces),
    weights, dark on a light panel or lit on a dark one, a little blur, PNG or JPEG."""
    import io

    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    faces = sorted(p for p in DSEG.glob("DSEG7*.ttf") if "SEGGCHAN" not in p.name)  # (a mascot's faces)
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for n in range(count):
        font = ImageFont.truetype(str(faces[rng.integers(len(faces))]), int(rng.integers(40, 160)))
        dark = rng.random() < 0.4
        panel = tuple(int(v) for v in (rng.integers(0, 50, 3) if dark else rng.integers(170, 250, 3)))
        ink = tuple(int(v) for v in (rng.integers(180, 256, 3) if dark else rng.integers(0, 70, 3)))
        left, top, right, bottom = font.getbbox(str(n % 10))
        pad = int((bottom - top) * rng.uniform(0.2, 0.6))
        img = Image.new("RGB", (int(right - left) + 2 * pad, int(bottom - top) + 2 * pad), panel)
        ImageDraw.Draw(img).text((pad - left, pad - top), str(n % 10), font=font, fill=ink)
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 1.2))))
        buf = io.BytesIO()
        jpeg = rng.random() < 0.3
        img.save(buf, "JPEG", quality=85) if jpeg else img.save(buf, "PNG")
        out.append(folder / f"{n % 10}_dseg_{n:05d}.{'jpg' if jpeg else 'png'}")
        out[-1].write_bytes(buf.getvalue())
    return out


def read_right(port: int, files: list[Path]) -> tuple[float, int]:
    """The share of `files` /predict answers with their label's digit (a refusal counts as wrong),
    and how many it refused."""
    right = refused = 0
    for path in files:
        status, _, body = call(port, "POST", "/predict", path.read_bytes(), "image/png")
        right += status == 200 and body.get("digit") == int(path.name[0])
        refused += status == 422 and body.get("error", {}).get("code") == "not_a_digit"
    return right / len(files), refused


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True, help="MNIST's IDX files (the fine-tune mixes MNIST in)")
    p.add_argument("--corrections", type=int, default=300)
    p.add_argument("--held-out", type=int, default=500)
    p.add_argument("--seed", type=int, default=1000, help="of the corrections; the held-out set takes seed + 1")
    p.add_argument("--keep", type=Path, default=None, help="copy the fine-tuned checkpoint (and its sidecar) here")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="feedback-loop-"))
    models = work / "models"
    models.mkdir()
    shutil.copy(DEFAULT_CHECKPOINT, models / "mnist_cnn.pt")
    shutil.copy(sidecar(DEFAULT_CHECKPOINT), sidecar(models / "mnist_cnn.pt"))
    db = f"sqlite:///{work / 'feedback.db'}"
    corrections = segments.write(work / "corrections", args.corrections, args.seed)
    held_out = segments.write(work / "held-out", args.held_out, args.seed + 1)
    typefaces = dseg_digits(work / "dseg", args.held_out, args.seed + 2) if DSEG.is_dir() else []
    port = free_port()
    env = {**os.environ, "DIGITS_PORT": str(port), "DIGITS_WORKERS": "2", "DIGITS_FEEDBACK_DB": db,
           "DIGITS_ADMIN_TOKEN": TOKEN, "DIGITS_CHECKPOINT": str(models / "mnist_cnn.pt"),
           "DIGITS_FEEDBACK_PER_MINUTE": "10000", "DIGITS_LOG_LEVEL": "warning"}  # fmt: skip
    server = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env)
    try:
        wait_ready(port, server)
        before, refused_before = read_right(port, held_out)
        dseg_before = read_right(port, typefaces) if typefaces else None
        wrong = 0
        for path in corrections:  # read as a user would, then corrected (or confirmed) with that answer's id
            _, headers, _ = call(port, "POST", "/predict", path.read_bytes(), "image/png")
            label, request_id = path.name[:1].encode(), headers["x-request-id"].encode()
            body, content_type = multipart([("file", path.name, path.read_bytes()), ("label", None, label),
                                            ("request_id", None, request_id)])  # fmt: skip
            status, _, stored = call(port, "POST", "/feedback", body, content_type)
            if status != 201:
                raise SystemExit(f"POST /feedback answered {status}: {stored}")
            wrong += not stored["right"]
        _, _, summary = call(port, "GET", "/feedback/summary", token=True)
        export = work / "export"
        subprocess.run([sys.executable, "-m", "app.feedback", "export", "--db", db, str(export)], cwd=ROOT, check=True)
        tuned = models / "finetuned.pt"
        subprocess.run([sys.executable, "-m", "model.train", "--finetune", str(models / "mnist_cnn.pt"),
                        "--extra-images", str(export), "--data-dir", args.data_dir, "--output", str(tuned)],
                       cwd=ROOT, check=True)  # fmt: skip
        status, _, reloaded = call(port, "POST", "/admin/reload", json.dumps({"checkpoint": "finetuned.pt"}).encode(),
                                   "application/json", token=True)  # fmt: skip
        after, refused_after = read_right(port, held_out)
        dseg_after = read_right(port, typefaces) if typefaces else None
        _, _, info = call(port, "GET", "/model")
    finally:
        server.terminate()
        server.wait(30)
    print(f"\ncorrections sent: {len(corrections)} (seed {args.seed}), the model wrong on {wrong}; summary: "
          f"{json.dumps(summary['versions'])}")  # fmt: skip
    print(f"reload: {status} {json.dumps(reloaded)}")
    print(
        f"held-out seven-segment digits ({len(held_out)}, seed {args.seed + 1}) read right at /predict: "
        f"before {100 * before:.1f}% ({refused_before} refused), after {100 * after:.1f}% ({refused_after} refused)"
    )
    if dseg_before and dseg_after:
        print(f"seven-segment typefaces (DSEG7, fonts-dseg; {len(typefaces)}, seed {args.seed + 2}) read right: before "
              f"{100 * dseg_before[0]:.1f}% ({dseg_before[1]} refused), after {100 * dseg_after[0]:.1f}% "
              f"({dseg_after[1]} refused)")  # fmt: skip
    else:
        print(f"(no {DSEG}: apt-get install fonts-dseg adds a check on seven-segment typefaces)")
    print(f"MNIST test accuracy of the served checkpoint: {info['metrics']['test_accuracy']}")
    if args.keep:
        shutil.copy(tuned, args.keep)
        shutil.copy(sidecar(tuned), sidecar(args.keep))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
