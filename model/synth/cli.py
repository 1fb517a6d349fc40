"""The command line the generators share: `python -m model.synth.<generator> OUT_DIR [--per-kind N]
[--seed S] [--data-dir D]`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def main(argv: list[str] | None, make: Callable[..., int], doc: str | None) -> int:
    """Parse the generator's arguments, call `make(out, per_kind, seed, data_dir)`, say what it wrote."""
    p = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--per-kind", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    print(f"wrote {make(args.out, args.per_kind, args.seed, args.data_dir)} images to {args.out}")
    return 0
