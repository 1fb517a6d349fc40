"""The feedback database: its table, an engine for a URL (SQLite in WAL mode, or PostgreSQL through
psycopg 3), and its schema brought up to date by Alembic, one process at a time."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Boolean,
    Connection,
    DateTime,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

MIGRATIONS = Path(__file__).parent / "migrations"
#: PostgreSQL advisory lock keys: one for migrations, one that serialises the record cap's check.
MIGRATE_LOCK, CAP_LOCK = 7_346_001, 7_346_002
#: Seconds a PostgreSQL connection may take to open.
PG_CONNECT_SECONDS = 5
#: Seconds a SQLite writer waits for another process's write to finish before giving up.
SQLITE_BUSY_SECONDS = 30


class Base(DeclarativeBase):
    metadata = MetaData()


class Record(Base):
    """One correction. `inputs`: the model's 28x28 input(s), uint8, white ink on black, one after
    another (`input_count` of them: one for a digit, one a digit for a number)."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    endpoint: Mapped[str] = mapped_column(String(16))  # "predict" or "number"
    label: Mapped[str] = mapped_column(String(32), index=True)  # a digit, a number, or "not_a_digit"
    predicted: Mapped[str] = mapped_column(String(32))  # the model's answer, "not_a_digit" when it refused
    confidence: Mapped[float] = mapped_column(Float)
    right: Mapped[bool] = mapped_column(Boolean)  # label == predicted
    model_version: Mapped[str] = mapped_column(String(64), index=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)  # of the answer corrected
    input_count: Mapped[int] = mapped_column(Integer)
    inputs: Mapped[bytes] = mapped_column(LargeBinary)
    upload: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # DIGITS_FEEDBACK_KEEP_UPLOADS
    upload_type: Mapped[str | None] = mapped_column(String(128), nullable=True)


class BadDatabaseURL(ValueError):
    """DIGITS_FEEDBACK_DB is not a SQLite or PostgreSQL URL SQLAlchemy can use."""


def normalised_url(url: str) -> str:
    """`url` with PostgreSQL's driver named: psycopg 3 (`postgresql://` alone means psycopg2 to
    SQLAlchemy, which is not installed)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise BadDatabaseURL("not a database URL: sqlite:///path/feedback.db or postgresql://user@host/db") from None
    if parsed.get_backend_name() == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if parsed.get_backend_name() != "sqlite":
        raise BadDatabaseURL(f"{parsed.get_backend_name()!r} databases are not supported: use sqlite or postgresql")
    if parsed.database in (None, "", ":memory:"):
        raise BadDatabaseURL("a SQLite feedback database must be a file (sqlite:///path/feedback.db)")
    return url


def make_engine(url: str) -> Engine:
    """An engine for `url`. SQLite: WAL journal, a full sync at each commit (a 201 is on disk), a
    busy wait for other processes' writes, and every transaction a write one from its BEGIN
    (IMMEDIATE), so that the cap's count and the insert after it see one state."""
    url = normalised_url(url)
    if make_url(url).get_backend_name() != "sqlite":
        # a server that does not answer is given up on in seconds, not at TCP's minutes
        return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4,
                             connect_args={"connect_timeout": PG_CONNECT_SECONDS})  # fmt: skip
    Path(make_url(url).database or "").parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the BEGIN below is ours, not the driver's
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_SECONDS * 1000}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def lock_for_cap(connection: Connection) -> None:
    """Serialise the record cap's count and insert across processes: SQLite's BEGIN IMMEDIATE does
    it already; PostgreSQL takes an advisory lock until the transaction ends."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CAP_LOCK})


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def migrate(url: str) -> str:
    """Bring the database at `url` to the newest schema (Alembic's `upgrade head`), one process at a
    time (workers and replicas start together): SQLite under a lock file beside the database,
    PostgreSQL under an advisory lock. Returns the revision it is at."""
    engine = make_engine(url)
    try:
        lock = (
            _file_lock(Path(f"{engine.url.database}.migrate-lock")) if is_sqlite(engine) else contextlib.nullcontext()
        )
        with lock, engine.begin() as connection:
            if not is_sqlite(engine):
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK})
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            return str(connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one())
    finally:
        engine.dispose()
