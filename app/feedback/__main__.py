"""`python -m app.feedback migrate --db URL` brings a feedback database to the newest schema (the
service also does it at start-up); `python -m app.feedback export --db URL OUT_DIR` writes its
records out as labelled image files with a manifest (docs/feedback.md)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from app.feedback.db import BadDatabaseURL, migrate
from app.feedback.export import export
from app.feedback.store import FeedbackStore


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m app.feedback", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("migrate", "bring the schema up to date"), ("export", "write the records out as images")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument(
            "--db",
            default=os.environ.get("DIGITS_FEEDBACK_DB"),
            help="the database URL (default: $DIGITS_FEEDBACK_DB)",
        )
        if name == "export":
            cmd.add_argument("out", type=Path, help="folder to write the images and manifest.jsonl into")
    args = p.parse_args(argv)
    if not args.db:
        p.error("--db URL or DIGITS_FEEDBACK_DB is needed")
    try:
        revision = migrate(args.db)
    except BadDatabaseURL as e:
        p.error(str(e))
    if args.command == "migrate":
        print(f"feedback database at schema revision {revision}")
        return 0
    store = FeedbackStore(args.db, max_records=0)
    try:
        counts = export(store, args.out)
    finally:
        store.close()
    print(f"wrote {counts['records']} records to {args.out} ({counts['uploads']} kept uploads, "
          f"{counts['inputs']} from the 28x28 inputs) and {args.out / 'manifest.jsonl'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
