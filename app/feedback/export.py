"""The records written out as image files named the way `python -m model.evaluate --images` and
`python -m model.train --extra-images` read them (the label first), with a manifest."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from app.feedback.reading import NOT_A_DIGIT
from app.feedback.store import FeedbackStore

#: File suffixes of kept uploads, by Pillow's format name.
SUFFIXES = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "BMP": "bmp", "WEBP": "webp", "TIFF": "tif"}
#: Pixels between the digits of a number rebuilt from its 28x28 inputs.
GAP = 8


def inputs_image(inputs: bytes, count: int) -> Image.Image:
    """The 28x28 inputs side by side (one for a digit), white ink on black, as the model saw them."""
    digits = np.frombuffer(inputs, np.uint8).reshape(count, 28, 28)
    row = np.zeros((28, count * 28 + (count - 1) * GAP), np.uint8)
    for k, digit in enumerate(digits):
        row[:, k * (28 + GAP) : k * (28 + GAP) + 28] = digit
    return Image.fromarray(row, "L")


def _upload_suffix(upload: bytes) -> str | None:
    try:
        with Image.open(io.BytesIO(upload)) as img:
            return SUFFIXES.get(img.format or "")
    except (UnidentifiedImageError, OSError):
        return None


def export(store: FeedbackStore, out: Path) -> dict[str, int]:
    """Every record as `<label>_feedback_<id>.<ext>` in `out` (`x_...` for not_a_digit): the upload
    when it was kept, else the model's 28x28 inputs; `manifest.jsonl` beside them, one line a
    record. Returns counts of files by source."""
    out.mkdir(parents=True, exist_ok=True)
    counts = {"records": 0, "uploads": 0, "inputs": 0}
    with (out / "manifest.jsonl").open("w") as manifest:
        for row in store.records():
            stem = f"{'x' if row.label == NOT_A_DIGIT else row.label}_feedback_{row.id:07d}"
            suffix = _upload_suffix(row.upload) if row.upload else None
            if suffix is not None:
                name = f"{stem}.{suffix}"
                (out / name).write_bytes(row.upload)
                counts["uploads"] += 1
            else:
                name = f"{stem}.png"
                inputs_image(row.inputs, row.input_count).save(out / name)
                counts["inputs"] += 1
            counts["records"] += 1
            entry: dict[str, Any] = {
                "file": name,
                "id": row.id,
                "label": row.label,
                "predicted": row.predicted,
                "right": bool(row.right),
                "confidence": row.confidence,
                "model_version": row.model_version,
                "endpoint": row.endpoint,
                "request_id": row.request_id,
                "created_at": row.created_at.isoformat(),
                "source": "upload" if suffix else "inputs",
            }
            manifest.write(json.dumps(entry) + "\n")
    return counts
