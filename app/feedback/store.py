"""Writing corrections and reading them back: the record cap, the summary, the export's rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Row, case, func, insert, select

from app.feedback.correction import Correction, StoreFull
from app.feedback.db import Record, lock_for_cap, make_engine


class FeedbackStore:
    def __init__(self, url: str, max_records: int) -> None:
        self.engine: Engine = make_engine(url)
        self.max_records = max_records

    def add(self, c: Correction) -> int:
        """Store `c` and commit (durable once this returns: SQLite syncs at commit, PostgreSQL's
        commit is synchronous); its id. StoreFull past the cap."""
        with self.engine.begin() as connection:
            lock_for_cap(connection)
            if connection.execute(select(func.count()).select_from(Record)).scalar_one() >= self.max_records:
                raise StoreFull(f"the feedback store holds its limit of {self.max_records} records")
            values = {
                "created_at": datetime.now(UTC),
                "endpoint": c.endpoint,
                "label": c.label,
                "predicted": c.predicted,
                "confidence": c.confidence,
                "right": c.right,
                "model_version": c.model_version,
                "request_id": c.request_id,
                "input_count": c.input_count,
                "inputs": c.inputs,
                "upload": c.upload,
                "upload_type": c.upload_type,
            }
            return int(connection.execute(insert(Record).values(**values).returning(Record.id)).scalar_one())

    def count(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(Record)).scalar_one())

    def summary(self, top: int = 20) -> dict[str, Any]:
        """Per model version: records and the share the model had right; the commonest confusions
        (label read as predicted); records per label."""
        t = Record.__table__
        with self.engine.connect() as connection:
            versions = connection.execute(
                select(t.c.model_version, func.count(), func.sum(case((t.c.right, 1), else_=0)))
                .group_by(t.c.model_version)
                .order_by(func.count().desc())
            ).all()
            pairs = connection.execute(
                select(t.c.label, t.c.predicted, func.count().label("n"))
                .where(t.c.right.is_(False))
                .group_by(t.c.label, t.c.predicted)
                .order_by(func.count().desc(), t.c.label, t.c.predicted)
                .limit(top)
            ).all()
            labels = connection.execute(select(t.c.label, func.count()).group_by(t.c.label).order_by(t.c.label)).all()
        return {
            "records": sum(n for _, n, _ in versions),
            "max_records": self.max_records,
            "versions": [
                {"model_version": v, "records": n, "right": int(r or 0), "agreement": round(int(r or 0) / n, 4)}
                for v, n, r in versions
            ],
            "confusions": [{"label": a, "predicted": b, "count": n} for a, b, n in pairs],
            "labels": {label: n for label, n in labels},
        }

    def records(self, batch: int = 500) -> Iterator[Row[Any]]:
        """Every record (a row with Record's columns as attributes), oldest first, read `batch` at a time."""
        t, last = Record.__table__, 0
        while True:
            with self.engine.connect() as connection:
                rows = connection.execute(select(t).where(t.c.id > last).order_by(t.c.id).limit(batch)).all()
            if not rows:
                return
            yield from rows
            last = rows[-1].id

    def close(self) -> None:
        self.engine.dispose()
