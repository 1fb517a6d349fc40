"""The feedback store as a worker holds it: opened (and migrated) at start-up, opened again on a
later request when the database was unreachable then, and the per-client rate limit. Imported
only when DIGITS_FEEDBACK_DB is set (`app.main.feedback_of`)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from app.feedback.correction import Correction, Unavailable
from app.feedback.db import migrate
from app.feedback.limits import RateLimit
from app.feedback.store import FeedbackStore
from app.settings import Settings

log = logging.getLogger("app.feedback")
#: Seconds between tries to open a database that could not be opened.
RETRY_SECONDS = 5


class Feedback:
    def __init__(self, settings: Settings) -> None:
        assert settings.feedback_db is not None
        self.url = settings.feedback_db.get_secret_value()
        self.max_records = settings.feedback_max_records
        self.keep_uploads = settings.feedback_keep_uploads
        self.max_kept_bytes = settings.feedback_max_kept_bytes
        self.limit = RateLimit(settings.feedback_per_minute)
        self._store: FeedbackStore | None = None
        self._lock = threading.Lock()
        self._next_try = 0.0

    def open(self) -> FeedbackStore:
        """The store, the schema brought up to date first; Unavailable when the database cannot be
        reached (tried again after RETRY_SECONDS). Blocking: call it off the event loop."""
        with self._lock:
            if self._store is not None:
                return self._store
            if time.monotonic() < self._next_try:
                raise Unavailable("the feedback database could not be reached; retry shortly")
            try:
                revision = migrate(self.url)
            except (SQLAlchemyError, OSError) as e:
                self._next_try = time.monotonic() + RETRY_SECONDS
                log.error("feedback database unreachable: %s", str(e).splitlines()[0][:300])
                raise Unavailable("the feedback database could not be reached; retry shortly") from None
            self._store = FeedbackStore(self.url, self.max_records)
            log.info("feedback on: database at schema revision %s, %d records", revision, self._store.count())
            return self._store

    def add(self, correction: Correction) -> int:
        """Store it (committed when this returns); its id. StoreFull past the cap, Unavailable when the
        database cannot be reached. Blocking."""
        try:
            return self.open().add(correction)
        except SQLAlchemyError as e:
            log.error("feedback not stored: %s", str(e).splitlines()[0][:300])
            raise Unavailable("the feedback database could not be reached; retry shortly") from None

    def summary(self) -> dict[str, Any]:
        """`FeedbackStore.summary`; Unavailable when the database cannot be reached. Blocking."""
        try:
            return self.open().summary()
        except SQLAlchemyError:
            raise Unavailable("the feedback database could not be reached; retry shortly") from None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
